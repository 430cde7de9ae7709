"""Oversized depthwise convolution: a vertical then a horizontal 1-D kernel.

Two kernel modes exist:

* ``'fixed'``: the kernels keep the lengths they were trained with (111, 55,
  27, 13 for 224 pretraining) and are applied with 'same' zero padding at any
  input size.  This is what the official detection/segmentation code runs.
* ``'global'``: the paper's definition.  For an ``H x W`` input the kernels are
  resampled (linear, ``align_corners=True``, as the official
  ``OversizeConv2d(interpolate=True)``) to ``2H - 1`` and ``2W - 1`` taps, so
  every output sees the whole map.  For a map of height 1 the resampled
  kernel is the *first* stored tap, because that is what ``align_corners``
  interpolation to one sample returns; we keep it for parity.

Both modes compute a depthwise 'same' convolution whose kernel may be much
longer than the map.  Taps further than ``size - 1`` from the centre only
ever meet padding, so they are dropped.  What remains is evaluated in one of
two ways (``impl``):

* ``'toeplitz'``: along an axis of length ``S`` the convolution is the
  product with a per-channel ``S x S`` Toeplitz matrix, batched over
  channels on *channel-major* ``(C, N, H, W)`` data, where both passes are a
  single ``bmm`` without copies.  It does ``S`` multiply-adds per output
  (the direct form does ``K``, up to ``2S - 1``), on GEMM kernels, and its
  backward pass is two more products; PyTorch's depthwise convolution is
  many times slower than GEMM for long kernels, and its weight gradient far
  more so (on CPU: 10-30x the forward time).
* ``'direct'``: depthwise ``conv2d`` (channels-last is its fast layout).

``'auto'`` takes the Toeplitz form unless the dense matrix would do more than
:data:`TOEPLITZ_MAX_RATIO` times the multiply-adds of the (cropped) kernel,
i.e. for short fixed kernels on large maps.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

KERNEL_MODES = ('fixed', 'global')
IMPLEMENTATIONS = ('auto', 'direct', 'toeplitz')
# Measured on CPU (2 cores, fp32, forward and training step): the dense
# product stays ahead of the depthwise convolution up to ~3x the nominal
# multiply-adds at the detection scale; at 4x it is at par in inference and
# still well ahead in training.
TOEPLITZ_MAX_RATIO = 4
# torch's CPU bmm falls back to a scalar loop for products under 400
# multiply-adds (4x slower than MKL on a 7 x 7 x 7 product): shorter axes are
# zero-padded to 8 for the Toeplitz form (and the result cropped).
TOEPLITZ_MIN_SIZE = 8


def resample_kernel(weight: torch.Tensor, length: int) -> torch.Tensor:
    """Resample 1-D kernels ``(C, K)`` to ``(C, length)`` taps.

    Linear interpolation with ``align_corners=True``: the end taps stay put,
    which is how the official code stretches kernels to a new input size and
    how we adapt checkpoints trained with other kernel lengths.
    """
    if weight.dim() != 2:
        raise ValueError(f'expected kernels of shape (C, K), got {tuple(weight.shape)}')
    if length < 1:
        raise ValueError(f'kernel length must be >= 1, got {length}')
    if weight.shape[1] == length:
        return weight
    return F.interpolate(weight.unsqueeze(0), size=length, mode='linear',
                         align_corners=True).squeeze(0)


def crop_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Drop the taps of odd ``(C, K)`` kernels that cannot meet an axis of ``size``."""
    length = kernel.shape[1]
    if length % 2 == 0:
        raise ValueError(f'oversized kernels must have odd length, got {length}')
    half, reach = length // 2, size - 1
    if half <= reach:
        return kernel
    return kernel[:, half - reach:half + reach + 1]


def toeplitz(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Per-channel ``(C, size, size)`` matrices of centred odd kernels ``(C, K)``.

    ``T[c, i, j] = kernel[c, j - i + K // 2]`` where that tap exists, else 0,
    so that ``T[c] @ x`` is the 'same' cross-correlation of ``x`` along its
    first axis.  Built as a flipped sliding window over the kernel padded or
    cropped to ``2 * size - 1`` taps: one copy, and a cheap backward.
    """
    kernel = crop_kernel(kernel, size)
    pad = size - 1 - kernel.shape[1] // 2
    if pad:
        kernel = F.pad(kernel, (pad, pad))
    return kernel.unfold(1, size, 1).flip(1)


def use_toeplitz(size: int, length: int, impl: str) -> bool:
    """Whether a pass of a ``length``-tap kernel along ``size`` goes to GEMM."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f'impl must be one of {IMPLEMENTATIONS}, got {impl!r}')
    if impl != 'auto':
        return impl == 'toeplitz'
    return size <= TOEPLITZ_MAX_RATIO * min(length, 2 * size - 1)


def _toeplitz_product(v: torch.Tensor, matrix: torch.Tensor, dim: int,
                      add: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``T @ x`` along ``dim`` of contiguous channel-major ``(C, N, H, W)``, plus ``add``.

    Along W the rows of all images form one strided matrix, so it is one
    ``bmm`` (``baddbmm`` accumulates ``add`` in the GEMM); along H they only
    do for a single image.
    """
    channels, batch, height, width = v.shape
    if dim == 3:
        rows = v.view(channels, batch * height, width)
        if add is None:
            out = torch.bmm(rows, matrix.transpose(1, 2))
        else:
            out = torch.baddbmm(add.reshape(rows.shape), rows, matrix.transpose(1, 2))
        return out.view(v.shape)
    if batch == 1:
        out = torch.bmm(matrix, v.view(channels, height, width)).view(v.shape)
    else:
        out = torch.matmul(matrix.unsqueeze(1), v)
    return out if add is None else out + add


class _ToeplitzPass(torch.autograd.Function):
    """:func:`_toeplitz_product` that saves the kernel, not its ``S x S`` matrices.

    The matrices are rebuilt in the backward pass (one copy each); saving
    them would add about a tenth to the activation memory of training.
    """

    @staticmethod
    def forward(ctx, v: torch.Tensor, kernel: torch.Tensor, dim: int,
                add: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(v, kernel)
        ctx.dim = dim
        return _toeplitz_product(v, toeplitz(kernel.to(v.dtype), v.shape[dim]), dim, add)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        v, kernel = ctx.saved_tensors
        dim = ctx.dim
        channels, batch, height, width = v.shape
        size = v.shape[dim]
        grad = grad.contiguous()
        x = v.to(grad.dtype)
        matrix = toeplitz(kernel.to(grad.dtype), size)
        grad_v = grad_kernel = None
        if dim == 3:  # out = x @ T^T
            grad_rows = grad.view(channels, batch * height, width)
            if ctx.needs_input_grad[0]:
                grad_v = torch.bmm(grad_rows, matrix).view(v.shape)
            if ctx.needs_input_grad[1]:
                grad_matrix = torch.bmm(grad_rows.transpose(1, 2),
                                        x.view(channels, batch * height, width))
        else:  # out = T @ x, per image
            if ctx.needs_input_grad[0]:
                grad_v = _toeplitz_product(grad, matrix.transpose(1, 2), 2)
            if ctx.needs_input_grad[1]:
                if batch == 1:
                    grad_matrix = torch.bmm(grad.view(channels, height, width),
                                            x.view(channels, height, width).transpose(1, 2))
                else:
                    grad_matrix = torch.einsum('cnhw,cnkw->chk', grad, x)
        if ctx.needs_input_grad[1]:
            # T = pad(kernel).unfold(1, S, 1).flip(1): sum dT along its diagonals.
            padded = torch.ops.aten.unfold_backward(grad_matrix.flip(1), [channels, 2 * size - 1],
                                                    1, size, 1)
            pad = size - 1 - kernel.shape[1] // 2
            grad_kernel = padded[:, pad:pad + kernel.shape[1]].to(kernel.dtype)
        if grad_v is not None:
            grad_v = grad_v.to(v.dtype)
        return grad_v, grad_kernel, None, grad if ctx.needs_input_grad[3] else None


def _toeplitz_pass(v: torch.Tensor, kernel: torch.Tensor, dim: int,
                   add: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Toeplitz convolution of contiguous channel-major ``(C, N, H, W)`` along ``dim``.

    ``kernel`` is cropped (at most ``2 * size - 1`` taps); ``add`` (same shape
    as ``v``) is added to the result, inside the GEMM along W.
    """
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                       for t in (v, kernel, add)):
        return _ToeplitzPass.apply(v, kernel, dim, add)
    return _toeplitz_product(v, toeplitz(kernel.to(v.dtype), v.shape[dim]), dim, add)


def _direct_pass(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """Depthwise 'same' convolution of NCHW ``x`` (any memory format) along ``dim``."""
    channels, length = kernel.shape
    shape = (channels, 1, length, 1) if dim == 2 else (channels, 1, 1, length)
    return depthwise_conv2d(x, kernel.reshape(shape))


def _to_channel_major(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` to contiguous ``(C, N, H, W)`` (free for one NCHW image)."""
    return x.transpose(0, 1).contiguous()


def _from_channel_major(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(C, N, H, W)`` back to ``(N, C, H, W)`` in the memory format of ``like``."""
    out = v.transpose(0, 1)
    if like.dim() == 4 and not like.is_contiguous() and like.is_contiguous(
            memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out.contiguous()


def oversized_channel_major(v: torch.Tensor, kernel_h: torch.Tensor, kernel_w: torch.Tensor,
                            impl: str = 'auto', add: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Vertical then horizontal 'same' convolution of channel-major ``(C, N, H, W)``.

    The layout in which the Toeplitz form needs no copies; the mixer of
    :class:`~mmparc.models.ParCNetV2` produces it directly from ``pwconv1``.
    ``add``, a tensor of the same shape, is added to the result (inside the
    last GEMM when it can).  Returns a contiguous ``(C, N, H, W)`` tensor.
    """
    v = v.contiguous()
    height, width = v.shape[2:]
    kernel_h = crop_kernel(kernel_h, height)
    kernel_w = crop_kernel(kernel_w, width)
    gemm_h = use_toeplitz(height, kernel_h.shape[1], impl)
    gemm_w = use_toeplitz(width, kernel_w.shape[1], impl)
    pad_h = max(TOEPLITZ_MIN_SIZE - height, 0) if gemm_h else 0
    pad_w = max(TOEPLITZ_MIN_SIZE - width, 0) if gemm_w else 0
    if pad_h or pad_w:
        # Zero rows/columns beyond the map are what 'same' padding reads; the
        # extra outputs are cropped.
        v = F.pad(v, (0, pad_w, 0, pad_h))
    v = _toeplitz_pass(v, kernel_h, 2) if gemm_h else _direct_channel_major(v, kernel_h, 2)
    if gemm_w and not (pad_h or pad_w):
        return _toeplitz_pass(v, kernel_w, 3, add)
    v = _toeplitz_pass(v, kernel_w, 3) if gemm_w else _direct_channel_major(v, kernel_w, 3)
    v = v[:, :, :height, :width]
    return v.contiguous() if add is None else v + add


def _direct_channel_major(v: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    # Depthwise convolution with a long kernel is several times faster
    # channels-last than on this layout.
    x = v.transpose(0, 1).contiguous(memory_format=torch.channels_last)
    return _to_channel_major(_direct_pass(x, kernel, dim))


def conv1d_same(x: torch.Tensor, kernel: torch.Tensor, dim: int,
                impl: str = 'auto') -> torch.Tensor:
    """Depthwise 'same' convolution of NCHW ``x`` along ``dim`` (2: H, 3: W).

    ``kernel`` is ``(C, K)`` with ``K`` odd (cross-correlation, as
    :func:`torch.nn.functional.conv2d`).  Taps that can only meet padding are
    cropped, so the cost never exceeds that of a ``2 * size - 1`` kernel.  The
    result has the memory format of ``x``.
    """
    kernel = crop_kernel(kernel, x.shape[dim])
    if use_toeplitz(x.shape[dim], kernel.shape[1], impl):
        return _from_channel_major(_toeplitz_pass(_to_channel_major(x), kernel, dim), x)
    return _direct_pass(x, kernel, dim)


def _channel_major(x: torch.Tensor) -> bool:
    """Whether NCHW ``x`` is stored as contiguous ``(C, N, H, W)``."""
    return x.transpose(0, 1).is_contiguous()


def _depthwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Depthwise 'same' ``conv2d``, keeping channel-major storage channel-major."""
    batch, channels, height, width = x.shape
    weight = weight.to(x.dtype)
    padding = (weight.shape[2] // 2, weight.shape[3] // 2)
    if batch == 1 or not _channel_major(x):
        return F.conv2d(x, weight, padding=padding, groups=channels)
    # (C, N, H, W) storage is the NCHW tensor (1, C * N, H, W): C * N groups.
    flat = x.transpose(0, 1).reshape(1, channels * batch, height, width)
    out = F.conv2d(flat, weight.repeat_interleave(batch, 0), padding=padding,
                   groups=channels * batch)
    return out.view(channels, batch, height, width).transpose(0, 1)


class _DepthwiseConv2d(torch.autograd.Function):
    """Depthwise 'same' convolution with a fast backward pass.

    PyTorch's depthwise weight gradient runs 5-15x slower than the forward
    convolution on CPU (it is what makes the direct oversized convolution
    slow to train).  Here the weight gradient is itself a depthwise
    convolution, of each image of the input by its output gradient
    (``C * N`` groups, an ``H x W`` kernel, a ``kh x kw`` output), summed
    over images; the input gradient is the convolution of the output
    gradient by the flipped kernel.  Used on CPU only.
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
            # One depthwise "convolution" per (channel, image) pair, H x W
            # kernel, then a sum over images (6-12x faster than C groups of
            # N channels each).
            groups = channels * batch
            flat = x.to(grad.dtype).transpose(0, 1).reshape(1, groups, height, width)
            kernel = grad.transpose(0, 1).reshape(groups, 1, height, width)
            grad_w = F.conv2d(flat, kernel, groups=groups,
                              padding=(weight.shape[2] // 2, weight.shape[3] // 2))
            grad_w = grad_w.view(channels, batch, *weight.shape[2:]).sum(1, keepdim=True)
            grad_w = grad_w.to(weight.dtype)
        return grad_x, grad_w


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, weight, padding='same', groups=C)`` for odd ``(C, 1, kh, kw)`` kernels.

    NCHW ``x`` may be contiguous, channels-last or channel-major (the
    transpose of a contiguous ``(C, N, H, W)``); the output keeps that
    storage.  The backward pass is fast (see :class:`_DepthwiseConv2d`).
    """
    if weight.shape[2] % 2 == 0 or weight.shape[3] % 2 == 0:
        raise ValueError(f'expected odd kernel sizes, got {tuple(weight.shape[2:])}')
    if (x.device.type == 'cpu' and torch.is_grad_enabled()
            and (x.requires_grad or weight.requires_grad)):
        return _DepthwiseConv2d.apply(x, weight)
    return _depthwise(x, weight)


def instance_kernels(weight_h: torch.Tensor, weight_w: torch.Tensor, mode: str,
                     height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``(C, K)`` vertical and horizontal kernels used for an input size."""
    kernel_h = weight_h.flatten(1)
    kernel_w = weight_w.flatten(1)
    if mode == 'global':
        kernel_h = resample_kernel(kernel_h, 2 * height - 1)
        kernel_w = resample_kernel(kernel_w, 2 * width - 1)
    elif mode != 'fixed':
        raise ValueError(f'kernel_mode must be one of {KERNEL_MODES}, got {mode!r}')
    return kernel_h, kernel_w


class OversizedConv2d(nn.Module):
    """Depthwise oversized convolution (vertical, then horizontal).

    Parameters keep the official layout (``conv_h.weight`` of shape
    ``(C, 1, K, 1)``, ``conv_w.weight`` of shape ``(C, 1, 1, K)``) so official
    checkpoints load unchanged.  A checkpoint with other kernel lengths is
    resampled on load, with a warning.

    Args:
        channels: Number of channels (depthwise).
        kernel_size: Stored kernel length, odd.
        mode: ``'fixed'`` or ``'global'`` (see module docstring).
        impl: ``'auto'``, ``'direct'`` or ``'toeplitz'``; all give the same
            result up to float rounding.
    """

    def __init__(self, channels: int, kernel_size: int, mode: str = 'fixed',
                 impl: str = 'auto') -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be a positive odd number, got {kernel_size}')
        if mode not in KERNEL_MODES:
            raise ValueError(f'kernel_mode must be one of {KERNEL_MODES}, got {mode!r}')
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f'impl must be one of {IMPLEMENTATIONS}, got {impl!r}')
        self.channels = channels
        self.kernel_size = kernel_size
        self.mode = mode
        self.impl = impl
        self.conv_h = nn.Conv2d(channels, channels, (kernel_size, 1), groups=channels, bias=False)
        self.conv_w = nn.Conv2d(channels, channels, (1, kernel_size), groups=channels, bias=False)

    def kernels(self, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``(C, K)`` kernels applied to an ``height x width`` map."""
        return instance_kernels(self.conv_h.weight, self.conv_w.weight, self.mode, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2:]
        kernel_h, kernel_w = self.kernels(height, width)
        if not (use_toeplitz(height, crop_kernel(kernel_h, height).shape[1], self.impl)
                or use_toeplitz(width, crop_kernel(kernel_w, width).shape[1], self.impl)):
            return conv1d_same(conv1d_same(x, kernel_h, 2, 'direct'), kernel_w, 3, 'direct')
        out = oversized_channel_major(_to_channel_major(x), kernel_h, kernel_w, self.impl)
        return _from_channel_major(out, x)

    def forward_channel_major(self, v: torch.Tensor,
                              add: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The same convolution on channel-major ``(C, N, H, W)`` data (plus ``add``).

        See :func:`oversized_channel_major`; no layout copies are made.
        """
        kernel_h, kernel_w = self.kernels(v.shape[2], v.shape[3])
        return oversized_channel_major(v, kernel_h, kernel_w, self.impl, add)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs) -> None:
        for name, conv in (('conv_h', self.conv_h), ('conv_w', self.conv_w)):
            key = f'{prefix}{name}.weight'
            loaded = state_dict.get(key)
            if loaded is None or loaded.shape == conv.weight.shape:
                continue
            if (loaded.dim() != 4 or loaded.shape[0] != self.channels
                    or loaded.shape[1] != 1 or (loaded.shape[2] == 1) == (name == 'conv_h')):
                continue  # let the default loader report the mismatch
            print_log(f'{key}: resampling oversized kernel from {max(loaded.shape[2:])} '
                      f'to {self.kernel_size} taps', logger='current', level=30)
            resampled = resample_kernel(loaded.flatten(1), self.kernel_size)
            state_dict[key] = resampled.view_as(conv.weight)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return f'{self.channels}, kernel_size={self.kernel_size}, mode={self.mode!r}'
