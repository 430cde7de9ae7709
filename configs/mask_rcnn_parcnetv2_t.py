# Mask R-CNN with a ParCNetV2-T backbone, COCO 2017, 3x schedule
# (36 epochs), multi-scale training with the DETR-style crop branch,
# AdamW + layer-wise lr decay, mixed precision, 16 images per iteration
# (8 GPUs x 2).  Recipe: paper Sec. G / Table 5 and the official
# release (mask_rcnn_parcnetv2_tiny_mstrain_480-800_adamw_3x).
#
#   mim train mmdet configs/mask_rcnn_parcnetv2_t.py                 # 1 GPU (or CPU, in fp32)
#   mim train mmdet configs/mask_rcnn_parcnetv2_t.py --gpus 8 --launcher pytorch
#   mim test mmdet configs/mask_rcnn_parcnetv2_t.py --checkpoint work_dirs/mask_rcnn_parcnetv2_t/epoch_36.pth
#
# COCO is read from data/coco/ (train2017/, val2017/, annotations/).  The
# backbone starts from an ImageNet-1K ParCNetV2-T checkpoint: put it at
# the path below or change `pretrained` (a full mmpretrain classifier
# checkpoint needs prefix='backbone.' in init_cfg).  To train from scratch,
# add `--cfg-options model.backbone.init_cfg=None`.
_base_ = [
    './_base_/parcnetv2_mask_rcnn_fpn.py',
    './_base_/coco_instance_ms_crop.py',
    './_base_/schedule_coco_3x_adamw.py',
    'mmdet::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmparc'], allow_failed_imports=False)

pretrained = 'checkpoints/parcnetv2_t_in1k_backbone.pth'

model = dict(
    backbone=dict(
        arch='t',
        kernel_mode='fixed',  # or 'global'
        drop_path_rate=0.4,  # official release
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 320, 512]))

optim_wrapper = dict(
    optimizer=dict(lr=0.0001, weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise', num_layers=7))
