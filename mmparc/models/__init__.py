from .norms import L2LayerNorm
from .oversized_conv import OversizedConv2d, conv1d_same, resample_kernel
from .parcnetv2 import ParCNetV2

__all__ = ['L2LayerNorm', 'OversizedConv2d', 'ParCNetV2', 'conv1d_same', 'resample_kernel']
