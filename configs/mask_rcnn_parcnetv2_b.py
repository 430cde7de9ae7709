# Mask R-CNN with a ParCNetV2-B backbone: the T config
# (mask_rcnn_parcnetv2_t.py: recipe, data, schedule, usage) with the B
# backbone, its widths and its ImageNet checkpoint.  The official release
# and the paper have Mask R-CNN only for ParCNetV2-T; here the same recipe
# (lr 1e-4, decay rate 0.95) runs with num_layers 13 (paper Sec. G) and the
# stochastic depth 0.7 of the official Cascade Mask R-CNN B config.
_base_ = ['./mask_rcnn_parcnetv2_t.py']

pretrained = 'checkpoints/parcnetv2_b_in1k_backbone.pth'

model = dict(
    backbone=dict(arch='b', drop_path_rate=0.7, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 576]))

optim_wrapper = dict(paramwise_cfg=dict(num_layers=13))
