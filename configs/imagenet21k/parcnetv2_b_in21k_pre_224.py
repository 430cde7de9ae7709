# ParCNetV2-B pre-trained on ImageNet-21K at 224 (supplement Sec. F: "we
# follow the experiment settings of ConvNeXt ... pre-train on ImageNet-22K
# for 90 epochs").  The paper gives no other detail; the rest is ConvNeXt's
# 22K pre-training recipe: the ImageNet-1K recipe of
# configs/imagenet_parcnetv2_b.py (AdamW lr 4e-3 for 4096 images, weight
# decay 0.05, RandAugment, mixup 0.8 / cutmix 1.0, label smoothing 0.1,
# random erasing 0.25, cosine) with 90 epochs, 5 warm-up epochs, no
# evaluation during training and stochastic depth 0.1 (ConvNeXt-B's for 22K).
#
# Data: mmpretrain's ImageNet21k dataset conventions, data/imagenet21k/ (or
# the environment variable IMAGENET21K_ROOT) with train/ and meta/train.txt;
# 21841 classes (the fall 2011 release, as mmpretrain's ConvNeXt in21k
# configs).
#
#   mim train mmpretrain configs/imagenet21k/parcnetv2_b_in21k_pre_224.py --gpus 32 \
#       --launcher slurm    # 32 x 128 = 4096 images per iteration
_base_ = ['../imagenet_parcnetv2_b.py']

num_classes = 21841
warmup_epochs = 5
max_epochs = 90

model = dict(backbone=dict(drop_path_rate=0.1), head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)

train_dataloader = dict(
    dataset=dict(type='ImageNet21k', data_root='{{$IMAGENET21K_ROOT:data/imagenet21k}}',
                 split='train'))
# No validation or test set (ImageNet-21K has none; as mmpretrain's own
# imagenet21k base).  mmpretrain's get_flops.py cannot load such a config (its
# get_model reads test_dataloader.dataset); tools/analysis_tools/analyze.py,
# the same counter, prints its params/MACs: 68.39M / 12.50G (21841-class head).
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / 4e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
