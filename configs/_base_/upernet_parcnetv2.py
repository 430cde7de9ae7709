# UperNet on a ParCNetV2-T backbone (the official release's base model):
# UPerHead on all four stages, an auxiliary FCN head on stage 3, SyncBN in
# the heads.  With no process group (single-process or CPU runs) torch's
# SyncBatchNorm computes plain batch statistics, so the same config also
# runs there unchanged.
custom_imports = dict(imports=['mmparc'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='mmparc.ParCNetV2',
        arch='t',
        # 'fixed': oversized kernels keep their pretraining lengths (official
        # det/seg behaviour); 'global': resampled to 2H-1 x 2W-1 per input.
        kernel_mode='fixed',
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        frozen_stages=0,
        # init_cfg (the ImageNet-1K checkpoint) is set by the top-level configs.
        with_cp=False),
    decode_head=dict(
        type='UPerHead',
        in_channels=[64, 128, 320, 512],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=320,  # dims[2]: stage 3
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
