# COCO "3x" schedule of the official ParCNetV2 release: 36 epochs, lr x0.1 at
# epochs 27 and 33, linear warm-up over the first 500 iterations from 0.001 x
# lr (the official mmdet 2.x schedule_1x warm-up; mmdet's ConvNeXt port uses
# 1000), AdamW with layer-wise lr decay (the decay rate and number of layers
# are set per model) and mixed precision.  The top-level configs set lr,
# decay_rate and num_layers.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py']

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[27, 33], gamma=0.1),
]

optim_wrapper = dict(
    _delete_=True,
    # AmpOptimWrapper on a GPU; on a machine without one, a plain fp32
    # OptimWrapper with one warning (so the config also runs on CPU).
    type='mmparc.FallbackAmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0002, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmparc.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=7))

# The recipe's lr is for 16 images per iteration (8 GPUs x 2 images);
# `--auto-scale-lr` rescales it to the actual total batch size.
auto_scale_lr = dict(enable=False, base_batch_size=16)
