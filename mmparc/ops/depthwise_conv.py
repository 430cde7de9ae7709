"""Depthwise 'same' convolution with a fast CPU backward pass.

Reference: :func:`depthwise_conv2d_reference`, ``F.conv2d(..., groups=C)``.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .dispatch import as_dtype, needs_grad, on_devices


def _check_kernel(weight: torch.Tensor) -> None:
    if weight.dim() != 4 or weight.shape[1] != 1:
        raise ValueError(f'expected depthwise kernels (C, 1, kh, kw), got {tuple(weight.shape)}')
    if weight.shape[2] % 2 == 0 or weight.shape[3] % 2 == 0:
        raise ValueError(f'expected odd kernel sizes, got {tuple(weight.shape[2:])}')


def depthwise_conv2d_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, weight, padding='same', groups=C)`` for odd ``(C, 1, kh, kw)`` kernels."""
    _check_kernel(weight)
    return F.conv2d(x, weight.to(x.dtype), padding=(weight.shape[2] // 2, weight.shape[3] // 2),
                    groups=x.shape[1])


def is_channel_major(x: torch.Tensor) -> bool:
    """Whether NCHW ``x`` is stored as a contiguous ``(C, N, H, W)`` tensor.

    Read from sizes and strides in Python (no dispatcher call: a hot path).
    """
    if x.dim() != 4:
        return False
    batch, channels, height, width = x.shape
    expected = (height * width, batch * height * width, width, 1)  # strides of N, C, H, W
    return all(size == 1 or stride == want
               for size, stride, want in zip(x.shape, x.stride(), expected))


def _depthwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Depthwise 'same' ``conv2d``, keeping channel-major storage channel-major."""
    batch, channels, height, width = x.shape
    weight = as_dtype(weight, x.dtype)
    padding = (weight.shape[2] // 2, weight.shape[3] // 2)
    if batch == 1 or not is_channel_major(x):
        return F.conv2d(x, weight, padding=padding, groups=channels)
    # (C, N, H, W) storage is the NCHW tensor (1, C * N, H, W): C * N groups.
    flat = x.transpose(0, 1).reshape(1, channels * batch, height, width)
    out = F.conv2d(flat, weight.repeat_interleave(batch, 0), padding=padding,
                   groups=channels * batch)
    return out.view(channels, batch, height, width).transpose(0, 1)


class _DepthwiseConv2d(torch.autograd.Function):
    """Depthwise 'same' convolution whose weight gradient is itself a convolution.

    PyTorch's depthwise weight gradient runs 5-15x slower than the forward
    convolution on CPU.  Here it is a depthwise convolution of each image of
    the input by its output gradient (``C * N`` groups, an ``H x W`` kernel,
    a ``kh x kw`` output), summed over images (6-12x faster than C groups of
    N channels each); the input gradient is the convolution of the output
    gradient by the flipped kernel.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return _depthwise(x, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        x, weight = ctx.saved_tensors
        batch, channels, height, width = x.shape
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = _depthwise(grad, weight.to(grad.dtype).flip(2, 3)).to(x.dtype)
        if ctx.needs_input_grad[1]:
            groups = channels * batch
            flat = x.to(grad.dtype).transpose(0, 1).reshape(1, groups, height, width)
            kernel = grad.transpose(0, 1).reshape(groups, 1, height, width)
            grad_w = F.conv2d(flat, kernel, groups=groups,
                              padding=(weight.shape[2] // 2, weight.shape[3] // 2))
            grad_w = grad_w.view(channels, batch, *weight.shape[2:]).sum(1, keepdim=True)
            grad_w = grad_w.to(weight.dtype)
        return grad_x, grad_w


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """:func:`depthwise_conv2d_reference`, with the fast backward on CPU.

    NCHW ``x`` may be contiguous, channels-last or channel-major (the
    transpose of a contiguous ``(C, N, H, W)``); the output keeps that
    storage, so the oversized convolution's GEMM layout needs no copies.
    """
    _check_kernel(weight)
    if not on_devices(x, ('cpu', )):
        return depthwise_conv2d_reference(x, weight)
    if needs_grad(x, weight):
        return _DepthwiseConv2d.apply(x, weight)
    return _depthwise(x, weight)
