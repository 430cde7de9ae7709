# Cascade Mask R-CNN with a ParCNetV2-T backbone, FPN and the "4conv1fc"
# GIoU box heads of the official release (and of ConvNeXt's COCO recipe).
# Everything not set here comes from mmdet's Cascade Mask R-CNN R-50 base
# (same RPN, RoI extractors, mask head, assigners and test settings as the
# official mmdet 2.x base model).
_base_ = ['mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py']

custom_imports = dict(imports=['mmparc'], allow_failed_imports=False)

# SyncBN in the box heads, as in the official configs.  With no process group
# (single-process or CPU runs) torch's SyncBatchNorm computes plain batch
# statistics, so the same config also runs there unchanged.  (Not named
# `head_norm_cfg`: mmdet's get_flops.py rewrites a top-level key of that name.)
cascade_head_norm = dict(type='SyncBN', requires_grad=True)


def _bbox_head(target_stds):
    return dict(
        type='ConvFCBBoxHead',
        num_shared_convs=4,
        num_shared_fcs=1,
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=80,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0., 0., 0., 0.],
            target_stds=target_stds),
        reg_class_agnostic=False,
        reg_decoded_bbox=True,
        norm_cfg=cascade_head_norm,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))


model = dict(
    backbone=dict(
        _delete_=True,
        type='mmparc.ParCNetV2',
        arch='t',
        # 'fixed' keeps the oversized kernels at their 224x224-pretraining
        # lengths (the official det/seg behaviour); 'global' resamples them to
        # 2H-1 x 2W-1 of each input.
        kernel_mode='fixed',
        drop_path_rate=0.4,
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        frozen_stages=0,
        # init_cfg (the ImageNet-1K checkpoint) is set by the top-level configs.
        with_cp=False),
    neck=dict(in_channels=[64, 128, 320, 512]),
    roi_head=dict(bbox_head=[
        _bbox_head([0.1, 0.1, 0.2, 0.2]),
        _bbox_head([0.05, 0.05, 0.1, 0.1]),
        _bbox_head([0.033, 0.033, 0.067, 0.067]),
    ]))
del _bbox_head
