# Mask R-CNN with a ParCNetV2-S backbone: the T config
# (mask_rcnn_parcnetv2_t.py: recipe, data, schedule, usage) with the S
# backbone and its ImageNet checkpoint.  The official release and the paper
# have Mask R-CNN only for ParCNetV2-T; here the same recipe (lr 1e-4,
# decay rate 0.95) runs with num_layers 13 (paper Sec. G) and the stochastic
# depth 0.6 of the official Cascade Mask R-CNN S config.
_base_ = ['./mask_rcnn_parcnetv2_t.py']

pretrained = 'checkpoints/parcnetv2_s_in1k_backbone.pth'

model = dict(backbone=dict(arch='s', drop_path_rate=0.6, init_cfg=dict(checkpoint=pretrained)))

optim_wrapper = dict(paramwise_cfg=dict(num_layers=13))
