# COCO 2017 instance segmentation with the multi-scale training of the
# official ParCNetV2 (and ConvNeXt / Swin) 3x recipes: random flip, then
# either a multi-scale resize (shorter side 480..800, longer <= 1333) or the
# DETR-style resize + random crop + multi-scale resize.  Data root, loaders,
# test pipeline (1333x800) and the bbox + segm CocoMetric come from mmdet's
# base.
#
# Data root: data/coco/ (train2017/, val2017/, annotations/), or the
# environment variable COCO_ROOT, read by mmengine when it loads the config
# (its environment-variable substitution):
#
#   COCO_ROOT=/datasets/coco mim train mmdet configs/mask_rcnn_parcnetv2_t.py
#
# The one variable sets every loader's data_root and the evaluators'
# ann_file (a full path, which mmdet's base derives from its own root).
# A later `data_root = ...` in a config that inherits this file does not
# reach these dicts (mmengine substitutes a base's variables when it reads
# the base).
_base_ = ['mmdet::_base_/datasets/coco_instance.py']

data_root = '{{$COCO_ROOT:data/coco}}/'

multi_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333),
                (640, 1333), (672, 1333), (704, 1333), (736, 1333), (768, 1333),
                (800, 1333)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize',
                     scales=[(400, 1333), (500, 1333), (600, 1333)],
                     keep_ratio=True),
                dict(type='RandomCrop',
                     crop_type='absolute_range',
                     crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
# 16 images per iteration: 8 GPUs x 2 images (see auto_scale_lr).
train_dataloader = dict(batch_size=2,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
