# ParCNetV2-T on ImageNet-1K at 224x224, trained from scratch with the
# official recipe (timm train.py with the release's scripts): AdamW lr 4e-3 for
# 4096 images per iteration, weight decay 0.05, 300 epochs with 20 warm-up
# epochs and cosine decay, RandAugment, mixup 0.8 / cutmix 1.0, label
# smoothing 0.1, random erasing 0.25, stochastic depth 0.2
# (official scripts/parcnetv2/train_parcnetv2_tiny.sh).  Evaluation: resize 256 + centre crop 224, bicubic.
#
#   mim train mmpretrain configs/imagenet_parcnetv2_t.py --gpus 8 --launcher pytorch \
#       --cfg-options optim_wrapper.accumulative_counts=4   # 8 x 128 x 4 = 4096
#   mim test mmpretrain configs/imagenet_parcnetv2_t.py --checkpoint work_dirs/imagenet_parcnetv2_t/epoch_300.pth
#
# ImageNet is read from data/imagenet/ (train/, val/, meta/train.txt,
# meta/val.txt); another root: --cfg-options
# train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=...
_base_ = [
    './_base_/parcnetv2_imagenet_cls.py',
    './_base_/imagenet_224_timm_aug.py',
    './_base_/schedule_imagenet_300e_adamw.py',
    'mmpretrain::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmparc'], allow_failed_imports=False)

model = dict(
    backbone=dict(arch='t', drop_path_rate=0.2, kernel_mode='fixed'),
    head=dict(in_channels=512))
