# Supplement Table 2, row "DWConv only" (7.4M / 1.6G, 78.9% top-1):
# ParCNetV2-XT whose mixer has no oversized convolution, only a depthwise one
# on the gate branch.
#
# The table prints the same 7.4M / 1.6G for every row.  Dropping the
# oversized convolution alone gives 7.25M / 1.41G (local_kernel_sizes 7 in
# every stage: tools/analysis_tools/analyze.py <this file> --cfg-options
# "model.backbone.local_kernel_sizes=[7,7,7,7]"); our choice keeps the budget: the depthwise kernel's side is
# the odd number whose square is nearest the taps it replaces (oversized
# 2S-1 + 2S-1 plus 7x7 at 224: 271, 159, 103, 75 taps -> 17, 13, 11, 9),
# which gives 7.47M / 1.57G.
_base_ = ['../imagenet_parcnetv2_xt.py']

model = dict(backbone=dict(mixer='dwconv_only', local_kernel_sizes=[17, 13, 11, 9]))

paper = [dict(table='Supp. Table 2', row='DWConv only', params='7.4', macs='1.6', top1='78.9')]
