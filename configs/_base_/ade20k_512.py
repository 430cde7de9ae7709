# ADE20K (ADEChallengeData2016) at 512x512, from mmseg's base: random rescale
# of the (2048, 512) scale by 0.5..2.0, random 512x512 crop
# (cat_max_ratio 0.75), horizontal flip, photometric distortion;
# reduce_zero_label (label 0 "other" is ignored).  The single-scale test
# resizes to (2048, 512) keeping the ratio, then to the nearest multiple of
# 32 per side (ResizeToMultiple, as the official UperNet test pipelines;
# predictions are resized back to the original image).
#
# Data root: data/ade/ADEChallengeData2016, or the environment variable
# ADE20K_ROOT, read by mmengine when it loads the config (its
# environment-variable substitution); it sets every loader's data_root:
#
#   ADE20K_ROOT=/datasets/ADEChallengeData2016 mim train mmseg configs/upernet_parcnetv2_t.py
_base_ = ['mmseg::_base_/datasets/ade20k.py']

data_root = '{{$ADE20K_ROOT:data/ade/ADEChallengeData2016}}'

# 16 images per iteration: 8 GPUs x 2 images, as the paper and the official
# release train.
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    # annotations after the resizes: metrics compare with the original maps
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(batch_size=1,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# Multi-scale + flip test, used by `mim test mmseg ... --tta` (mmseg's
# tools/test.py swaps it in for the test pipeline and wraps the model in
# `tta_model`, SegTTAModel from mmseg's default runtime).  The scales are the
# (2048, 512) test scale times 0.5..1.75, as mmseg 0.x's `--aug-test` with
# which the official release reports its multi-scale numbers (mmseg 1.x's
# own ADE20K tta_pipeline scales the original image size instead).  Each view
# is inferred with the model's test_cfg (slide, 512 / 341); the official
# multi-scale runs used whole-image inference ("_ms" configs, mode='whole').
# For that, add --cfg-options model.test_cfg.mode=whole.  Each scale is
# rounded to multiples of 32 as in the single-scale test (official configs).
tta_img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(int(2048 * r), int(512 * r)), keep_ratio=True)
             for r in tta_img_ratios],
            [dict(type='ResizeToMultiple', size_divisor=32)],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadAnnotations', reduce_zero_label=True)],
            [dict(type='PackSegInputs')],
        ]),
]
