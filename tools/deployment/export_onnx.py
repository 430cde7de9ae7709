#!/usr/bin/env python
"""Export a ParCNetV2 classifier (or its bare backbone) to ONNX.

    python tools/deployment/export_onnx.py configs/imagenet_parcnetv2_t.py --checkpoint cls_t.pth \\
        --shape 224 224 parcnetv2_t.onnx
    python tools/deployment/export_onnx.py configs/mask_rcnn_parcnetv2_t.py --checkpoint det_t.pth \\
        --backbone --shape 800 1216 parcnetv2_t_backbone.onnx

The graph takes the normalised image tensor the network proper takes (what
``model(x, mode='tensor')`` takes: mean/std and BGR->RGB of the config's
data preprocessor already applied) at a fixed ``H x W`` with a dynamic batch
axis, and returns the logits (``logits``) or, with ``--backbone``, every
stage's output (``stage0`` .. ``stage3``, NCHW).  The backbone is first
re-parameterised for that size (:mod:`mmparc.models.deploy`), so neither
kernel resampling nor shape arithmetic is left in the graph; onnxruntime's
outputs on a batch of two are then checked against those of the model as
built (before re-parameterisation), to ``--atol`` (1e-4).

torch 2.13's default exporter (``dynamo=True``) needs ``onnxscript``, which
is not part of this stack; the TorchScript exporter (``dynamo=False``)
handles the fixed-size, dynamic-batch graph exactly and is used here.  A
torch whose ``torch.onnx.export`` has no ``dynamo`` switch (torch 2.1) has
only that exporter, and is not passed the switch.
"""
import argparse
import importlib
import inspect
import math
import os
import re
import sys
import time
import warnings
from types import ModuleType
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmparc  # noqa: F401  (registers ParCNetV2, routes checkpoint loading)
from mmparc.checkpoint import check_fits, load_checkpoint_file, shapes_of, state_dict_of
from mmparc.fileio import ToolError, atomic_output_file, check_output_file, run_tool
from mmparc.models import ParCNetV2
from mmparc.models.deploy import deploy_model

DEFAULT_OPSET = 17


class MissingDependency(RuntimeError):
    """An optional package that ONNX export or checking needs is absent."""


def require(name: str) -> ModuleType:
    """Import ``onnx`` or ``onnxruntime``, or say what is missing and why."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        purpose = {'onnx': 'to export and validate ONNX graphs',
                   'onnxruntime': 'to check exported graphs against PyTorch'}.get(name, '')
        raise MissingDependency(
            f"the '{name}' package is needed {purpose} but cannot be imported ({err}); "
            f"install it into this environment (e.g. `pip install {name}`) or re-create "
            'the environment with `make env`') from err


class ClassifierLogits(nn.Module):
    """``model(x, mode='tensor')``: an mmpretrain classifier's logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, mode='tensor')


def build(config: str, checkpoint: Optional[str] = None, backbone: bool = False,
          kernel_mode: Optional[str] = None) -> nn.Module:
    """The classifier of ``config`` (or its backbone, returning all stages), in eval mode.

    ``--backbone`` takes ``model.backbone`` of any config (classifier,
    detector, segmentor) with ``out_indices=(0, 1, 2, 3)`` and per-output
    norms, and loads the ``backbone.*`` weights of the checkpoint.
    """
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    from mmengine.registry import MODELS
    backbone_cfg = cfg.model.get('backbone', {})
    backbone_cfg.pop('init_cfg', None)  # no download; weights come from --checkpoint
    if kernel_mode is not None:
        backbone_cfg['kernel_mode'] = kernel_mode
    if backbone:
        backbone_cfg.update(out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
        model = MODELS.build(backbone_cfg)
    else:
        from mmpretrain.models import ImageClassifier
        model = MODELS.build(cfg.model)
        if not isinstance(model, ImageClassifier):
            raise ValueError(f'{config} builds a {type(model).__name__}; only classifiers '
                             'export whole, use --backbone for the backbone of other models')
    if not any(isinstance(m, ParCNetV2) for m in model.modules()):
        raise ValueError(f'{config} has no ParCNetV2 backbone')
    if checkpoint is None:
        warnings.warn('no --checkpoint given: exporting randomly initialised weights')
    else:
        load_weights(model, checkpoint, config, backbone)
    return model.eval()


def load_weights(model: nn.Module, checkpoint: str, config: str, backbone: bool) -> None:
    """Load ``checkpoint`` into ``model``, refusing one that does not fit it.

    A classifier checkpoint must match the classifier exactly.  For
    ``--backbone`` a classifier/detector checkpoint holds more (head, neck)
    and its ``backbone.*`` part is taken; the per-output norms may be absent
    (a classifier checkpoint has only the final one).
    """
    state = state_dict_of(load_checkpoint_file(checkpoint), checkpoint)
    if backbone:
        if any(k.startswith('backbone.') for k in state):
            state = {k[len('backbone.'):]: v for k, v in state.items()
                     if k.startswith('backbone.')}
        check_fits(shapes_of(model), state, checkpoint, f'the ParCNetV2 backbone of {config}',
                   optional=lambda key: re.match(r'^norm\d+\.', key) is not None,
                   allow_unexpected=True)
        expected = model.state_dict()
        model.load_state_dict({k: v for k, v in state.items()
                               if k in expected and v.shape == expected[k].shape}, strict=False)
    else:
        check_fits(shapes_of(model), state, checkpoint, f'the classifier of {config}')
        model.load_state_dict(state, strict=True)


def output_names(model: nn.Module) -> List[str]:
    if isinstance(model, ParCNetV2):
        return [f'stage{i}' for i in model.out_indices]
    return ['logits']


def traced_module(model: nn.Module) -> nn.Module:
    """What the graph computes: the backbone itself, or the classifier's logits."""
    return model if isinstance(model, ParCNetV2) else ClassifierLogits(model)


def torchscript_exporter_options(export_fn: Callable[..., object]) -> Dict[str, bool]:
    """The keyword that selects the TorchScript exporter of ``export_fn``, where it has one.

    torch 2.13's ``torch.onnx.export`` takes ``dynamo`` (default True);
    torch 2.1's is the TorchScript exporter and refuses the keyword.
    """
    try:
        parameters = inspect.signature(export_fn).parameters
    except (TypeError, ValueError):  # no signature to read: assume the newer API
        return {'dynamo': False}
    return {'dynamo': False} if 'dynamo' in parameters else {}


def export(model: nn.Module, shape: Tuple[int, int], out: str, opset: int = DEFAULT_OPSET,
           fuse: str = 'auto') -> None:
    """Re-parameterise ``model`` for ``shape`` (in place) and write ``out``.

    Re-parameterisation is not optional: it is what leaves no kernel
    resampling, shape reads or value-dependent branches to trace.
    """
    onnx = require('onnx')
    deploy_model(model, shape, fuse)
    module = traced_module(model).eval()
    names = output_names(model)
    dummy = torch.zeros(1, 3, *shape)
    with warnings.catch_warnings():
        # The legacy exporter warns about itself, and the backbone's input
        # checks on the (fixed) spatial size are traced as the constants they are.
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        torch.onnx.export(
            module, (dummy,), out, **torchscript_exporter_options(torch.onnx.export),
            opset_version=opset,
            input_names=['input'], output_names=names,
            dynamic_axes={name: {0: 'batch'} for name in ['input'] + names},
            do_constant_folding=True)
    onnx.checker.check_model(out)


def sample_input(shape: Tuple[int, int], batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, *shape, generator=torch.Generator().manual_seed(seed))


def torch_outputs(model: nn.Module, x: torch.Tensor) -> List[np.ndarray]:
    with torch.no_grad():
        outs = traced_module(model).eval()(x)
    outs = (outs,) if isinstance(outs, torch.Tensor) else outs
    return [o.numpy() for o in outs]


def run_onnxruntime(path: str, x: np.ndarray, threads: int = 0) -> List[np.ndarray]:
    ort = require('onnxruntime')
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x})


def compare(path: str, x: torch.Tensor, expected: Sequence[np.ndarray]) -> Dict[str, float]:
    """Max absolute difference per graph output between onnxruntime and ``expected``."""
    got = run_onnxruntime(path, x.numpy())
    names = [o.name for o in require('onnx').load(path, load_external_data=False).graph.output]
    if len(got) != len(expected):
        raise ValueError(f'{path} has {len(got)} outputs, PyTorch gave {len(expected)}')
    return {name: float(np.abs(g - e).max()) for name, g, e in zip(names, got, expected)}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='mmengine checkpoint (e.g. converted official)')
    parser.add_argument('--shape', type=int, nargs=2, required=True, metavar=('H', 'W'),
                        help='fixed input size of the graph')
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument('--backbone', action='store_true',
                        help='export the bare backbone (all stage outputs)')
    parser.add_argument('--kernel-mode', choices=('fixed', 'global'),
                        help="override the config's oversized-kernel mode")
    parser.add_argument('--fuse', choices=('auto', 'always', 'never'), default='auto',
                        help='fuse oversized and 7x7 kernels per stage (auto: when cheaper)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='fail if onnxruntime differs from PyTorch by more')
    parser.add_argument('--skip-check', action='store_true',
                        help='do not compare with onnxruntime')
    args = parser.parse_args(argv)
    if args.opset < 17:
        parser.error(f'--opset must be at least 17 (LayerNormalization), got {args.opset}')
    return args


def check_args(args: argparse.Namespace) -> None:
    """Refuse impossible arguments and unusable paths before any work."""
    height, width = args.shape
    if height <= 0 or width <= 0:
        raise ToolError(f'--shape {height} {width}: height and width must be positive')
    if not math.isfinite(args.atol) or args.atol < 0:
        raise ToolError(f'--atol {args.atol}: must be a non-negative number')
    if not os.path.isfile(args.config):
        raise ToolError(f'{args.config}: config file not found')
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        raise ToolError(f'{args.checkpoint}: checkpoint file not found')
    check_output_file(args.out)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Export and check; ``args.out`` appears only if both succeed.

    Raises:
        SystemExit: a missing package or a check beyond ``--atol`` (``error: ...``).
        ToolError, CheckpointError, ...: bad input (one line under :func:`run_tool`).
    """
    args = parse_args(argv)
    check_args(args)
    try:
        require('onnx')
        if not args.skip_check:
            require('onnxruntime')
    except MissingDependency as err:
        raise SystemExit(f'error: {err}')
    model = build(args.config, args.checkpoint, args.backbone, args.kernel_mode)
    shape = (args.shape[0], args.shape[1])
    # The reference is the model as built, before re-parameterisation,
    # on a batch of two (the graph is exported with one).
    x = sample_input(shape)
    expected = [] if args.skip_check else torch_outputs(model, x)
    with atomic_output_file(args.out) as tmp:
        start = time.perf_counter()
        export(model, shape, str(tmp), args.opset, args.fuse)
        print(f'exported {args.out} ({os.path.getsize(tmp) / 2**20:.1f} MiB, opset '
              f'{args.opset}, input 1x3x{shape[0]}x{shape[1]} with dynamic batch) in '
              f'{time.perf_counter() - start:.1f} s')
        if args.skip_check:
            return {}
        diffs = compare(str(tmp), x, expected)
        report = ', '.join(f'{name} {diff:.2e}' for name, diff in diffs.items())
        print(f'onnxruntime vs PyTorch (before re-parameterisation), batch 2, max |diff|: '
              f'{report}')
        if max(diffs.values()) > args.atol:
            raise SystemExit(f'error: onnxruntime differs from PyTorch by more than '
                             f'{args.atol}; {args.out} not written')
    return diffs


def _cli() -> int:
    main(sys.argv[1:])
    return 0


if __name__ == '__main__':
    run_tool(_cli)
