"""The official ParCNetV2 norm, ``w * (x - mean) / max(||x - mean||_2, eps) + b``.

Over the last dimension.  :func:`l2_layer_norm` computes it with one fused
kernel (and its fused backward) where that is exact; the reference is
:func:`l2_layer_norm_reference`.
"""
import math
from typing import Optional

import torch

from .dispatch import on_devices

# Added to the variance by the fused path: far below float rounding for any
# vector whose length is >= eps, yet it keeps a zero vector finite.
_TINY_VARIANCE = 1e-30


def l2_layer_norm_reference(x: torch.Tensor, weight: Optional[torch.Tensor],
                            bias: Optional[torch.Tensor], eps: float) -> torch.Tensor:
    """The official formula, op by op.

    Where the length is below ``eps`` the output (``centred / eps``) is the
    official one, but it is treated as a constant in the backward pass: the
    exact gradient there is ``1 / eps`` (a million) times the incoming one, and
    over the zero padding of detection batches, where a zero-initialised
    network holds exact zeros, it compounds across norms until it overflows.
    """
    centred = x - x.mean(-1, keepdim=True)
    length = torch.linalg.vector_norm(centred, dim=-1, keepdim=True)
    if torch.is_grad_enabled() and centred.requires_grad:  # (only the backward differs)
        centred = torch.where(length < eps, centred.detach(), centred)
    out = centred / length.clamp_min(eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def l2_layer_norm(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                  eps: float) -> torch.Tensor:
    """:func:`l2_layer_norm_reference`, fused where that is exact (CPU, eager).

    With ``n = ||x - mean||`` and ``C`` channels, ``LayerNorm`` gives
    ``(x - mean) * sqrt(C) / sqrt(n^2 + C * e)``; with a negligible ``e`` and
    the weight scaled by ``1 / sqrt(C)`` that is the official output wherever
    ``n >= eps``.  One fused kernel (and a fused backward) replaces six
    element-wise passes.  Two cases are detected from the returned ``rstd``
    and then the whole input takes the reference formula, so results never
    differ beyond float rounding: rows with ``n < eps`` (the official divisor
    is the clamp there), and rows whose variance overflows the dtype (``rstd``
    of 0, e.g. ``|x| ~ 1e20`` in float32, where the reference's scaled norm
    stays finite).  The check reads two values on the host; that is cheap on
    CPU only, so other devices run the reference.
    """
    if not on_devices(x, ('cpu', )) or x.numel() == 0:
        return l2_layer_norm_reference(x, weight, bias, eps)
    channels = x.shape[-1]
    scale = math.sqrt(channels)
    if weight is None:
        weight = x.new_ones(channels)
    # (`weight * (1 / scale)`: division by a Python float costs a dtype copy.)
    out, _, rstd = torch.native_layer_norm(x, (channels, ), weight * (1 / scale), bias,
                                           _TINY_VARIANCE)
    smallest, largest = torch.aminmax(rstd)
    if largest.item() > scale / eps or not smallest.item() > 0:
        return l2_layer_norm_reference(x, weight, bias, eps)
    return out
