"""The oversized convolution (OC) of ParCNetV2: a vertical, then a horizontal 1-D kernel."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from ...ops import crop_kernel, oversized_conv1d, resample_kernel
from ...ops.oversized_conv import (IMPLEMENTATIONS, InferenceConstants, toeplitz_matmul,
                                   use_toeplitz)

KERNEL_MODES = ('fixed', 'global')
AXES = ('h', 'w')


class OversizedConv1d(nn.Conv2d):
    """One oversized depthwise 1-D kernel along H (``axis='h'``) or W of NCHW maps.

    Kernel modes:

    * ``'fixed'``: the kernel keeps the length it was trained with (111, 55,
      27, 13 for 224 pretraining) and is applied with 'same' zero padding at
      any input size: what the official detection/segmentation code runs,
      and exactly this ``nn.Conv2d``'s own definition.
    * ``'global'``: the paper's definition.  For a map of length ``S`` along
      the axis the kernel is resampled (linear, ``align_corners=True``, as the
      official ``OversizeConv2d(interpolate=True)``) to ``2S - 1`` taps, so
      every output sees the whole axis.  For ``S = 1`` that is the *first*
      stored tap, what ``align_corners`` interpolation to one sample returns
      (kept for parity).

    The weight keeps the official layout, ``(C, 1, K, 1)`` or ``(C, 1, 1, K)``;
    a checkpoint with another length is resampled on load, with a warning.
    Evaluated by :func:`mmparc.ops.oversized_conv1d`; in inference the
    resampled kernel and its Toeplitz matrices are computed once per weight
    version and map size (:class:`~mmparc.ops.oversized_conv.InferenceConstants`).
    """

    def __init__(self, channels: int, kernel_size: int, axis: str, kernel_mode: str = 'fixed',
                 conv_impl: str = 'auto') -> None:
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be a positive odd int, got {kernel_size!r}')
        if axis not in AXES:
            raise ValueError(f'axis must be one of {AXES}, got {axis!r}')
        if kernel_mode not in KERNEL_MODES:
            raise ValueError(f'kernel_mode must be one of {KERNEL_MODES}, got {kernel_mode!r}')
        if conv_impl not in IMPLEMENTATIONS:
            raise ValueError(f'conv_impl must be one of {IMPLEMENTATIONS}, got {conv_impl!r}')
        vertical = axis == 'h'
        super().__init__(channels, channels, (kernel_size, 1) if vertical else (1, kernel_size),
                         padding=(kernel_size // 2, 0) if vertical else (0, kernel_size // 2),
                         groups=channels, bias=False)
        self.axis = axis
        self.axis_index = 2 if vertical else 3  # of the (B, C, H, W) map
        self.kernel_mode = kernel_mode
        self.conv_impl = conv_impl
        self.deploy_size: Optional[int] = None
        self._constants = InferenceConstants()

    def kernel(self, size: int) -> torch.Tensor:
        """The kernel applied along an axis of ``size``, in the weight's layout."""
        if self.kernel_mode == 'fixed':
            return self.weight
        kernel = resample_kernel(self.weight.flatten(1), 2 * size - 1)
        return kernel.view(self.out_channels, 1, -1, 1) if self.axis_index == 2 else kernel.view(
            self.out_channels, 1, 1, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[self.axis_index]
        if self.deploy_size is not None and not torch.jit.is_tracing() and size != self.deploy_size:
            raise ValueError(f'this layer was deployed for maps of {self.axis}={self.deploy_size}, '
                             f'got {self.axis}={size}; call switch_to_deploy on a fresh model '
                             'for another input size')
        if (self.deploy_size is not None and torch.jit.is_tracing()
                and use_toeplitz(self.deploy_size, self.weight.shape[self.axis_index],
                                 self.conv_impl)):
            # Exported at its one size: the Toeplitz products, with constant matrices.
            return toeplitz_matmul(x, self.weight, self.axis_index)
        if not InferenceConstants.applies(x, self.weight):
            return oversized_conv1d(x, self.kernel(size), self.axis_index, self.conv_impl)
        kernel = (self.weight if self.kernel_mode == 'fixed' else self._constants.get(
            self.weight, ('kernel', size), lambda: self.kernel(size)))
        return oversized_conv1d(x, kernel, self.axis_index, self.conv_impl, self._constants,
                                self.weight)

    @torch.no_grad()
    def switch_to_deploy(self, size: int) -> None:
        """Resolve the kernel for maps of ``size`` along the axis, once: resampled, cropped."""
        kernel = crop_kernel(self.kernel(size), size, self.axis_index)
        length = kernel.shape[self.axis_index]
        self.weight = nn.Parameter(kernel.contiguous(), requires_grad=False)
        self.kernel_size = tuple(kernel.shape[2:])
        self.padding = (length // 2, 0) if self.axis_index == 2 else (0, length // 2)
        self.kernel_mode = 'fixed'
        self.deploy_size = size
        self._constants.clear()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs) -> None:
        key = f'{prefix}weight'
        loaded = state_dict.get(key)
        ours = self.weight.shape
        if (loaded is not None and loaded.shape != ours and loaded.dim() == 4
                and loaded.shape[:2] == ours[:2] and loaded.shape[5 - self.axis_index] == 1):
            print_log(f'{key}: resampling oversized kernel from {loaded.shape[self.axis_index]} '
                      f'to {ours[self.axis_index]} taps', logger='current', level=30)
            state_dict[key] = resample_kernel(loaded.flatten(1), ours[self.axis_index]).view(ours)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        deployed = '' if self.deploy_size is None else f', deployed for {self.deploy_size}'
        return (f'{self.out_channels}, kernel_size={self.kernel_size}, axis={self.axis!r}, '
                f'kernel_mode={self.kernel_mode!r}{deployed}')


class OversizedConv2d(nn.Module):
    """Depthwise oversized convolution: ``conv_w(conv_h(x))``.

    Args:
        channels: Number of channels (depthwise).
        kernel_size: Stored kernel length of both 1-D kernels, odd.
        kernel_mode: ``'fixed'`` or ``'global'`` (see :class:`OversizedConv1d`).
        conv_impl: ``'auto'``, ``'direct'`` or ``'toeplitz'``; all give the
            same result up to float rounding.
    """

    def __init__(self, channels: int, kernel_size: int, kernel_mode: str = 'fixed',
                 conv_impl: str = 'auto') -> None:
        super().__init__()
        self.conv_h = OversizedConv1d(channels, kernel_size, 'h', kernel_mode, conv_impl)
        self.conv_w = OversizedConv1d(channels, kernel_size, 'w', kernel_mode, conv_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_w(self.conv_h(x))

    def kernels(self, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``(C, K)`` vertical and horizontal kernels applied to a ``height x width`` map."""
        return self.conv_h.kernel(height).flatten(1), self.conv_w.kernel(width).flatten(1)

    def switch_to_deploy(self, map_size: Tuple[int, int]) -> None:
        """Resolve both kernels for ``map_size`` maps."""
        self.conv_h.switch_to_deploy(map_size[0])
        self.conv_w.switch_to_deploy(map_size[1])
