# Supplement Table 2, row "DWConv-Vertical 1D-Horizontal 1D" (7.4M / 1.6G,
# 78.4% top-1): ParCNetV2-XT whose mixer applies its convolutions to the gate
# in cascade: the 7x7 depthwise convolution, then the vertical, then the
# horizontal oversized 1-D one (instead of summing the oversized and 7x7 ones
# in parallel).  Same layers and parameters as the paper's model: 7.43M /
# 1.55G.
_base_ = ['../imagenet_parcnetv2_xt.py']

model = dict(backbone=dict(mixer='cascade_dw_v_h'))

paper = [dict(table='Supp. Table 2', row='DWConv-Vertical 1D-Horizontal 1D',
              params='7.4', macs='1.6', top1='78.4')]
