"""The matrix product every 1x1 convolution of ParCNetV2 runs on.

``linear(x, weight, bias) = x @ weight.T + bias`` for 2-D ``x``, the
product behind :func:`~.pointwise.pointwise_conv2d` and
:func:`~.gating.gated_projection` (their forward and backward passes), which
hold about three quarters of the model's multiply-adds.  On x86 CPUs, for
float32 tensors with CPU autocast off, it runs as a oneDNN matmul
(``torch.ops.mkldnn._linear_pointwise``, an internal op of torch's CPU
compiler backend) with the bias fused into the product, instead of the
BLAS ``addmm`` behind ``F.linear``; where autograd records it, an autograd
Function runs the gradient products on oneDNN too.

Measured on the project's machine (AMD EPYC, AVX-512, one thread;
``benchmark.py --products`` times each 1x1 layer's op of ParCNetV2-T at
224x224 and 800x1216 against the same op with ``torch.backends.mkldnn``
disabled, i.e. on MKL's ``addmm``): 0.43-0.84x the time per layer, 0.62x
summed (another run 0.47-1.15x, 0.67x: the first stage's largest outputs at
800x1216 pay page faults that vary from run to run).  Not measured on Intel processors, where MKL may well be faster
than here; oneDNN is Intel's library too.

Reference: :func:`linear_reference` (``F.linear``).
"""
import platform
from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd import forward_ad

from .dispatch import needs_grad, on_devices

_X86 = platform.machine().lower() in ('x86_64', 'amd64', 'i686', 'x86')


def _onednn_works() -> bool:
    """Whether this torch build has the oneDNN product, with the signature used here.

    ``_linear_pointwise`` is an internal op of torch: one small product,
    compared with ``F.linear``, decides once per process, so that a build
    without it, or one where it changed, runs ``F.linear`` instead.
    """
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        x = torch.arange(12, dtype=torch.float32).view(3, 4) / 7
        weight = torch.arange(8, dtype=torch.float32).view(2, 4) / 5 - 0.5
        bias = torch.tensor([0.25, -1.0])
        out = torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'none', [], '')
        return bool(torch.allclose(out, F.linear(x, weight, bias), rtol=1e-5, atol=1e-6))
    except (AttributeError, RuntimeError, TypeError):
        return False


ONEDNN = _X86 and _onednn_works()


def linear_reference(x: torch.Tensor, weight: torch.Tensor,
                     bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``x @ weight.T + bias`` for ``(N, I)`` ``x`` and ``(O, I)`` ``weight``."""
    return F.linear(x, weight, bias)


def _cpu_autocast() -> bool:
    """Whether CPU autocast is on (``is_autocast_enabled`` takes a device from torch 2.4)."""
    try:
        return torch.is_autocast_enabled('cpu')
    except TypeError:
        return torch.is_autocast_cpu_enabled()


def onednn_applies(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    """Whether oneDNN computes ``x @ weight.T + bias`` (with or without autograd).

    Float32 on an x86 CPU, non-empty, in eager mode (see :mod:`.dispatch`),
    with ``torch.backends.mkldnn`` enabled, CPU autocast off, and outside
    forward-mode AD (the raw op carries no tangents).
    """
    return (ONEDNN and x.dtype == torch.float32 and weight.dtype == torch.float32
            and (bias is None or bias.dtype == torch.float32)
            and x.numel() > 0 and weight.numel() > 0
            and on_devices(x, ('cpu', )) and x.device.type == 'cpu'
            and torch.backends.mkldnn.enabled and not _cpu_autocast()
            and getattr(forward_ad, '_current_level', -1) < 0)


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor,
                   bias: Optional[torch.Tensor]) -> torch.Tensor:
    if bias is not None:
        bias = bias.contiguous()  # the op reads the bias as dense, whatever its strides
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'none', [], '')


class _Linear(torch.autograd.Function):
    """``x @ weight.T + bias`` whose gradient products run on oneDNN too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn_linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = linear(grad, weight.t(), None)  # grad @ weight
        if ctx.needs_input_grad[1]:  # grad.T @ x
            # oneDNN copies a transposed input (it reorders the weight operand
            # anyway): transpose the smaller of grad and x.
            if x.numel() <= grad.numel():
                grad_weight = linear(x.t(), grad.t(), None).t()
            else:
                grad_weight = linear(grad.t(), x.t(), None)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_x, grad_weight, grad_bias


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """:func:`linear_reference`; on oneDNN for float32 on x86 CPUs, gradients too.

    ``x`` may be any 2-D view (rows of a channels-last map, the transpose of
    a channel-major one); the result is a new contiguous ``(N, O)`` tensor.
    """
    if x.dim() != 2 or weight.dim() != 2:
        raise ValueError(f'linear takes 2-D x and weight, got {tuple(x.shape)} and '
                         f'{tuple(weight.shape)}')
    if not onednn_applies(x, weight, bias):
        return F.linear(x, weight, bias)
    if needs_grad(x, weight, bias):
        return _Linear.apply(x, weight, bias)
    return _onednn_linear(x, weight, bias)
