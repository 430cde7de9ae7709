# ParCNetV2-B on ImageNet-1K at 224x224: the T config
# (imagenet_parcnetv2_t.py: the official recipe, data, schedule, usage) with
# the B backbone, its head width and stochastic depth 0.4
# (official scripts/parcnetv2/train_parcnetv2_base.sh).
_base_ = ['./imagenet_parcnetv2_t.py']

model = dict(backbone=dict(arch='b', drop_path_rate=0.4), head=dict(in_channels=576))
