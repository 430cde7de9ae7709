# ImageNet-1K classifier on ParCNetV2-T: global average pooling, LayerNorm
# and a linear head (the official classifier), label smoothing 0.1 and
# mixup 0.8 / cutmix 1.0 (one of the two per batch), as the official timm
# recipe.  The backbone initialises itself as the official model
# (truncated normal, std 0.02); so does the head here.
custom_imports = dict(imports=['mmparc'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmparc.ParCNetV2',
        arch='t',
        kernel_mode='fixed',
        drop_path_rate=0.2,
        out_indices=-1,
        gap_before_final_norm=True,
        with_cp=False,
        init_cfg=None),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.)),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]))
