# ParCNetV2-XT on ImageNet-1K at 224x224: the T config
# (imagenet_parcnetv2_t.py: the official recipe, data, schedule, usage) with
# the XT backbone and its head width.  Stochastic depth 0.1 is our choice
# (below T's 0.2): the official release has no training script for XT.
_base_ = ['./imagenet_parcnetv2_t.py']

model = dict(backbone=dict(arch='xt', drop_path_rate=0.1), head=dict(in_channels=320))
