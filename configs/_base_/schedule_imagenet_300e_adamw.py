# The official ImageNet-1K recipe (timm train.py as the release runs it):
# AdamW, lr 4e-3 for 4096 images per iteration, weight decay 0.05 (none on
# norms, biases and other 1-D parameters, as timm's filter_bias_and_bn), no
# gradient clipping, 300 epochs: linear warm-up over 20 epochs from 1e-6
# (start_factor 1e-6 / 4e-3), then cosine to 1e-5, per iteration.  fp32, as
# the official scripts do not pass --amp (for mixed precision set
# optim_wrapper.type='mmparc.FallbackAmpOptimWrapper').
# Differences from timm's scheduler: timm adds 10 cool-down epochs at the
# minimum lr (310 in all; set train_cfg.max_epochs=310 to reproduce them: the
# lr stays at eta_min after the cosine ends) and its cosine spans epochs
# 0..300 (the first 20 replaced by the warm-up) rather than 20..300.
lr = 4e-3
warmup_epochs = 20
max_epochs = 300

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
    clip_grad=None)

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / lr, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# lr 4e-3 is for 4096 images per iteration; `--auto-scale-lr` rescales it.
auto_scale_lr = dict(base_batch_size=4096)
