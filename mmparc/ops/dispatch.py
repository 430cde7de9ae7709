"""When a fast path may run, and a switch to hold every op to its reference.

Each op in :mod:`mmparc.ops` has a fast path (custom backward passes, fused
kernels, GEMM forms of convolutions) and a plain reference formula built
from standard PyTorch operators.  The reference runs wherever the fast path
cannot be trusted to be recorded faithfully:

* under ``torch.jit`` tracing or scripting (ONNX export, mmengine's FLOP
  counter, which counts the standard operators a trace records and cannot
  see inside custom autograd functions), and under ``torch.compile``;
* on devices a fast path was not written or measured for (each op says
  which);
* inside :func:`reference_ops`, the explicit switch that tests, and users
  who want to check a result, use to run every op by its formula.

:func:`device_paths` is the other switch: inside it, ops choose their paths
(and device-dependent heuristics) as they would for tensors on another
device, so the CPU test suite runs exactly the branches CUDA takes.
"""
import contextlib
import threading
from typing import Callable, ContextManager, Iterator, NamedTuple, Optional, Sequence

import torch

_state = threading.local()


@contextlib.contextmanager
def _setting(name: str, value: object) -> Iterator[None]:
    """Set a per-thread dispatch setting for the block, then restore it."""
    previous = getattr(_state, name, None)
    setattr(_state, name, value)
    try:
        yield
    finally:
        setattr(_state, name, previous)


def reference_ops(enabled: bool = True) -> ContextManager[None]:
    """Run every mmparc op by its reference formula inside this block (per thread)."""
    return _setting('reference', enabled)


def device_paths(device_type: Optional[str]) -> ContextManager[None]:
    """Choose every op's path as for tensors on ``device_type`` (``None``: their own device).

    Per thread.  The computation still runs where the tensors are; only the
    choice between fast path and reference, and device-dependent heuristics
    such as :data:`~.oversized_conv.TOEPLITZ_MAX_RATIO`, follow ``device_type``.
    """
    return _setting('device', device_type)


def path_device(tensor: torch.Tensor) -> str:
    """The device type whose paths an op on ``tensor`` takes (see :func:`device_paths`)."""
    return getattr(_state, 'device', None) or tensor.device.type


def compile_probe(compiler: object = torch.compiler) -> Callable[[], bool]:
    """The function that says whether ``torch.compile`` is tracing the caller.

    ``torch.compiler.is_compiling`` from torch 2.3; before it,
    ``torch._utils.is_compiling``, which returns False when run and which
    TorchDynamo (2.1, 2.2) replaces by True while it traces.
    """
    probe = getattr(compiler, 'is_compiling', None)
    return probe if probe is not None else torch._utils.is_compiling


_is_compiling = compile_probe()


class CpuAutocastQueries(NamedTuple):
    """CPU autocast's state: whether it is on, and its lower-precision dtype."""

    enabled: Callable[[], bool]
    dtype: Callable[[], torch.dtype]


def cpu_autocast_queries(is_autocast_enabled: Callable[..., bool] = torch.is_autocast_enabled
                         ) -> CpuAutocastQueries:
    """The functions that read CPU autocast's state on this torch.

    ``torch.is_autocast_enabled('cpu')`` and ``torch.get_autocast_dtype('cpu')``
    from torch 2.4; before, ``torch.is_autocast_cpu_enabled()`` and
    ``torch.get_autocast_cpu_dtype()`` (deprecated since).  Chosen once,
    here: a per-call ``try`` would meet a TypeError on torch 2.1 inside
    ``torch.compile``, which TorchDynamo 2.1 cannot trace.
    """
    try:
        is_autocast_enabled('cpu')
    except TypeError:
        return CpuAutocastQueries(torch.is_autocast_cpu_enabled, torch.get_autocast_cpu_dtype)
    return CpuAutocastQueries(_cpu_autocast_enabled, _cpu_autocast_dtype)


def _cpu_autocast_enabled() -> bool:
    return torch.is_autocast_enabled('cpu')


def _cpu_autocast_dtype() -> torch.dtype:
    return torch.get_autocast_dtype('cpu')


CPU_AUTOCAST = cpu_autocast_queries()


def is_recording() -> bool:
    """Whether a tracer, scripter or compiler is recording the computation."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting()
            or _is_compiling())


def on_devices(tensor: torch.Tensor, devices: Sequence[str]) -> bool:
    """Whether the fast path of an op written for ``devices`` may run on ``tensor``."""
    return (not getattr(_state, 'reference', None) and not is_recording()
            and path_device(tensor) in devices)


def needs_grad(*tensors) -> bool:
    """Whether autograd will record an op on these tensors (``None`` entries ignored)."""
    return torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in tensors)


def as_dtype(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor.to(dtype)`` without a dispatcher call when it already is (hot paths)."""
    return tensor if tensor.dtype == dtype else tensor.to(dtype)
