"""The matrix product every 1x1 convolution of ParCNetV2 runs on.

``linear(x, weight, bias) = x @ weight.T + bias`` for 2-D ``x``, the
product behind :func:`~.pointwise.pointwise_conv2d` and
:func:`~.gating.gated_projection` (their forward and backward passes), which
hold about three quarters of the model's multiply-adds.  Two backends
compute it on x86 CPUs for float32 tensors with CPU autocast off:

* ``'onednn'``: a oneDNN matmul (``torch.ops.mkldnn._linear_pointwise``, an
  internal op of torch's CPU compiler backend) with the bias fused into the
  product; where autograd records it, an autograd Function runs the
  gradient products through :func:`linear` too;
* ``'blas'``: ``F.linear`` (MKL's or OpenBLAS's ``addmm``), the reference.

Which one is faster depends on the CPU, its BLAS and the thread count, not
on the vendor: on an AMD EPYC (one thread) oneDNN took 0.43-0.84x BLAS's
time per layer, on an Intel Xeon with AMX (2 threads) MKL was ahead by up
to 1.35x on the first stage's products.  So the choice is measured on the
running machine (:func:`choose_backend`): the first call of each *shape
class* (the operands' layouts and widths, the row count rounded to a power
of two, the bias, the intra-op thread count) times both backends on its own
operands, interleaved (one warm-up and three timed calls each; at most 8192
rows are timed), and the class keeps the faster one for the rest of the
process; oneDNN must win by :data:`MARGIN` to be chosen, so near-ties run
the plain path.  ``MMPARC_LINEAR_BACKEND=auto|onednn|blas`` (read on each
decision) or :func:`set_linear_backend` overrides the measurement;
:func:`calibration` reports what was measured.

Reference: :func:`linear_reference` (``F.linear``).
"""
import os
import platform
import threading
import time
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd import forward_ad

from .dispatch import CPU_AUTOCAST, needs_grad, on_devices

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
    """Whether CPU autocast is on (the query of this torch: :data:`.dispatch.CPU_AUTOCAST`)."""
    return CPU_AUTOCAST.enabled()


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


BACKENDS = ('auto', 'onednn', 'blas')
ENV_VAR = 'MMPARC_LINEAR_BACKEND'
# oneDNN is chosen only where it takes less than this fraction of BLAS's
# time: a near-tie is within the timing noise of three calls, and then the
# plain path runs.
MARGIN = 0.97
CALIBRATION_ROWS = 8192  # rows timed at most per calibration (larger products are sliced)
CALIBRATION_REPEATS = 3

_override: Optional[str] = None
_choices: Dict[tuple, str] = {}
_timings: Dict[tuple, Tuple[float, float]] = {}
_lock = threading.Lock()


def set_linear_backend(backend: Optional[str]) -> None:
    """Force ``'onednn'`` or ``'blas'`` (or ``'auto'``) in this process; ``None``: the env var."""
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f'linear backend must be one of {BACKENDS} or None, got {backend!r}')
    global _override
    _override = backend


def linear_backend() -> str:
    """The backend setting in force: :func:`set_linear_backend`'s, else ``$MMPARC_LINEAR_BACKEND``."""
    backend = _override if _override is not None else os.environ.get(ENV_VAR, 'auto') or 'auto'
    if backend not in BACKENDS:
        raise ValueError(f'{ENV_VAR}={backend!r}: expected one of {BACKENDS}')
    return backend


def reset_calibration() -> None:
    """Forget every measured choice (the next call of each shape class measures again)."""
    with _lock:
        _choices.clear()
        _timings.clear()


def calibration() -> Dict[str, dict]:
    """What was measured in this process: per shape class, both times and the choice."""
    with _lock:
        return {_describe(key): {'onednn_s': t[0], 'blas_s': t[1], 'choice': _choices[key]}
                for key, t in _timings.items()}


def _describe(key: tuple) -> str:
    rows, x_layout, out_rows, width, bias, threads = key
    return (f'x {rows} x {width} ({x_layout}), weight {out_rows} x {width}, '
            f'bias={bias}, threads={threads}')


def _layout(t: torch.Tensor) -> str:
    """Row-major (``'rows'``), its transpose (``'cols'``) or any other strides."""
    if t.stride(1) == 1:
        return 'rows'
    return 'cols' if t.stride(0) == 1 else 'strided'


def _bucket(n: int) -> int:
    """``n`` rounded up to a power of two: products of similar height share a choice."""
    return 1 << max(n - 1, 0).bit_length()


def shape_class(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> tuple:
    """The key a measured choice is kept under."""
    return (_bucket(x.shape[0]), f'{_layout(x)}/{_layout(weight)}', _bucket(weight.shape[0]),
            x.shape[1], bias is not None, torch.get_num_threads())


def _time_backends(x: torch.Tensor, weight: torch.Tensor,
                   bias: Optional[torch.Tensor]) -> Tuple[float, float]:
    """Best of :data:`CALIBRATION_REPEATS` wall times of oneDNN and of ``F.linear``, interleaved.

    On at most :data:`CALIBRATION_ROWS` rows of each operand (a view: the
    same strides), after one warm-up call each.  The minimum is what the
    product costs when no other job holds the core.
    """
    x, weight = x[:CALIBRATION_ROWS].detach(), weight[:CALIBRATION_ROWS].detach()
    bias = None if bias is None else bias[:weight.shape[0]].detach()
    calls = (lambda: _onednn_linear(x, weight, bias), lambda: F.linear(x, weight, bias))
    best = [float('inf'), float('inf')]
    with torch.no_grad():
        for call in calls:
            call()
        for _ in range(CALIBRATION_REPEATS):
            for i, call in enumerate(calls):
                start = time.perf_counter()
                call()
                best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def choose_backend(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                   timer: Optional[Callable[..., Tuple[float, float]]] = None) -> str:
    """``'onednn'`` or ``'blas'`` for operands :func:`onednn_applies` to.

    The override if one is set, else the measured choice of the operands'
    shape class, measured now (by ``timer``, default :func:`_time_backends`)
    if this is its first call.
    """
    backend = linear_backend()
    if backend != 'auto':
        return backend
    key = shape_class(x, weight, bias)
    choice = _choices.get(key)
    if choice is None:
        with _lock:
            choice = _choices.get(key)
            if choice is None:
                onednn_s, blas_s = (timer or _time_backends)(x, weight, bias)
                choice = 'onednn' if onednn_s < MARGIN * blas_s else 'blas'
                _timings[key] = (onednn_s, blas_s)
                _choices[key] = choice
    return choice


def uses_onednn(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    """Whether :func:`linear` runs these operands on oneDNN (eligible, and chosen)."""
    return onednn_applies(x, weight, bias) and choose_backend(x, weight, bias) == 'onednn'


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
    """:func:`linear_reference`; on oneDNN where it applies and measures faster, gradients too.

    ``x`` may be any 2-D view (rows of a channels-last map, the transpose of
    a channel-major one); the result is a new contiguous ``(N, O)`` tensor.
    """
    if x.dim() != 2 or weight.dim() != 2:
        raise ValueError(f'linear takes 2-D x and weight, got {tuple(x.shape)} and '
                         f'{tuple(weight.shape)}')
    if not uses_onednn(x, weight, bias):
        return F.linear(x, weight, bias)
    if needs_grad(x, weight, bias):
        return _Linear.apply(x, weight, bias)
    return _onednn_linear(x, weight, bias)
