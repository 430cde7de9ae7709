# UperNet with a ParCNetV2-B backbone, 87M parameters (Table 6): the T
# config (upernet_parcnetv2_t.py: recipe, data, schedule, test modes, usage)
# with the B backbone, its widths, its ImageNet checkpoint, stochastic depth
# 0.5 (paper Sec. G) and stage-wise lr decay over 12 layers (official).
# Weight decay 0.02: the paper (Sec. G) and the official config agree.
_base_ = ['./upernet_parcnetv2_t.py']

pretrained = 'checkpoints/parcnetv2_b_in1k_backbone.pth'

model = dict(
    backbone=dict(arch='b', drop_path_rate=0.5, init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 576]),
    auxiliary_head=dict(in_channels=384))

optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
