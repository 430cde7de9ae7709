# Cascade Mask R-CNN with a ParCNetV2-S backbone, COCO 2017, 3x schedule
# (36 epochs), multi-scale training with the DETR-style crop branch,
# AdamW + layer-wise lr decay, mixed precision, 16 images per iteration
# (8 GPUs x 2).  Recipe: paper Sec. G / Table 5 and the official
# release (cascade_mask_rcnn_parcnetv2_*_mstrain_480-800_giou_4conv1f_adamw_3x);
# 4conv1fc box heads with SyncBN and GIoU loss (weight 10).
#
#   mim train mmdet configs/cascade_parcnetv2_s.py                 # 1 GPU (or CPU, in fp32)
#   mim train mmdet configs/cascade_parcnetv2_s.py --gpus 8 --launcher pytorch
#   mim test mmdet configs/cascade_parcnetv2_s.py --checkpoint work_dirs/cascade_parcnetv2_s/epoch_36.pth
#
# COCO is read from data/coco/ (train2017/, val2017/, annotations/).  The
# backbone starts from an ImageNet-1K ParCNetV2-S checkpoint: put it at
# the path below or change `pretrained` (a full mmpretrain classifier
# checkpoint needs prefix='backbone.' in init_cfg).  To train from scratch,
# add `--cfg-options model.backbone.init_cfg=None`.
_base_ = [
    './_base_/parcnetv2_cascade_mask_rcnn_fpn.py',
    './_base_/coco_instance_ms_crop.py',
    './_base_/schedule_coco_3x_adamw.py',
    'mmdet::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmparc'], allow_failed_imports=False)

pretrained = 'checkpoints/parcnetv2_s_in1k_backbone.pth'

model = dict(
    backbone=dict(
        arch='s',
        kernel_mode='fixed',  # or 'global'
        drop_path_rate=0.6,  # official release
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 320, 512]))

optim_wrapper = dict(
    optimizer=dict(lr=0.0002, weight_decay=0.05),
    # num_layers 13: paper Sec. G; decay rate 0.7: official release.
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=13))
