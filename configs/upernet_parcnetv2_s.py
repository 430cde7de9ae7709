# UperNet with a ParCNetV2-S backbone on ADE20K, 512x512 crops, 160k
# iterations, 16 images per iteration (8 GPUs x 2); 69M parameters (Table 6).
# Recipe: paper Sec. G and the official upernet_parcnetv2_*_512_160k configs:
# AdamW lr 1e-4, stage-wise lr decay 0.9 (num_layers 12, official), linear
# warm-up over 1500 iterations from 1e-6 x lr then poly (power 1) to 0,
# flip + rescale 0.5-2.0 + photometric distortion, stochastic depth 0.3.
# Weight decay 0.02 as the paper states (Sec. G); the official config for
# S says 0.05.
# Single-scale test: slide inference, 512x512 windows with stride 341 (the
# official "ss" configs); `--tta` runs the multi-scale (0.5..1.75) + flip test.
#
#   mim train mmseg configs/upernet_parcnetv2_s.py                      # 1 GPU
#   mim train mmseg configs/upernet_parcnetv2_s.py --gpus 8 --launcher pytorch
#   mim test mmseg configs/upernet_parcnetv2_s.py --checkpoint work_dirs/upernet_parcnetv2_s/iter_160000.pth
#   mim test mmseg configs/upernet_parcnetv2_s.py --checkpoint CKPT --tta
#
# ADE20K is read from data/ade/ADEChallengeData2016/.  The backbone starts
# from an ImageNet-1K ParCNetV2-S checkpoint: put it at the path below or
# change `pretrained` (a full mmpretrain classifier checkpoint needs
# prefix='backbone.' in init_cfg).  To train from scratch, add
# `--cfg-options model.backbone.init_cfg=None`.
_base_ = [
    './_base_/upernet_parcnetv2.py',
    './_base_/ade20k_512.py',
    './_base_/schedule_ade_160k_adamw.py',
    'mmseg::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmparc'], allow_failed_imports=False)

pretrained = 'checkpoints/parcnetv2_s_in1k_backbone.pth'
crop_size = (512, 512)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='s',
        kernel_mode='fixed',  # or 'global'
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 320, 512], num_classes=150),
    auxiliary_head=dict(in_channels=320, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    optimizer=dict(lr=0.0001, weight_decay=0.02),
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=12))
