# ParCNetV2-S on ImageNet-1K at 224x224: the T config
# (imagenet_parcnetv2_t.py: the official recipe, data, schedule, usage) with
# the S backbone and stochastic depth 0.3
# (official scripts/parcnetv2/train_parcnetv2_small.sh).
_base_ = ['./imagenet_parcnetv2_t.py']

model = dict(backbone=dict(arch='s', drop_path_rate=0.3))
