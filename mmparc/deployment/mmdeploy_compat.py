"""What an mmdeploy 1.3.1 export of a ParCNetV2 model needs, applied only during it.

Importing this module registers :func:`torchscript_onnx_export` with
mmdeploy as a rewrite of ``torch.onnx.export``.  mmdeploy applies it inside
its own export (its ``RewriterContext``) and nowhere else, so training and
inference in the same process see torch and the model unchanged.  The
deploy configs in ``configs/mmdeploy/`` import this module
(``custom_imports``), so ``mmdeploy.apis.torch2onnx`` and mmdeploy's own
tools get it with them.  It does four things:

* **The exporter** (torch >= 2.9): ``torch.onnx.export`` defaults to
  ``dynamo=True``, another exporter, which needs the ``onnxscript`` package
  and does not run mmdeploy's rewriters and symbolic functions.  mmdeploy
  does not pass ``dynamo``; its call gets ``dynamo=False``.
* **A removed symbolic helper**: mmdeploy's RoIAlign symbolic
  (``mmdeploy/mmcv/ops/roi_align.py``, detectors only) imports ``_cast_Long``
  from ``torch.onnx.symbolic_opset9``, which torch no longer has.  During the
  export it is there again: a ``Cast`` to int64, what torch 2.1 defined.
* **Kernels for the graph's size**: mmdeploy calls
  ``model.backbone.switch_to_deploy()`` before it knows the export shape,
  which re-parameterises what holds at every size.  Where the deploy config
  fixes the input's height and width, the backbone is deployed once more for
  the export input's size before tracing, so the graph holds the oversized
  kernels resampled (``kernel_mode='global'``), cropped to each stage's map
  and fused with the local kernel where that is cheaper, as
  ``switch_to_deploy(input_size)`` does.  A dynamic export keeps the kernels
  as stored: right at any size in ``'fixed'`` mode; ``'global'`` mode would
  need a convolution whose kernel shape follows the input, which the
  exporter cannot express, and stops here with an error saying so.
* **Cascade heads with class-specific boxes**: mmdeploy's rewrite of
  ``CascadeRoIHead.predict_bbox`` asserts ``reg_class_agnostic`` in the
  stages before the last, while the official ParCNetV2 (and ConvNeXt)
  Cascade Mask R-CNN regresses per class.  During the export those heads
  return the deltas of each RoI's top-scoring class
  (:func:`class_selected_deltas`), which is what mmdet's
  ``regress_by_class`` refines the RoIs with.

:func:`export_shims` holds the first two as a context manager, each applied
only where the running torch needs it (on torch 2.1 it changes nothing).
"""
import contextlib
import functools
import inspect
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
import torch.onnx
import torch.onnx.symbolic_opset9 as opset9
from mmdeploy.core import FUNCTION_REWRITER
from mmdeploy.utils import is_dynamic_shape

from mmparc.models import ParCNetV2


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


def resolve_kernels(model: nn.Module, inputs: torch.Tensor, dynamic: bool) -> None:
    """Deploy ``model.backbone`` (a ParCNetV2) for ``inputs``' size unless ``dynamic``.

    The backbone of an mmpretrain/mmdet/mmseg model takes the graph's input
    tensor, so its size is the backbone's input size.
    """
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, ParCNetV2):
        return
    if dynamic:
        if backbone.kernel_mode == 'global':
            raise ValueError("a ParCNetV2 with kernel_mode='global' resamples its kernels for "
                             'each input size, which an ONNX graph with dynamic height and '
                             'width cannot hold; export it with a static deploy config '
                             "(e.g. *_static-800x1216.py) or with kernel_mode='fixed'")
    elif backbone.deploy_input_size is None:
        backbone.switch_to_deploy(tuple(int(s) for s in inputs.shape[2:]))


def _top_class_deltas(head: nn.Module, forward: Callable[..., Any], x: torch.Tensor) -> Any:
    """``head.forward(x)`` with each RoI's box deltas of its top foreground class only."""
    cls_score, bbox_pred = forward(x)
    label = cls_score[:, :-1].argmax(dim=1)  # as mmdet's CascadeRoIHead, background last
    deltas = bbox_pred.view(bbox_pred.size(0), -1, 4)
    return cls_score, deltas.gather(1, label[:, None, None].expand(-1, 1, 4)).squeeze(1)


@contextlib.contextmanager
def class_selected_deltas(model: nn.Module) -> Iterator[None]:
    """Inside: class-specific box heads of a cascade's earlier stages act class-agnostic."""
    roi_head = getattr(model, 'roi_head', None)
    heads = getattr(roi_head, 'bbox_head', None)
    changed = []
    if getattr(roi_head, 'num_stages', 1) > 1 and isinstance(heads, nn.ModuleList):
        for head in list(heads)[:-1]:
            if not head.reg_class_agnostic:
                head.forward = functools.partial(_top_class_deltas, head, head.forward)
                head.reg_class_agnostic = True
                changed.append(head)
    try:
        yield
    finally:
        for head in changed:
            del head.forward
            head.reg_class_agnostic = False


@FUNCTION_REWRITER.register_rewriter('torch.onnx.export')
def torchscript_onnx_export(model: nn.Module, args: Any, *rest: Any, **kwargs: Any) -> Any:
    """mmdeploy's call of ``torch.onnx.export``: kernels resolved, inside :func:`export_shims`."""
    ctx = FUNCTION_REWRITER.get_context()
    inputs = args if isinstance(args, torch.Tensor) else args[0]
    resolve_kernels(model, inputs, is_dynamic_shape(ctx.cfg))
    with export_shims(), class_selected_deltas(model):
        return with_torchscript_exporter(ctx.origin_func)(model, args, *rest, **kwargs)
