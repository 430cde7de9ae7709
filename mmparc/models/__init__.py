from .layers import L2LayerNorm, OversizedConv2d
from .parcnetv2 import ParCNetV2
from . import plugins  # noqa: F401,E402  (registers OC, GlobalLocalConv, S-BGU, C-BGU)

__all__ = ['L2LayerNorm', 'OversizedConv2d', 'ParCNetV2']
