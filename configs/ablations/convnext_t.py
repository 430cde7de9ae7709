# Supplement Table 1, row "ConvNeXt" (29M / 4.5G, 82.1% top-1): ConvNeXt-T,
# mmpretrain's ConvNeXt through mmparc.ConvNeXtParC with no layer replaced,
# trained with the same ImageNet-1K recipe as configs/imagenet_parcnetv2_t.py
# (ConvNeXt's own: AdamW lr 4e-3 for 4096 images, weight decay 0.05, 300
# epochs, 20 warm-up, RandAugment, mixup/cutmix, label smoothing 0.1, random
# erasing 0.25; no EMA, as the ParCNetV2 configs); stochastic depth 0.1,
# ConvNeXt-T's.
#
#   mim train mmpretrain configs/ablations/convnext_t.py --gpus 8 --launcher pytorch \
#       --cfg-options optim_wrapper.accumulative_counts=4   # 8 x 128 x 4 = 4096
#   python tools/analysis_tools/analyze.py configs/ablations/*.py --paper
_base_ = ['../imagenet_parcnetv2_t.py']

custom_imports = dict(imports=['mmparc', 'mmparc.models.convnext'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmparc.ConvNeXtParC',
        arch='tiny',
        drop_path_rate=0.1,
        layer_scale_init_value=1e-6,
        out_indices=-1,
        gap_before_final_norm=True),
    head=dict(in_channels=768))

# The figures the paper prints for this model (tools/analysis_tools/analyze.py --paper).
paper = [dict(table='Supp. Table 1', row='ConvNeXt', params='29', macs='4.5', top1='82.1')]
