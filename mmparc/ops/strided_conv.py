"""Strided convolution of channels-last maps, with a faster CPU weight gradient.

Reference: :func:`strided_conv2d_reference`, ``F.conv2d``.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .dispatch import needs_grad, on_devices

Pair = Tuple[int, int]


def strided_conv2d_reference(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                             stride: Pair, padding: Pair) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)``."""
    return F.conv2d(x, weight, bias, stride, padding)


class _StridedConv2d(torch.autograd.Function):
    """``conv2d`` whose weight gradient is taken on contiguous copies.

    oneDNN computes the weight gradient of a channels-last convolution 3-5x
    slower than that of contiguous tensors (e.g. 166 ms against 39 ms for
    the first downsampling at 800x1216), far more than the copies cost.
    The input gradient stays channels-last, where it is faster.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                stride: Pair, padding: Pair) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, bias is not None)
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        stride, padding, has_bias = ctx.geometry
        grad_x = grad_w = grad_b = None
        conv_backward = torch.ops.aten.convolution_backward
        geometry = (stride, padding, (1, 1), False, (0, 0), 1)
        x_in, w_in = x.to(grad.dtype), weight.to(grad.dtype)
        if ctx.needs_input_grad[0]:
            grad_x = conv_backward(grad, x_in, w_in, None, *geometry,
                                   (True, False, False))[0].to(x.dtype)
        if ctx.needs_input_grad[1]:  # all three contiguous, or the slow kernel is chosen
            grad_w = conv_backward(grad.contiguous(), x_in.contiguous(), w_in.contiguous(), None,
                                   *geometry, (False, True, False))[1].to(weight.dtype)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3)).to(weight.dtype)
        return grad_x, grad_w, grad_b, None, None


def strided_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                   stride: Pair, padding: Pair) -> torch.Tensor:
    """:func:`strided_conv2d_reference`, with the faster weight gradient on CPU."""
    if on_devices(x, ('cpu', )) and needs_grad(x, weight, bias):
        return _StridedConv2d.apply(x, weight, bias, stride, padding)
    return strided_conv2d_reference(x, weight, bias, stride, padding)
