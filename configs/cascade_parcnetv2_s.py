# Cascade Mask R-CNN with a ParCNetV2-S backbone: the T config
# (cascade_parcnetv2_t.py: recipe, data, schedule, usage) with the S
# backbone, its ImageNet checkpoint, stochastic depth 0.6 (official release)
# and layer-wise lr decay over 13 layers (paper Sec. G).
_base_ = ['./cascade_parcnetv2_t.py']

pretrained = 'checkpoints/parcnetv2_s_in1k_backbone.pth'

model = dict(backbone=dict(arch='s', drop_path_rate=0.6, init_cfg=dict(checkpoint=pretrained)))

optim_wrapper = dict(paramwise_cfg=dict(num_layers=13))
