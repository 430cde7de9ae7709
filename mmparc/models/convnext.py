"""mmpretrain's ConvNeXt with ParCNetV2's layers in its blocks (supplement, Table 1).

Needs mmpretrain (``pip install 'mmparc[cls]'``); configs load it with
``custom_imports=dict(imports=['mmparc', 'mmparc.models.convnext'])``.
"""
from typing import List, Optional, Sequence, Union

import torch.nn as nn

from ..registry import MODELS
from . import plugins  # noqa: F401  (registers the layers built below)

try:
    from mmpretrain.models.backbones import ConvNeXt
except ImportError as err:  # pragma: no cover  (the 'cls' extra is missing)
    raise ImportError("mmparc.models.convnext needs mmpretrain: pip install 'mmparc[cls]'") \
        from err

LayerCfg = Optional[Union[dict, Sequence[dict]]]
# ConvNeXt's initialisation, extended to mmparc's 1x1 layers (not nn.Conv2d
# or nn.Linear subclasses); the depthwise and oversized ones are nn.Conv2d.
INIT_CFG = [
    dict(type='TruncNormal', layer=['Conv2d', 'Linear', 'PointwiseConv2d', 'GatedProjection'],
         std=.02, bias=0.),
    dict(type='Constant', layer=['LayerNorm'], val=1., bias=0.),
]


@MODELS.register_module()
class ConvNeXtParC(ConvNeXt):
    """ConvNeXt whose blocks take a token mixer and/or a channel mixer by config.

    The block is mmpretrain's ``ConvNeXtBlock``, unchanged in its forward
    pass (``depthwise_conv -> norm -> pointwise_conv1 -> act ->
    pointwise_conv2``, layer scale, residual), with layers put in its slots:

    * ``token_mixer`` takes the place of the 7x7 ``depthwise_conv``, e.g.
      ``GlobalLocalConv`` ("ConvNeXt + OC") or ``SpatialBGU`` ("+ S-BGU");
    * ``channel_mixer`` takes the MLP's place, e.g. ``ChannelBGU`` ("+ C-BGU"):
      it is ``pointwise_conv1`` and ``act``/``pointwise_conv2`` become
      identities (the block runs its ``(B, C, H, W)`` path,
      ``linear_pw_conv=False``).

    Each is a layer config (one for every stage, or a list with one per
    stage) without ``dim``, which is filled in with the stage's channels.
    All other arguments are ConvNeXt's (which rejects unknown ones).
    """

    def __init__(self, arch: Union[str, dict] = 'tiny', token_mixer: LayerCfg = None,
                 channel_mixer: LayerCfg = None, linear_pw_conv: bool = True,
                 use_grn: bool = False, init_cfg: Optional[Union[dict, List[dict]]] = INIT_CFG,
                 **convnext_args) -> None:
        if channel_mixer is not None:
            if use_grn:
                raise ValueError('use_grn: a channel_mixer replaces the MLP that GRN acts in')
            linear_pw_conv = False
        super().__init__(arch, linear_pw_conv=linear_pw_conv, use_grn=use_grn,
                         init_cfg=init_cfg, **convnext_args)
        token_cfgs = self._per_stage('token_mixer', token_mixer)
        channel_cfgs = self._per_stage('channel_mixer', channel_mixer)
        for stage, dim, token_cfg, channel_cfg in zip(self.stages, self.channels, token_cfgs,
                                                       channel_cfgs):
            for block in stage:
                if token_cfg is not None:
                    block.depthwise_conv = MODELS.build(dict(token_cfg, dim=dim))
                if channel_cfg is not None:
                    block.pointwise_conv1 = MODELS.build(dict(channel_cfg, dim=dim))
                    block.act = nn.Identity()
                    block.pointwise_conv2 = nn.Identity()

    def _per_stage(self, name: str, cfg: LayerCfg) -> List[Optional[dict]]:
        if cfg is None or isinstance(cfg, dict):
            cfgs = [cfg] * self.num_stages
        else:
            cfgs = list(cfg)
        if len(cfgs) != self.num_stages or not all(
                c is None or (isinstance(c, dict) and 'type' in c) for c in cfgs):
            raise ValueError(f'{name} must be a layer config with a type, or one per stage '
                             f'({self.num_stages}), got {cfg!r}')
        if any(c is not None and 'dim' in c for c in cfgs):
            raise ValueError(f'{name}: leave out dim, it is each stage\'s channels')
        return cfgs
