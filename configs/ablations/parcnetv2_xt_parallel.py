# Supplement Tables 2 and 3, rows "Parallel" and "Multiply" (7.4M / 1.6G,
# 79.4% top-1): ParCNetV2-XT as the paper builds it (oversized and 7x7
# depthwise convolutions in parallel, both gate units merging by
# multiplication), i.e. configs/imagenet_parcnetv2_xt.py; this file adds the
# paper's figures for the ablation tables.
#
#   mim train mmpretrain configs/ablations/parcnetv2_xt_parallel.py --gpus 8 --launcher pytorch \
#       --cfg-options optim_wrapper.accumulative_counts=4   # 8 x 128 x 4 = 4096
#   python tools/analysis_tools/analyze.py configs/ablations/*.py --paper
_base_ = ['../imagenet_parcnetv2_xt.py']

model = dict(backbone=dict(mixer='parallel', branch_merge='mul'))

paper = [
    dict(table='Supp. Table 2', row='Parallel', params='7.4', macs='1.6', top1='79.4'),
    dict(table='Supp. Table 3', row='Multiply', params='7.4', macs='1.6', top1='79.4'),
]
