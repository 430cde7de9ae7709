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
longer than the map.  Taps further than ``H - 1`` from the centre only ever
meet padding, so they are cropped first; what remains is evaluated either by
direct convolution or as a per-channel Toeplitz matrix product, which turns a
long depthwise convolution into GEMM work (see :func:`conv1d_same`).
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

KERNEL_MODES = ('fixed', 'global')
IMPLEMENTATIONS = ('auto', 'direct', 'toeplitz')


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


def _toeplitz(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Per-channel ``(C, size, size)`` matrices of a centred odd kernel.

    ``T[c, i, j] = kernel[c, j - i + K // 2]`` where that index exists, else 0.
    """
    channels, length = kernel.shape
    half = length // 2
    pos = torch.arange(size, device=kernel.device)
    offset = pos.view(1, size) - pos.view(size, 1) + half
    valid = (offset >= 0) & (offset < length)
    padded = torch.cat([kernel, kernel.new_zeros(channels, 1)], dim=1)
    index = torch.where(valid, offset, torch.full_like(offset, length))
    return padded[:, index]


def _use_toeplitz(size: int, length: int, other: int, impl: str) -> bool:
    if impl != 'auto':
        return impl == 'toeplitz'
    # A dense size x size product costs `size` MACs per output against
    # `length` for direct convolution, but runs on GEMM kernels that are many
    # times faster than depthwise convolution for long kernels.
    return length >= 9 and size <= 4 * length and other >= 4


def conv1d_same(x: torch.Tensor, kernel: torch.Tensor, dim: int,
                impl: str = 'auto') -> torch.Tensor:
    """Depthwise 'same' convolution of NCHW ``x`` along ``dim`` (2: H, 3: W).

    ``kernel`` is ``(C, K)`` with ``K`` odd (cross-correlation, as
    :func:`torch.nn.functional.conv2d`).  Taps that can only meet padding are
    cropped, so the cost never exceeds that of a ``2 * size - 1`` kernel.
    """
    size = x.shape[dim]
    length = kernel.shape[1]
    if length % 2 == 0:
        raise ValueError(f'oversized kernels must have odd length, got {length}')
    reach = size - 1
    if length // 2 > reach:
        centre = length // 2
        kernel = kernel[:, centre - reach:centre + reach + 1]
        length = kernel.shape[1]
    other = x.shape[5 - dim]
    if _use_toeplitz(size, length, other, impl):
        matrix = _toeplitz(kernel.to(x.dtype), size)
        if dim == 2:
            return torch.einsum('cij,bcjw->bciw', matrix, x)
        return torch.einsum('cij,bchj->bchi', matrix, x)
    channels = x.shape[1]
    if dim == 2:
        weight = kernel.view(channels, 1, length, 1)
        padding = (length // 2, 0)
    else:
        weight = kernel.view(channels, 1, 1, length)
        padding = (0, length // 2)
    return F.conv2d(x, weight.to(x.dtype), padding=padding, groups=channels)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel_h, kernel_w = instance_kernels(self.conv_h.weight, self.conv_w.weight,
                                              self.mode, x.shape[2], x.shape[3])
        x = conv1d_same(x, kernel_h, 2, self.impl)
        return conv1d_same(x, kernel_w, 3, self.impl)

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
