# Quickstart: UperNet + ParCNetV2 trained from scratch on the toy ADE20K-style
# set (tools/misc/make_toy_dataset.py --kind ade) on a CPU in a few minutes.  It is
# upernet_parcnetv2_t.py with only what must shrink shrunk:
#
# * image size: 192x192 crops (and test size) instead of 512x512; the same
#   random rescale, crop, flip and photometric augmentation around it.  The
#   oversized kernels follow the paper's rule at this size,
#   2 * (192 / stride) - 1 taps.
# * arch: a small custom ParCNetV2 (depths 1-1-3-1, dims 32-64-128-192), no
#   stochastic depth, 64-channel UperNet and auxiliary heads (not 512/256).
# * classes: the toy set's five (sky, ground, circle, square, triangle) read
#   with mmseg's BaseSegDataset, since ADE20KDataset only knows ADE's 150
#   names; the files themselves are in ADE20K's layout and label coding.
# * schedule: 600 iterations of 4 images instead of 160k of 16; lr 1e-3
#   (AdamW, from scratch) with warm-up and poly decay, no layer decay
#   (decay_rate=1: nothing is pretrained).
# * init: no ImageNet checkpoint exists here, so the backbone starts from
#   random weights (init_cfg=None).
#
# demo/quickstart.py (make demo) sets the data root and iteration counts; by hand:
#
#   python tools/misc/make_toy_dataset.py --kind ade --out data/quickstart/ade \
#       --num-train 400 --num-val 60 --size 192 192
#   mim train mmseg configs/quickstart/upernet_parcnetv2_toy.py
_base_ = ['../upernet_parcnetv2_t.py']

data_root = 'data/quickstart/ade'
classes = ('sky', 'ground', 'circle', 'square', 'triangle')  # mmparc/testing/toy_data.py: ADE_CLASSES
# Overlay colours, chosen to stand out from the scene's own colours.
palette = [[255, 235, 120], [120, 60, 160], [0, 230, 230], [255, 0, 200], [255, 170, 0]]
crop_size = (192, 192)  # (H, W); a multiple of 32
dims = [32, 64, 128, 192]
channels = 64
max_iters = 600
val_interval = 150
lr = 1e-3

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 3, 1], dims=dims),
        kernel_sizes=[2 * (crop_size[0] // s) - 1 for s in (4, 8, 16, 32)],
        drop_path_rate=0.0,
        init_cfg=None),
    decode_head=dict(in_channels=dims, channels=channels, num_classes=len(classes)),
    auxiliary_head=dict(in_channels=dims[2], channels=channels, num_classes=len(classes)),
    test_cfg=dict(_delete_=True, mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=crop_size[::-1], ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size[::-1], keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
dataset = dict(
    _delete_=True,
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=dict(classes=classes, palette=palette),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True)
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, eta_min=lr * 0.02, by_epoch=False, begin=50,
         end=max_iters),
]
optim_wrapper = dict(
    optimizer=dict(lr=lr, weight_decay=0.02),
    paramwise_cfg=dict(decay_rate=1.0, num_layers=None))

default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1),
    visualization=dict(draw=False))
log_processor = dict(window_size=25)
