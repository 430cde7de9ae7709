"""The paper's ideas as layers for other backbones, built by config.

Registered in mmparc's ``MODELS`` (and so found from mmpretrain, mmdet and
mmseg configs):

* ``OversizedConv2d``: the oversized convolution (OC), a vertical then a
  horizontal depthwise 1-D kernel, in ``'fixed'`` or ``'global'`` kernel mode
  (:class:`mmparc.models.layers.OversizedConv2d`);
* ``GlobalLocalConv``: an OC in parallel with a local depthwise convolution,
  summed (the spatial mixing of ParC V2 without its gate: what the
  supplement's Table 1 adds to ConvNeXt as "+ OC");
* ``SpatialBGU``: the spatial bifurcate gate unit (S-BGU), ParCNetV2's token
  mixer (:class:`mmparc.models.parcnetv2.SpatialBGU`, with its ablation options);
* ``ChannelBGU``: the channel bifurcate gate unit (C-BGU) that replaces the MLP
  (:class:`mmparc.models.parcnetv2.ChannelBGU`).

All take and return ``(B, C, H, W)`` maps with ``dim`` (``channels`` for
OC) channels, e.g. ``dict(type='mmparc.SpatialBGU', dim=96, kernel_size=None,
mixer='dwconv_only')``.  :class:`mmparc.models.convnext.ConvNeXtParC` shows
them inside mmpretrain's ConvNeXt.
"""
import torch
import torch.nn as nn

from ..registry import MODELS
from .layers import DepthwiseConv2d, OversizedConv2d
from .parcnetv2 import ChannelBGU, SpatialBGU

MODELS.register_module('OversizedConv2d', module=OversizedConv2d)
MODELS.register_module(module=SpatialBGU)
MODELS.register_module(module=ChannelBGU)


@MODELS.register_module()
class GlobalLocalConv(nn.Module):
    """``dwconv1(x) + dwconv2(x)``: an oversized and a local depthwise convolution.

    The sum that ParC V2's mixer forms on its gate branch (same parameter
    names), as a drop-in for a depthwise convolution of another backbone.

    Args:
        dim: Channels.
        kernel_size: Stored length of the oversized 1-D kernels, odd.
        kernel_mode: ``'fixed'`` or ``'global'`` (see
            :class:`mmparc.models.layers.OversizedConv1d`).
        local_kernel_size: Side of the local kernel, odd.
        conv_impl: How the oversized convolution is evaluated.
    """

    def __init__(self, dim: int, kernel_size: int, kernel_mode: str = 'fixed',
                 local_kernel_size: int = 7, conv_impl: str = 'auto') -> None:
        super().__init__()
        if not isinstance(local_kernel_size, int) or local_kernel_size < 1 or (
                local_kernel_size % 2 == 0):
            raise ValueError(f'local_kernel_size must be a positive odd int, '
                             f'got {local_kernel_size!r}')
        self.dwconv1 = OversizedConv2d(dim, kernel_size, kernel_mode, conv_impl)
        self.dwconv2 = DepthwiseConv2d(dim, local_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv1(x) + self.dwconv2(x)
