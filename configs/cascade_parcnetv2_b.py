# Cascade Mask R-CNN with a ParCNetV2-B backbone: the T config
# (cascade_parcnetv2_t.py: recipe, data, schedule, usage) with the B
# backbone and its widths, its ImageNet checkpoint, stochastic depth 0.7 and
# lr decay rate 0.8 (official release) over 13 layers (paper Sec. G).
_base_ = ['./cascade_parcnetv2_t.py']

pretrained = 'checkpoints/parcnetv2_b_in1k_backbone.pth'

model = dict(
    backbone=dict(arch='b', drop_path_rate=0.7, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 576]))

optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.8, num_layers=13))
