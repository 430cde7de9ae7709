"""CPU autocast in inference: weights cast to the lower precision once, not on every call.

Under ``torch.autocast('cpu', torch.bfloat16)`` a product or convolution
casts its float32 weight on every call (autocast's own cast cache is not
used in inference mode, and a layer's weight view is no leaf): for
ParCNetV2-T at 224 b1 those copies were about a third of the bf16 forward
time.  :func:`autocast_inference` casts the weight once per weight version
(:class:`~.oversized_conv.InferenceConstants`) and the inputs as autocast
would, so that the op sees lower-precision operands and autocast has
nothing left to cast.  The result is autocast's (same dtypes, same
kernels); training and recorded graphs are untouched.
"""
from typing import Optional, Tuple

import torch

from .dispatch import CPU_AUTOCAST, as_dtype
from .oversized_conv import InferenceConstants


def cpu_autocast_dtype() -> Optional[torch.dtype]:
    """CPU autocast's lower-precision dtype while it is on, else ``None``."""
    # The queries of this torch (2.1's differ), chosen once: see dispatch.CPU_AUTOCAST.
    return CPU_AUTOCAST.dtype() if CPU_AUTOCAST.enabled() else None


def autocast_inference(constants: InferenceConstants, weight: torch.Tensor,
                       *inputs: torch.Tensor) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
    """``weight`` and ``inputs`` as CPU autocast would cast them, the weight cast once.

    Unchanged outside CPU autocast, for non-float32 weights, and wherever
    :meth:`InferenceConstants.applies` does not (autograd records, a graph
    is recorded).
    """
    dtype = cpu_autocast_dtype()
    if (dtype is None or weight.dtype != torch.float32 or weight.device.type != 'cpu'
            or not InferenceConstants.applies(inputs[0], weight)):
        return weight, inputs
    cast = constants.get(weight, ('autocast', dtype), lambda: weight.to(dtype))
    return cast, tuple(as_dtype(t, dtype) if t.dtype == torch.float32 else t for t in inputs)
