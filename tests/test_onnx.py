"""ONNX export (tools/deployment/export_onnx.py) checked with onnxruntime.

The graph cases below only let the tool write the graphs (``--skip-check``):
the PyTorch side is built in this file from the config and checkpoint (the
model as configured, in eval mode, before any re-parameterisation), and
onnxruntime runs the exported file directly, so a wrong comparison inside
the tool cannot make these tests pass.  Errors are judged relative to the outputs' scale.

Cases: the t classifier in ``fixed`` mode at 224x224 (the training size), the
t classifier in ``global`` mode at 160x192 and the t backbone (all four
stages, official det/seg weights layout) in ``global`` mode at 320x480.  At
224 the global kernels (``2H - 1`` taps) are the stored ones, so a global
case only tests kernel resampling at another, here non-square, size: each
global case checks that its size gives kernels other than the stored ones,
and the classifier's that the fixed-mode model is far from the graph's
outputs.  Each graph is exported with batch 1 and run with batch 2
(dynamic batch axis).

The tool's own comparison is tested by itself: one small export runs it as
a user does (exit status 0), and one graph with a weight changed after export
must fail it.
"""
import copy
import importlib.util
import os
import re
import subprocess
import sys
from collections import Counter
from types import ModuleType
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mmparc.testing import official as ref
from mmparc.convert import convert_official

from helpers import REPO

CONFIG_T = str(REPO / 'configs' / 'imagenet_parcnetv2_t.py')
CONFIG_XT = str(REPO / 'configs' / 'imagenet_parcnetv2_xt.py')
# onnxruntime vs PyTorch: max |diff| over max |PyTorch output|, per output.
# Measured ~1e-6 (float32 rounding of the fused kernels); 1e-4 leaves a wide
# margin and is still far below what a wrong kernel does (see DISTINCT).
RTOL = 1e-4
# Outputs that must differ (the fixed and the global model in the global
# cases, the two images of a batch) differ by at least this many tolerances,
# or a case could not tell them apart.
DISTINCT = 100
# What a fixed-size ParCNetV2 graph is made of: nothing that reads shapes
# (Shape, Gather, Reshape, Range, ...), resamples kernels (Resize) or builds
# Toeplitz matrices (Einsum, Where).  Split (into the gate units' value and
# gate halves) has constant sizes; Identity is the exporter's alias of a
# shared initializer.
ALLOWED_OPS = {'Conv', 'MatMul', 'Gemm', 'Add', 'Sub', 'Mul', 'Div', 'Erf', 'Transpose',
               'ReduceMean', 'ReduceL2', 'Clip', 'Constant', 'LayerNormalization', 'Split',
               'Identity'}
# torch 2.1's exporter writes the L2 norm as Abs, Pow, ReduceSum, Pow where
# torch 2.13's writes ReduceL2: the same formula, elementwise and constant-size.
if tuple(int(v) for v in torch.__version__.split('.')[:2]) < (2, 13):
    ALLOWED_OPS |= {'Abs', 'Pow', 'ReduceSum'}


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        'export_onnx', str(REPO / 'tools' / 'deployment' / 'export_onnx.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory) -> Dict[str, Tuple[str, Dict[str, torch.Tensor]]]:
    """``kind -> (path, state dict)``: random official-like weights of a t
    classifier and of a t det/seg model (``backbone.*`` keys)."""
    root = tmp_path_factory.mktemp('ckpt')
    states = {
        'classifier': convert_official(ref.random_official_state_dict('t', seed=2), 'classifier'),
        'backbone': convert_official(
            ref.random_official_state_dict('t', dense_prefix='backbone.', seed=4), 'model'),
    }
    paths = {kind: str(root / f'{kind}_t.pth') for kind in states}
    for kind, state in states.items():
        torch.save({'state_dict': state}, paths[kind])
    return {kind: (paths[kind], states[kind]) for kind in states}


# ------------------------------------------------- the PyTorch side, built here
@pytest.fixture(scope='module')
def reference(checkpoints):
    """``(kind, kernel_mode) -> model``: the PyTorch side, built once per kind
    and mode by :func:`reference_model` (not by the tool)."""
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG_T)  # read once: resolving its mmpretrain base takes a while
    models = {}

    def get(kind: str, kernel_mode: str) -> torch.nn.Module:
        if (kind, kernel_mode) not in models:
            models[kind, kernel_mode] = reference_model(copy.deepcopy(cfg), checkpoints[kind][1],
                                                        kernel_mode, backbone=kind == 'backbone')
        return models[kind, kernel_mode]

    return get


def reference_model(cfg, state: Dict[str, torch.Tensor], kernel_mode: str,
                    backbone: bool = False) -> torch.nn.Module:
    """The model of ``cfg`` with the checkpoint's ``state`` loaded strictly, in eval mode.

    Classifier: the whole mmpretrain model, compared through
    ``model(x, mode='tensor')`` (the logits of the normalised input).
    Backbone: the config's backbone with all four stage outputs and the
    per-output norms of the det/seg layout, loaded from the ``backbone.*``
    keys of the checkpoint.
    """
    from mmpretrain.registry import MODELS
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.backbone.kernel_mode = kernel_mode
    if backbone:
        model = MODELS.build(dict(cfg.model.backbone, out_indices=(0, 1, 2, 3),
                                  gap_before_final_norm=False))
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    else:
        model = MODELS.build(cfg.model)
    model.load_state_dict(state, strict=True)
    return model.eval()


def torch_outputs(model: torch.nn.Module, x: torch.Tensor) -> List[np.ndarray]:
    """What the graph computes: the classifier's logits or the backbone's stages."""
    with torch.no_grad():
        outs = model(x, mode='tensor') if hasattr(model, 'backbone') else model(x)
    outs = (outs,) if isinstance(outs, torch.Tensor) else outs
    return [o.numpy() for o in outs]


def onnxruntime_outputs(path: str, x: torch.Tensor) -> Dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the tests' thread budget
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    (graph_input,) = session.get_inputs()
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {graph_input.name: x.numpy()})))


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    assert got.shape == expected.shape, (got.shape, expected.shape)
    scale = float(np.abs(expected).max())
    assert scale > 0 and np.isfinite(scale)
    return float(np.abs(got - expected).max()) / scale


def sample_input(shape: Tuple[int, int], batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, *shape, generator=torch.Generator().manual_seed(1))


def export(tool: ModuleType, checkpoint: str, shape: Tuple[int, int], out: str,
           kernel_mode: str, backbone: bool = False) -> None:
    """The documented command line, without the tool's own comparison."""
    argv = [CONFIG_T, '--checkpoint', checkpoint, '--shape', str(shape[0]), str(shape[1]),
            out, '--kernel-mode', kernel_mode, '--skip-check']
    tool.main(argv + (['--backbone'] if backbone else []))


def graph_summary(path: str):
    model = onnx.load(path)
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.input) + list(model.graph.output)}
    return shapes, Counter(node.op_type for node in model.graph.node), model.opset_import[0]


def assert_global_kernels_resampled(state: Dict[str, torch.Tensor], shape: Tuple[int, int],
                                    prefix: str = 'backbone.') -> None:
    """At ``shape`` every stage's global kernels (2h-1, 2w-1 taps on its h x w
    map) have other lengths than the stored ones (the checkpoint's)."""
    for stage in range(4):
        stored_h = state[f'{prefix}stages.{stage}.0.token_mixer.dwconv1.conv_h.weight'].shape[2]
        stored_w = state[f'{prefix}stages.{stage}.0.token_mixer.dwconv1.conv_w.weight'].shape[3]
        height, width = (s // (4 * 2**stage) for s in shape)
        assert 2 * height - 1 != stored_h and 2 * width - 1 != stored_w, (stage, shape)


def check_graph(path: str, model: torch.nn.Module, x: torch.Tensor,
                names: List[str], fixed_model: Optional[torch.nn.Module] = None) -> None:
    """onnxruntime on ``path`` reproduces ``model`` (built here) on ``x``, and
    not ``fixed_model`` (the same weights in fixed mode)."""
    expected = torch_outputs(model, x)
    got = onnxruntime_outputs(path, x)
    assert list(got) == names
    errors = {name: relative_error(got[name], e) for name, e in zip(names, expected)}
    assert max(errors.values()) <= RTOL, errors
    # Not a constant: the two images of the batch give different outputs.
    for e in expected:
        assert np.abs(e[0] - e[1]).max() > DISTINCT * RTOL * np.abs(e).max()
    if fixed_model is not None:
        # The graph follows the global model, and the fixed one is far off
        # (checked on the first image, which is enough to tell).
        fixed = torch_outputs(fixed_model, x[:1])
        gaps = {name: relative_error(f, e[:1]) for name, f, e in zip(names, fixed, expected)}
        assert min(gaps.values()) > DISTINCT * RTOL, gaps


def test_classifier_t_fixed_224(tool, checkpoints, reference, tmp_path):
    out = str(tmp_path / 't.onnx')
    export(tool, checkpoints['classifier'][0], (224, 224), out, 'fixed')
    check_graph(out, reference('classifier', 'fixed'), sample_input((224, 224)), ['logits'])
    shapes, ops, opset = graph_summary(out)
    assert shapes == {'input': ['batch', 3, 224, 224], 'logits': ['batch', 1000]}
    assert set(ops) <= ALLOWED_OPS, set(ops) - ALLOWED_OPS
    assert opset.version >= 17


def test_classifier_t_global_non_square(tool, checkpoints, reference, tmp_path):
    shape = (160, 192)
    path, state = checkpoints['classifier']
    assert_global_kernels_resampled(state, shape)
    with pytest.raises(AssertionError):  # the training size: the stored kernels
        assert_global_kernels_resampled(state, (224, 224))
    out = str(tmp_path / 't_global.onnx')
    export(tool, path, shape, out, 'global')
    check_graph(out, reference('classifier', 'global'), sample_input(shape), ['logits'],
                fixed_model=reference('classifier', 'fixed'))
    shapes, ops, _ = graph_summary(out)
    assert shapes == {'input': ['batch', 3, 160, 192], 'logits': ['batch', 1000]}
    assert set(ops) <= ALLOWED_OPS, set(ops) - ALLOWED_OPS


def test_backbone_t_detection_size(tool, checkpoints, reference, tmp_path):
    shape = (320, 480)
    path, state = checkpoints['backbone']
    assert_global_kernels_resampled(state, shape)
    # The checkpoint's per-output norms are not 1, and the reference has them
    # (it loads strictly): a graph that left them at 1 would differ.
    norm3 = state['backbone.norm3.weight']
    assert not torch.allclose(norm3, torch.ones_like(norm3))
    model = reference('backbone', 'global')
    assert torch.equal(model.state_dict()['norm3.weight'], norm3)
    out = str(tmp_path / 'backbone.onnx')
    export(tool, path, shape, out, 'global', backbone=True)
    check_graph(out, model, sample_input(shape), ['stage0', 'stage1', 'stage2', 'stage3'])
    shapes, ops, _ = graph_summary(out)
    assert shapes['input'] == ['batch', 3, 320, 480]
    assert shapes['stage3'] == ['batch', 512, 10, 15]
    assert set(ops) <= ALLOWED_OPS, set(ops) - ALLOWED_OPS


# ----------------------------------------------- the tool's own comparison
@pytest.fixture(scope='module')
def xt_classifier(tmp_path_factory) -> str:
    """A converted xt classifier checkpoint with random official-like weights."""
    path = tmp_path_factory.mktemp('xt') / 'classifier_xt.pth'
    state = convert_official(ref.random_official_state_dict('xt', seed=3), 'classifier')
    torch.save({'state_dict': state}, path)
    return str(path)


def test_tool_checks_its_graph_and_exits_zero(xt_classifier, tmp_path):
    """The documented command, check included, as a user runs it: onnxruntime on the
    written graph against the model as built, within --atol, exit status 0."""
    out = tmp_path / 'checked.onnx'
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'deployment' / 'export_onnx.py'), CONFIG_XT,
         '--checkpoint', xt_classifier, '--shape', '64', '96', str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r'onnxruntime vs PyTorch .*max \|diff\|: logits ([0-9.e+-]+)',
                      result.stdout)
    assert match, result.stdout[-2000:]
    assert float(match.group(1)) <= 1e-4
    assert out.is_file()
    assert [o.name for o in onnx.load(str(out)).graph.output] == ['logits']


def test_tool_refuses_a_graph_with_a_tampered_initializer(tool, xt_classifier, tmp_path,
                                                          monkeypatch):
    """A graph whose largest weight changed after export (the exporter's output
    tampered with before the check) fails the tool's check, and no file is left."""
    real_export = tool.export
    tampered = []

    def export_then_tamper(model, shape, out, *args, **kwargs):
        real_export(model, shape, out, *args, **kwargs)
        graph = onnx.load(out)
        largest = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
        values = onnx.numpy_helper.to_array(largest).copy()
        values.flat[:values.size // 2] *= 1.5
        largest.CopyFrom(onnx.numpy_helper.from_array(values, largest.name))
        onnx.save(graph, out)
        tampered.append(largest.name)

    monkeypatch.setattr(tool, 'export', export_then_tamper)
    out = tmp_path / 'tampered.onnx'
    with pytest.raises(SystemExit, match='onnxruntime differs from PyTorch'):
        tool.main([CONFIG_XT, '--checkpoint', xt_classifier, '--shape', '64', '96', str(out)])
    assert tampered and not out.exists()
    assert not list(tmp_path.iterdir())  # no temporary file left either


@pytest.mark.parametrize('missing', ['onnx', 'onnxruntime'])
def test_missing_package_gives_a_clear_message(tool, monkeypatch, tmp_path, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    with pytest.raises(tool.MissingDependency, match=f"the '{missing}' package is needed"):
        tool.require(missing)
    with pytest.raises(SystemExit, match=f"error: the '{missing}' package is needed"):
        tool.main([CONFIG_T, '--shape', '224', '224', str(tmp_path / 'x.onnx')])
    assert not (tmp_path / 'x.onnx').exists()


def test_only_classifiers_export_whole(tool):
    det = str(REPO / 'configs' / 'mask_rcnn_parcnetv2_t.py')
    assert os.path.exists(det)
    with pytest.raises(ValueError, match='use --backbone'):
        tool.build(det)
