# 160k iterations: AdamW (lr 1e-4), ConvNeXt-style stage-wise lr decay 0.9,
# linear warm-up over 1500 iterations from 1e-6 x lr, then poly decay
# (power 1.0) to 0, by iteration.  Weight decay and num_layers are set per
# model in the top-level configs.  Training is in fp32 as in the official
# release (its AMP runner is commented out); for mixed precision set
# optim_wrapper.type='mmparc.FallbackAmpOptimWrapper'.
_base_ = ['mmseg::_base_/schedules/schedule_160k.py']

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.02),
    constructor='mmparc.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]

train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000))

# The recipe's lr is for 16 images per iteration (8 GPUs x 2 images); mmseg's
# train.py has no --auto-scale-lr flag: use --cfg-options auto_scale_lr.enable=True.
auto_scale_lr = dict(enable=False, base_batch_size=16)
