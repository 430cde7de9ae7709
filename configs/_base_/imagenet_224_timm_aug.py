# ImageNet-1K at 224 with the augmentation of the official (timm) recipe, from
# mmpretrain's Swin/ConvNeXt base: RandomResizedCrop 224 (bicubic; timm's
# "random" bilinear/bicubic choice has no mmpretrain equivalent), horizontal
# flip, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25 (per-pixel
# noise).  Evaluation: shorter side to 256 (bicubic), centre crop 224 -- timm's
# defaults (crop_pct 0.875) that the official validate.py uses, as the model
# sets no crop_pct of its own.
#
# Data root: data/imagenet with train/, val/ and meta/{train,val}.txt
# (mmpretrain's ImageNet layout), or the environment variable IMAGENET_ROOT,
# read by mmengine when it loads the config (its environment-variable
# substitution); it sets every loader's data_root:
#
#   IMAGENET_ROOT=/datasets/imagenet mim train mmpretrain configs/imagenet_parcnetv2_t.py
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py']

data_root = '{{$IMAGENET_ROOT:data/imagenet}}'

# 4096 images per iteration: 32 GPUs x 128 (or 8 GPUs x 128 with
# optim_wrapper.accumulative_counts=4, as the official scripts accumulate).
train_dataloader = dict(batch_size=128, dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=128, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
