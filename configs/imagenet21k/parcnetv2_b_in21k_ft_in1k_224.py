# ParCNetV2-B fine-tuned on ImageNet-1K at 224 from its ImageNet-21K
# pre-training (supplement Table 4: 56M / 12.5G, 86.0% top-1; Sec. F:
# "fine-tune on ImageNet-1K for 30 epochs", ConvNeXt's settings).  The rest is
# ConvNeXt's 22K -> 1K fine-tuning recipe: AdamW lr 5e-5 for 512 images per
# iteration, weight decay 1e-8, layer-wise lr decay 0.8, no warm-up, cosine,
# 30 epochs, RandAugment and label smoothing 0.1 but no mixup/cutmix,
# stochastic depth 0.2 (ConvNeXt-B's), EMA of the weights (momentum 1e-4,
# i.e. decay 0.9999), the ImageNet-1K evaluation of the 1K configs.
#
# The backbone is initialised from the 21K checkpoint (prefix 'backbone.');
# the 21841-class head is not loaded: the 1K head starts fresh, as in
# ConvNeXt's fine-tuning.  (Reading off the 1K classes of the 21K head instead
# only matters to evaluate the 21K model on ImageNet-1K without fine-tuning.)
#
#   mim train mmpretrain configs/imagenet21k/parcnetv2_b_in21k_ft_in1k_224.py --gpus 8 \
#       --launcher pytorch --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/parcnetv2_b_in21k_pre_224/epoch_90.pth
_base_ = ['../imagenet_parcnetv2_b.py']

lr = 5e-5
max_epochs = 30

model = dict(
    backbone=dict(
        drop_path_rate=0.2,
        init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                      checkpoint='work_dirs/parcnetv2_b_in21k_pre_224/epoch_90.pth')),
    train_cfg=dict(_delete_=True))

train_dataloader = dict(batch_size=64)  # 8 GPUs x 64 = 512

optim_wrapper = dict(
    optimizer=dict(lr=lr, weight_decay=1e-8),
    constructor='mmparc.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, decay_rate=0.8, decay_type='layer_wise',
                       norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))

param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=1e-7, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
custom_hooks = [dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]
auto_scale_lr = dict(base_batch_size=512)

paper = [dict(table='Supp. Table 4', row='ParCNetV2-B (21K pre-trained)', params='56',
              macs='12.5', top1='86.0')]
