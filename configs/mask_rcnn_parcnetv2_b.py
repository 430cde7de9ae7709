# Mask R-CNN with a ParCNetV2-B backbone, COCO 2017, 3x schedule
# (36 epochs), multi-scale training with the DETR-style crop branch,
# AdamW + layer-wise lr decay, mixed precision, 16 images per iteration
# (8 GPUs x 2).  The official release and the paper have Mask R-CNN
# only for ParCNetV2-T; this config applies the same recipe (lr 1e-4,
# decay rate 0.95) with the B backbone, num_layers 13 (paper) and the
# stochastic depth 0.7 the official Cascade Mask R-CNN B config uses.
#
#   mim train mmdet configs/mask_rcnn_parcnetv2_b.py                 # 1 GPU (or CPU, in fp32)
#   mim train mmdet configs/mask_rcnn_parcnetv2_b.py --gpus 8 --launcher pytorch
#   mim test mmdet configs/mask_rcnn_parcnetv2_b.py --checkpoint work_dirs/mask_rcnn_parcnetv2_b/epoch_36.pth
#
# COCO is read from data/coco/ (train2017/, val2017/, annotations/).  The
# backbone starts from an ImageNet-1K ParCNetV2-B checkpoint: put it at
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

pretrained = 'checkpoints/parcnetv2_b_in1k_backbone.pth'

model = dict(
    backbone=dict(
        arch='b',
        kernel_mode='fixed',  # or 'global'
        drop_path_rate=0.7,  # as the official Cascade Mask R-CNN B
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 576]))

optim_wrapper = dict(
    optimizer=dict(lr=0.0001, weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise', num_layers=13))
