from .layers import L2LayerNorm, OversizedConv2d
from .parcnetv2 import ParCNetV2

__all__ = ['L2LayerNorm', 'OversizedConv2d', 'ParCNetV2']
