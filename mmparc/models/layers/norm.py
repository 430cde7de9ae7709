"""The ParCNetV2 block norm (the official ``LayerNorm`` of its release)."""
from typing import Optional

import torch
import torch.nn as nn

from ...ops import l2_layer_norm


class L2LayerNorm(nn.Module):
    """``w * (x - mean) / max(||x - mean||_2, eps)`` over the channels of NCHW maps.

    It differs from :class:`torch.nn.LayerNorm`: the centred channel vector is
    divided by its Euclidean length (clamped at ``eps``), not by its standard
    deviation, so outputs are ``1 / sqrt(C)`` of a LayerNorm's and ``eps``
    acts on the length.  Pretrained weights only reproduce the official
    network with exactly this normalisation.  Evaluated by
    :func:`mmparc.ops.l2_layer_norm`; channels-last storage is its fast
    layout (and the output's).

    Args:
        num_channels: Channels (dimension 1 of the input).
        eps: Lower bound of the divisor.
        bias: Whether to learn an additive bias (the official model has none).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6, bias: bool = False) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.weight: Optional[nn.Parameter] = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, H, W, C): a view of channels-last storage.
        out = l2_layer_norm(x.permute(0, 2, 3, 1), self.weight, self.bias, self.eps)
        return out.permute(0, 3, 1, 2)

    def take_scale(self) -> torch.Tensor:
        """Remove the scale and return it, for deployment to fold it into the next layer."""
        if self.weight is None or self.bias is not None:
            raise RuntimeError(f'cannot take the scale of {self!r}: only a scaled, bias-free '
                               'norm can pass its scale on')
        scale = self.weight.detach().clone()
        self.weight = None
        return scale

    def extra_repr(self) -> str:
        return (f'{self.num_channels}, eps={self.eps}, scaled={self.weight is not None}, '
                f'bias={self.bias is not None}')
