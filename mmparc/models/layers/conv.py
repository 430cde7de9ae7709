"""The plain convolutions of ParCNetV2, each evaluated by its op in :mod:`mmparc.ops`.

They take and return NCHW tensors like :class:`torch.nn.Conv2d`; only the
storage of the output may differ (channels-last or channel-major, the
layouts the next layer runs fastest on).
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from torch.nn.modules.utils import _pair

from ...ops import depthwise_conv2d, pointwise_conv2d, strided_conv2d
from ...ops.autocast import autocast_inference
from ...ops.oversized_conv import InferenceConstants


class StridedConv2d(nn.Conv2d):
    """Downsampling convolution, run channels-last (:func:`mmparc.ops.strided_conv2d`).

    The weight is stored channels-last like the activations: oneDNN would
    otherwise reorder it on every call (3 ms for the last one at 224).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        self.weight.data = self.weight.data.contiguous(memory_format=torch.channels_last)
        self._constants = InferenceConstants()  # the weight in autocast's dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        weight, (x, ) = autocast_inference(self._constants, self.weight, x)
        return strided_conv2d(x, weight, self.bias, self.stride, self.padding)

    @torch.no_grad()
    def fold_input_scale(self, scale: torch.Tensor) -> None:
        """Absorb a per-input-channel scale applied before this layer (deployment)."""
        self.weight.mul_(scale.view(1, -1, 1, 1))


class DepthwiseConv2d(nn.Conv2d):
    """Bias-free depthwise 'same' convolution (:func:`mmparc.ops.depthwise_conv2d`)."""

    def __init__(self, channels: int, kernel_size: Union[int, Tuple[int, int]]) -> None:
        kernel_size = _pair(kernel_size)
        super().__init__(channels, channels, kernel_size,
                         padding=(kernel_size[0] // 2, kernel_size[1] // 2), groups=channels,
                         bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv2d(x, self.weight)


class PointwiseConv2d(nn.Module):
    """1x1 convolution (:func:`mmparc.ops.pointwise_conv2d`).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        bias: Whether to add a learnable bias.
        linear_weight: Store the weight as ``(out, in)`` (an ``nn.Linear``'s,
            as the official MLP's ``fc1``) instead of ``(out, in, 1, 1)``, so
            that official checkpoints load unchanged.
        channel_major: Write channel-major storage in inference too (for a
            layer feeding oversized convolutions, which run on it);
            otherwise inference writes channels-last.  Training writes
            channel-major either way (the gated projection's backward reads it).
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True,
                 linear_weight: bool = False, channel_major: bool = True) -> None:
        super().__init__()
        self.channel_major = channel_major
        self.in_channels = in_channels
        self.out_channels = out_channels
        shape = (out_channels, in_channels) if linear_weight else (out_channels, in_channels, 1, 1)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias: Optional[nn.Parameter] = (nn.Parameter(torch.zeros(out_channels))
                                             if bias else None)
        nn.init.kaiming_uniform_(self.weight.view(out_channels, in_channels), a=5**0.5)
        self._constants = InferenceConstants()  # the weight in autocast's dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, (x, ) = autocast_inference(self._constants, self.weight, x)
        return pointwise_conv2d(x, weight, self.bias, self.channel_major)

    @torch.no_grad()
    def fold_input_scale(self, scale: torch.Tensor) -> None:
        """Absorb a per-input-channel scale applied before this layer (deployment)."""
        self.weight.mul_(scale.view(1, -1, *[1] * (self.weight.dim() - 2)))

    def extra_repr(self) -> str:
        return f'{self.in_channels}, {self.out_channels}, bias={self.bias is not None}'
