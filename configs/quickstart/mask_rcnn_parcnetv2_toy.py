# Quickstart: Mask R-CNN + ParCNetV2 trained from scratch on the toy COCO set
# (tools/misc/make_toy_dataset.py --kind coco) on a CPU in a few minutes.  It is
# mask_rcnn_parcnetv2_t.py with only what must shrink shrunk:
#
# * image size: 192x192 instead of 480-800 x 1333 multi-scale (plus flip);
#   the oversized kernels follow the paper's rule at this size,
#   2 * (192 / stride) - 1 taps.
# * arch: a small custom ParCNetV2 (depths 1-1-3-1, dims 32-64-128-192), no
#   stochastic depth, and a 64-channel FPN / RoI heads instead of 256
#   (1024-wide box FCs become 256); 64 RoIs sampled per image, not 512, and
#   fewer proposals kept.
# * schedule: 450 iterations of 4 images (4.5 epochs of 400) instead of 36
#   epochs; lr 1e-3 (AdamW, from scratch) with warm-up and cosine decay,
#   gradient clipping, no layer decay (decay_rate=1: nothing is pretrained,
#   so no layer should move less).
# * init: no ImageNet checkpoint exists here, so the backbone starts from
#   random weights (init_cfg=None).
#
# demo/quickstart.py (make demo) sets the data root, classes and iteration counts; by hand:
#
#   python tools/misc/make_toy_dataset.py --kind coco --out data/quickstart/coco \
#       --num-train 400 --num-val 60 --size 192 192
#   mim train mmdet configs/quickstart/mask_rcnn_parcnetv2_toy.py
_base_ = ['../mask_rcnn_parcnetv2_t.py']

data_root = 'data/quickstart/coco/'
classes = ('circle', 'square', 'triangle')  # mmparc/testing/toy_data.py: COCO_CLASSES
# Drawing colours, chosen to stand out from the objects' own red/green/blue.
palette = [(0, 230, 230), (255, 0, 200), (255, 170, 0)]
image_size = (192, 192)  # (H, W); a multiple of 32
dims = [32, 64, 128, 192]
channels = 64
max_iters = 450
val_interval = 150
lr = 1e-3

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 3, 1], dims=dims),
        kernel_sizes=[2 * (image_size[0] // s) - 1 for s in (4, 8, 16, 32)],
        drop_path_rate=0.0,
        init_cfg=None),
    neck=dict(in_channels=dims, out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=256, num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels,
                       num_classes=len(classes))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100), rcnn=dict(max_per_img=30)))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size[::-1], keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=image_size[::-1], keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
metainfo = dict(classes=classes, palette=palette)
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=True, min_size=4)))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters,
         eta_min=lr * 0.02),
]
optim_wrapper = dict(
    optimizer=dict(lr=lr, weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=1.0, num_layers=None),
    clip_grad=dict(max_norm=10.0))

default_hooks = dict(
    logger=dict(interval=25, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    visualization=dict(draw=False))
log_processor = dict(by_epoch=False, window_size=25)
