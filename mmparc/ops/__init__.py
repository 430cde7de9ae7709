"""Fast kernels of ParCNetV2, each beside its plain reference formula.

Every op ``f`` here has ``f_reference`` built from standard PyTorch
operators; ``f`` computes the same function (to float rounding, forward and
gradients: ``tests/test_ops.py``) and falls back to the reference where its
fast path is not valid (see :mod:`.dispatch`).  The model's layers
(:mod:`mmparc.models.layers`) call these ops; the model never does.
"""
from .depthwise_conv import depthwise_conv2d, depthwise_conv2d_reference
from .dispatch import device_paths, is_recording, reference_ops
from .gating import gated_projection, gated_projection_reference
from .l2_norm import l2_layer_norm, l2_layer_norm_reference
from .matmul import linear, linear_reference
from .oversized_conv import (crop_kernel, oversized_conv1d, oversized_conv1d_reference,
                             resample_kernel)
from .pointwise import pointwise_conv2d, pointwise_conv2d_reference
from .strided_conv import strided_conv2d, strided_conv2d_reference

__all__ = [
    'crop_kernel', 'depthwise_conv2d', 'depthwise_conv2d_reference', 'device_paths',
    'gated_projection', 'gated_projection_reference', 'is_recording', 'l2_layer_norm',
    'l2_layer_norm_reference', 'linear', 'linear_reference',
    'oversized_conv1d', 'oversized_conv1d_reference', 'pointwise_conv2d',
    'pointwise_conv2d_reference', 'reference_ops', 'resample_kernel', 'strided_conv2d',
    'strided_conv2d_reference'
]
