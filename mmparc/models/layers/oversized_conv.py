"""The oversized convolution (OC) of ParCNetV2."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from ...ops import crop_kernel, oversized_conv2d, resample_kernel
from ...ops.oversized_conv import IMPLEMENTATIONS

KERNEL_MODES = ('fixed', 'global')


class OversizedConv2d(nn.Module):
    """Depthwise oversized convolution: a vertical, then a horizontal 1-D kernel.

    Kernel modes:

    * ``'fixed'``: the kernels keep the lengths they were trained with (111,
      55, 27, 13 for 224 pretraining) and are applied with 'same' zero
      padding at any input size: what the official detection/segmentation
      code runs.
    * ``'global'``: the paper's definition.  For an ``H x W`` map the kernels
      are resampled (linear, ``align_corners=True``, as the official
      ``OversizeConv2d(interpolate=True)``) to ``2H - 1`` and ``2W - 1`` taps,
      so every output sees the whole map.  For a map of height 1 the
      resampled kernel is the *first* stored tap, because that is what
      ``align_corners`` interpolation to one sample returns (kept for parity).

    Parameters keep the official layout (``conv_h.weight`` ``(C, 1, K, 1)``,
    ``conv_w.weight`` ``(C, 1, 1, K)``); a checkpoint with other kernel
    lengths is resampled on load, with a warning.  Evaluated by
    :func:`mmparc.ops.oversized_conv2d`.

    Args:
        channels: Number of channels (depthwise).
        kernel_size: Stored kernel length, odd.
        kernel_mode: ``'fixed'`` or ``'global'``.
        conv_impl: ``'auto'``, ``'direct'`` or ``'toeplitz'``; all give the
            same result up to float rounding.
    """

    def __init__(self, channels: int, kernel_size: int, kernel_mode: str = 'fixed',
                 conv_impl: str = 'auto') -> None:
        super().__init__()
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be a positive odd int, got {kernel_size!r}')
        if kernel_mode not in KERNEL_MODES:
            raise ValueError(f'kernel_mode must be one of {KERNEL_MODES}, got {kernel_mode!r}')
        if conv_impl not in IMPLEMENTATIONS:
            raise ValueError(f'conv_impl must be one of {IMPLEMENTATIONS}, got {conv_impl!r}')
        self.channels = channels
        self.kernel_size = kernel_size
        self.kernel_mode = kernel_mode
        self.conv_impl = conv_impl
        self.deploy_size: Optional[Tuple[int, int]] = None
        self.conv_h = nn.Conv2d(channels, channels, (kernel_size, 1), groups=channels, bias=False)
        self.conv_w = nn.Conv2d(channels, channels, (1, kernel_size), groups=channels, bias=False)

    def kernels(self, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``(C, K)`` vertical and horizontal kernels applied to a ``height x width`` map."""
        kernel_h, kernel_w = self.conv_h.weight.flatten(1), self.conv_w.weight.flatten(1)
        if self.kernel_mode == 'global':
            kernel_h = resample_kernel(kernel_h, 2 * height - 1)
            kernel_w = resample_kernel(kernel_w, 2 * width - 1)
        return kernel_h, kernel_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2:]
        if (self.deploy_size is not None and not torch.jit.is_tracing()
                and (height, width) != self.deploy_size):
            raise ValueError(f'this layer was deployed for {_hw(self.deploy_size)} maps, got '
                             f'{_hw((height, width))}; call switch_to_deploy on a fresh model '
                             'for another input size')
        return oversized_conv2d(x, *self.kernels(height, width), self.conv_impl)

    @torch.no_grad()
    def switch_to_deploy(self, map_size: Tuple[int, int]) -> None:
        """Resolve the kernels for ``map_size`` maps, once: resampled, cropped, fixed."""
        kernel_h, kernel_w = self.kernels(*map_size)
        kernel_h, kernel_w = crop_kernel(kernel_h, map_size[0]), crop_kernel(kernel_w, map_size[1])
        self.conv_h = _depthwise_conv(kernel_h.reshape(self.channels, 1, -1, 1))
        self.conv_w = _depthwise_conv(kernel_w.reshape(self.channels, 1, 1, -1))
        self.kernel_mode = 'fixed'
        self.deploy_size = tuple(map_size)

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
        deployed = '' if self.deploy_size is None else f', deployed for {self.deploy_size}'
        return (f'{self.channels}, kernel_size={self.kernel_size}, '
                f'kernel_mode={self.kernel_mode!r}{deployed}')


def _depthwise_conv(weight: torch.Tensor) -> nn.Conv2d:
    """A frozen bias-free depthwise ``nn.Conv2d`` holding ``weight``."""
    conv = nn.Conv2d(weight.shape[0], weight.shape[0], tuple(weight.shape[2:]),
                     groups=weight.shape[0], bias=False)
    conv.weight = nn.Parameter(weight.detach().clone().contiguous(), requires_grad=False)
    return conv


def _hw(size: Tuple[int, int]) -> str:
    return f'{size[0]}x{size[1]}'
