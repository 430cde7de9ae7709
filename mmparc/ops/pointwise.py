"""1x1 convolution of NCHW maps, into channel-major or channels-last storage.

The oversized convolution runs as batched GEMMs on channel-major maps
(contiguous ``(C, N, H, W)``, see :mod:`.oversized_conv`).  Writing the 1x1
convolution's output straight into that layout (one product with the
transposed input, whose rows are free to read from channels-last storage)
saves a layout copy per map.  The gated projection's backward pass reads
channel-major maps too, so training always writes them; in inference a
layer that feeds no oversized convolution (the MLP's ``fc1``) gets
channels-last rows, the faster product there (:func:`~.matmul.linear`,
with its bias fused).  The result is an ordinary NCHW tensor; only its
strides differ.  Reference: :func:`pointwise_conv2d_reference`.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .dispatch import as_dtype, needs_grad, on_devices
from .matmul import linear, uses_onednn


def _conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """``(O, I)`` or ``(O, I, 1, 1)`` weights as ``(O, I, 1, 1)``."""
    return weight.view(weight.shape[0], weight.shape[1], 1, 1)


def pointwise_conv2d_reference(x: torch.Tensor, weight: torch.Tensor,
                               bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``F.conv2d`` with a 1x1 kernel; ``weight`` is ``(O, I)`` or ``(O, I, 1, 1)``."""
    return F.conv2d(x, _conv_weight(weight).to(x.dtype), None if bias is None else bias.to(x.dtype))


def _channel_major_product(rows: torch.Tensor, matrix: torch.Tensor,
                           bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``matrix @ rows.T + bias[:, None]``, the product on :func:`~.matmul.linear`."""
    out = linear(matrix, rows, None)
    if bias is not None:
        out = out.add_(bias.unsqueeze(1))  # this op's own new tensor (linear saves none)
    return out


def pointwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                     channel_major: bool = True) -> torch.Tensor:
    """:func:`pointwise_conv2d_reference`, written channel-major (or channels-last rows).

    ``channel_major=False`` writes channels-last storage when autograd does
    not record the op (inference); training always writes channel-major.
    """
    if not on_devices(x, ('cpu', 'cuda')):
        return pointwise_conv2d_reference(x, weight, bias)
    batch, channels, height, width = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(-1, channels)  # a view for channels-last x
    matrix = as_dtype(weight if weight.dim() == 2 else weight.flatten(1), x.dtype)
    bias = None if bias is None else as_dtype(bias, x.dtype)
    if not channel_major and not needs_grad(x, matrix, bias):
        out = linear(rows, matrix, bias)
        return out.view(batch, height, width, matrix.shape[0]).permute(0, 3, 1, 2)
    if uses_onednn(matrix, rows, None):  # training too: linear's backward is oneDNN's
        out = _channel_major_product(rows, matrix, bias)
    elif bias is None:
        out = torch.mm(matrix, rows.t())
    else:
        out = torch.addmm(bias.unsqueeze(1), matrix, rows.t())
    return out.view(matrix.shape[0], batch, height, width).transpose(0, 1)
