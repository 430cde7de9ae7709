"""The layers of ParCNetV2, each a module evaluated by its op in :mod:`mmparc.ops`."""
from .conv import DepthwiseConv2d, PointwiseConv2d, StridedConv2d
from .gated_projection import GatedProjection
from .norm import L2LayerNorm
from .oversized_conv import KERNEL_MODES, OversizedConv1d, OversizedConv2d
from .scale import Scale

__all__ = [
    'DepthwiseConv2d', 'GatedProjection', 'KERNEL_MODES', 'L2LayerNorm', 'OversizedConv1d',
    'OversizedConv2d', 'PointwiseConv2d', 'Scale', 'StridedConv2d'
]
