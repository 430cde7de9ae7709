# UperNet with a ParCNetV2-S backbone, 69M parameters (Table 6): the T
# config (upernet_parcnetv2_t.py: recipe, data, schedule, test modes, usage)
# with the S backbone, its ImageNet checkpoint and stage-wise lr decay over
# 12 layers (official).  Weight decay 0.02 as the paper states (Sec. G); the
# official config for S says 0.05.
_base_ = ['./upernet_parcnetv2_t.py']

pretrained = 'checkpoints/parcnetv2_s_in1k_backbone.pth'

model = dict(backbone=dict(arch='s', init_cfg=dict(checkpoint=pretrained)))

optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
