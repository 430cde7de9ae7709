"""What mmdeploy 1.3.1 needs from a newer torch, applied only while mmdeploy exports.

mmdeploy 1.3.1 drives torch's TorchScript-based ONNX exporter as torch 2.1
shipped it.  Two later changes in torch stop its export of a ParCNetV2
detector (the classifier and segmentor meet only the first):

* ``torch.onnx.export`` defaults to ``dynamo=True`` (torch >= 2.9), another
  exporter, which needs the ``onnxscript`` package and does not run
  mmdeploy's rewriters and symbolic functions.  mmdeploy does not pass
  ``dynamo``; during its export the call gets ``dynamo=False``.
* mmdeploy's RoIAlign symbolic (``mmdeploy/mmcv/ops/roi_align.py``) imports
  ``_cast_Long`` from ``torch.onnx.symbolic_opset9``, which torch no longer
  has.  During the export it is there again: a ``Cast`` to int64, what
  torch 2.1 defined.

:func:`export_shims` makes both changes and undoes them on exit, each only
where the running torch needs it (on torch 2.1 it changes nothing).
Importing this module registers :func:`torchscript_onnx_export` with
mmdeploy as a rewrite of ``torch.onnx.export``: mmdeploy applies it inside
its own export (its ``RewriterContext``) and nowhere else, so training and
inference in the same process see torch unchanged.  The deploy configs in
``configs/mmdeploy/`` import this module (``custom_imports``), so
``mmdeploy.apis.torch2onnx`` and mmdeploy's own tools get it with them.
"""
import contextlib
import functools
import inspect
from typing import Any, Callable, Iterator

import torch
import torch.onnx
import torch.onnx.symbolic_opset9 as opset9
from mmdeploy.core import FUNCTION_REWRITER


def _cast_long(g: Any, value: Any, non_blocking: Any) -> Any:
    """``aten::_cast_Long`` as torch 2.1's ``symbolic_opset9`` exported it."""
    return g.op('Cast', value, to_i=int(torch.onnx.TensorProtoDataType.INT64))


def with_torchscript_exporter(export: Callable[..., Any]) -> Callable[..., Any]:
    """``export`` (a ``torch.onnx.export``) with ``dynamo=False`` unless the caller says.

    Unchanged where ``torch.onnx.export`` has no ``dynamo`` argument (torch
    2.1 has only the TorchScript exporter).
    """
    if 'dynamo' not in inspect.signature(export).parameters:
        return export

    @functools.wraps(export)
    def torchscript_export(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault('dynamo', False)
        return export(*args, **kwargs)

    return torchscript_export


@contextlib.contextmanager
def export_shims() -> Iterator[None]:
    """Inside: ``torch.onnx.export`` defaults to ``dynamo=False`` and
    ``torch.onnx.symbolic_opset9._cast_Long`` exists; both undone on exit."""
    original_export = torch.onnx.export
    added_cast = not hasattr(opset9, '_cast_Long')
    torch.onnx.export = with_torchscript_exporter(original_export)
    if added_cast:
        opset9._cast_Long = _cast_long
    try:
        yield
    finally:
        torch.onnx.export = original_export
        if added_cast:
            del opset9._cast_Long


@FUNCTION_REWRITER.register_rewriter('torch.onnx.export')
def torchscript_onnx_export(*args: Any, **kwargs: Any) -> Any:
    """mmdeploy's call of ``torch.onnx.export``, inside :func:`export_shims`."""
    original_export = FUNCTION_REWRITER.get_context().origin_func
    with export_shims():
        return with_torchscript_exporter(original_export)(*args, **kwargs)
