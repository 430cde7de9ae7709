# Mask R-CNN with a ParCNetV2-T backbone and FPN.  Everything not set here
# comes from mmdet's Mask R-CNN R-50 base (the same heads, assigners and test
# settings as the official mmdet 2.x base model).
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']

custom_imports = dict(imports=['mmparc'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmparc.ParCNetV2',
        arch='t',
        # 'fixed': oversized kernels keep their pretraining lengths (official
        # det/seg behaviour); 'global': resampled to 2H-1 x 2W-1 per input.
        kernel_mode='fixed',
        drop_path_rate=0.4,
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        frozen_stages=0,
        # init_cfg (the ImageNet-1K checkpoint) is set by the top-level configs.
        with_cp=False),
    neck=dict(in_channels=[64, 128, 320, 512]))
