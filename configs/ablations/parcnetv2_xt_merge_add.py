# Supplement Table 3, row "Add" (7.4M / 1.6G, 68.4% top-1): ParCNetV2-XT whose
# bifurcate gate units merge their two branches by addition instead of
# multiplication.
#
# The paper does not say which gate units it changed; the table is about
# "merging of branches" of the BGU, and both units are BGUs, so our choice
# changes both: the mixer computes pwconv2(value + gate) and the channel unit
# fc2(value + gelu(gate)).  Same layers and parameters: 7.43M / 1.55G.
_base_ = ['../imagenet_parcnetv2_xt.py']

model = dict(backbone=dict(branch_merge='add'))

paper = [dict(table='Supp. Table 3', row='Add', params='7.4', macs='1.6', top1='68.4')]
