"""Norm layers of ParCNetV2, on channels-last ``(B, H, W, C)`` tensors."""
import math
from typing import Optional

import torch
import torch.nn as nn

# Added to the variance by the fused path: far below float rounding for any
# vector whose length is >= eps, yet it keeps a zero vector finite.
_TINY_VARIANCE = 1e-30


def l2_layer_norm_reference(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                            eps: float) -> torch.Tensor:
    """The official formula, op by op: ``w * (x - mean) / max(||x - mean||_2, eps) + b``.

    Where the length is below ``eps`` the output (``centred / eps``) is the
    official one, but it is treated as a constant in the backward pass: the
    exact gradient there is ``1 / eps`` (a million) times the incoming one, and
    over the zero padding of detection batches, where a zero-initialised
    network holds exact zeros, it compounds across norms until it overflows.
    """
    centred = x - x.mean(-1, keepdim=True)
    length = torch.linalg.vector_norm(centred, dim=-1, keepdim=True)
    tiny = length < eps
    centred = torch.where(tiny, centred.detach(), centred)
    out = centred / length.clamp_min(eps) * weight
    if bias is not None:
        out = out + bias
    return out


def l2_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                  eps: float) -> torch.Tensor:
    """:func:`l2_layer_norm_reference`, fused where that is exact.

    With ``n = ||x - mean||`` and ``C`` channels, ``LayerNorm`` gives
    ``(x - mean) * sqrt(C) / sqrt(n^2 + C * e)``; with a negligible ``e`` and
    the weight scaled by ``1 / sqrt(C)`` that is the official output wherever
    ``n >= eps``.  One fused kernel (and a fused backward) replaces six
    element-wise passes.  Rows with ``n < eps`` (where the official divisor
    is the clamp) are detected from the returned ``rstd`` and then the whole
    input takes the reference formula, so results never change beyond float
    rounding.  The check reads a value on the host, so it is only done on
    CPU in eager mode; elsewhere (other devices, ``torch.compile``, jit
    tracing and ONNX export) the reference formula runs.
    """
    if (x.device.type != 'cpu' or x.numel() == 0 or torch.compiler.is_compiling()
            or torch.jit.is_tracing()):  # a trace would freeze the host-side check
        return l2_layer_norm_reference(x, weight, bias, eps)
    channels = x.shape[-1]
    scale = math.sqrt(channels)
    # (`weight * (1 / scale)`: division by a Python float costs a dtype copy.)
    out, _, rstd = torch.native_layer_norm(x, (channels, ), weight * (1 / scale), bias,
                                           _TINY_VARIANCE)
    if rstd.max().item() > scale / eps:
        return l2_layer_norm_reference(x, weight, bias, eps)
    return out


class L2LayerNorm(nn.Module):
    """The official ParCNetV2 block norm: ``w * (x - mean) / ||x - mean||_2``.

    It differs from :class:`torch.nn.LayerNorm`: the centred channel vector is
    divided by its Euclidean length (clamped at ``eps``), not by its standard
    deviation, so outputs are ``1 / sqrt(C)`` of a LayerNorm's and ``eps``
    acts on the length.  Pretrained weights only reproduce the official
    network with exactly this normalisation (evaluated by
    :func:`l2_layer_norm`).

    Args:
        num_channels: Size of the last (channel) dimension.
        eps: Lower bound of the divisor.
        bias: Whether to learn an additive bias (the official model has none).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6, bias: bool = False) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2_layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f'{self.num_channels}, eps={self.eps}, bias={self.bias is not None}'
