"""ONNX export (tools/deployment/export_onnx.py) checked with onnxruntime.

The tool only writes the graphs here (``--skip-check``): the PyTorch side is
built in this file from the config and checkpoint (the model as configured,
in eval mode, before any re-parameterisation), and onnxruntime runs the
exported file directly, so a wrong comparison inside the tool cannot make
these tests pass.  Errors are judged relative to the outputs' scale.

Cases: the t classifier in ``fixed`` mode at 224x224 (the training size), the
t classifier in ``global`` mode at 192x256 and the t backbone (all four
stages, official det/seg weights layout) in ``global`` mode at 320x480.  At
224 the global kernels (``2H - 1`` taps) are the stored ones, so a global
case only tests kernel resampling at another, here non-square, size; each
global case checks that its size gives kernels other than the stored ones
and that the graph follows the global model, not the fixed one.  Each graph
is exported with batch 1 and run with batch 2 (dynamic batch axis).
"""
import importlib.util
import os
import sys
from collections import Counter
from types import ModuleType
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import reference_official as ref
from mmparc.convert import convert_official

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_T = os.path.join(ROOT, 'configs', 'imagenet_parcnetv2_t.py')
# onnxruntime vs PyTorch: max |diff| over max |PyTorch output|, per output.
# Measured ~1e-6 (float32 rounding of the merged kernels); 1e-4 leaves a wide
# margin and is still far below what a wrong kernel does (see MODE_GAP).
RTOL = 1e-4
# In the global cases the fixed-mode model must differ from the global one by
# at least this many tolerances, or the case would not tell the modes apart.
MODE_GAP = 100
# What a fixed-size ParCNetV2 graph is made of: nothing that reads shapes
# (Shape, Gather, Reshape, Range, ...), resamples kernels (Resize) or builds
# Toeplitz matrices (Einsum, Where).
ALLOWED_OPS = {'Conv', 'MatMul', 'Gemm', 'Add', 'Sub', 'Mul', 'Div', 'Erf', 'Transpose',
               'ReduceMean', 'ReduceL2', 'Clip', 'Constant', 'LayerNormalization'}


@pytest.fixture(scope='module')
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        'export_onnx', os.path.join(ROOT, 'tools', 'deployment', 'export_onnx.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """Random official-like weights: a t classifier and a t det/seg backbone."""
    root = tmp_path_factory.mktemp('ckpt')
    cls = str(root / 'cls_t.pth')
    torch.save({'state_dict': convert_official(ref.random_official_state_dict('t', seed=2),
                                               'classifier')}, cls)
    dense = str(root / 'det_t.pth')
    state = ref.random_official_state_dict('t', dense_prefix='backbone.', seed=4)
    torch.save({'state_dict': convert_official(state, 'model')}, dense)
    return {'classifier': cls, 'backbone': dense}


# ------------------------------------------------- the PyTorch side, built here
def reference_model(checkpoint: str, kernel_mode: str, backbone: bool = False) -> torch.nn.Module:
    """The t model of CONFIG_T with ``checkpoint`` loaded strictly, in eval mode.

    Classifier: the whole mmpretrain model, compared through
    ``model(x, mode='tensor')`` (the logits of the normalised input).
    Backbone: the config's backbone with all four stage outputs and the
    per-output norms of the det/seg layout, loaded from the ``backbone.*``
    keys of the checkpoint.
    """
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(CONFIG_T)
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.backbone.kernel_mode = kernel_mode
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)['state_dict']
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
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
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


def assert_global_kernels_resampled(checkpoint: str, shape: Tuple[int, int],
                                    prefix: str = 'backbone.') -> None:
    """At ``shape`` every stage's global kernels (2h-1, 2w-1 taps on its h x w
    map) have other lengths than the stored ones (the checkpoint's)."""
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)['state_dict']
    for stage in range(4):
        stored_h = state[f'{prefix}stages.{stage}.0.token_mixer.dwconv1.conv_h.weight'].shape[2]
        stored_w = state[f'{prefix}stages.{stage}.0.token_mixer.dwconv1.conv_w.weight'].shape[3]
        height, width = (s // (4 * 2**stage) for s in shape)
        assert 2 * height - 1 != stored_h and 2 * width - 1 != stored_w, (stage, shape)


def check_graph(path: str, model: torch.nn.Module, x: torch.Tensor,
                names: List[str], fixed_model: Optional[torch.nn.Module] = None) -> Dict:
    """onnxruntime on ``path`` vs ``model`` (built here); returns the errors."""
    expected = torch_outputs(model, x)
    got = onnxruntime_outputs(path, x)
    assert list(got) == names
    errors = {name: relative_error(got[name], e) for name, e in zip(names, expected)}
    assert max(errors.values()) <= RTOL, errors
    # Not a constant: the two images of the batch give different outputs.
    for e in expected:
        assert np.abs(e[0] - e[1]).max() > MODE_GAP * RTOL * np.abs(e).max()
    if fixed_model is not None:
        # The graph follows the global model, and the fixed one is far off
        # (checked on the first image, which is enough to tell).
        fixed = torch_outputs(fixed_model, x[:1])
        gaps = {name: relative_error(f, e[:1]) for name, f, e in zip(names, fixed, expected)}
        assert min(gaps.values()) > MODE_GAP * RTOL, gaps
    return errors


def test_classifier_t_fixed_224(tool, checkpoints, tmp_path):
    out = str(tmp_path / 't.onnx')
    export(tool, checkpoints['classifier'], (224, 224), out, 'fixed')
    model = reference_model(checkpoints['classifier'], 'fixed')
    check_graph(out, model, sample_input((224, 224)), ['logits'])
    shapes, ops, opset = graph_summary(out)
    assert shapes == {'input': ['batch', 3, 224, 224], 'logits': ['batch', 1000]}
    assert set(ops) <= ALLOWED_OPS, set(ops) - ALLOWED_OPS
    assert opset.version >= 17


def test_classifier_t_global_non_square(tool, checkpoints, tmp_path):
    shape = (192, 256)
    assert_global_kernels_resampled(checkpoints['classifier'], shape)
    out = str(tmp_path / 't_global.onnx')
    export(tool, checkpoints['classifier'], shape, out, 'global')
    model = reference_model(checkpoints['classifier'], 'global')
    fixed = reference_model(checkpoints['classifier'], 'fixed')
    check_graph(out, model, sample_input(shape), ['logits'], fixed_model=fixed)
    shapes, ops, _ = graph_summary(out)
    assert shapes == {'input': ['batch', 3, 192, 256], 'logits': ['batch', 1000]}
    assert set(ops) <= ALLOWED_OPS, set(ops) - ALLOWED_OPS


def test_backbone_t_detection_size(tool, checkpoints, tmp_path):
    shape = (320, 480)
    assert_global_kernels_resampled(checkpoints['backbone'], shape)
    state = torch.load(checkpoints['backbone'], map_location='cpu', weights_only=True)
    # The checkpoint has per-output norms other than 1 (loaded strictly below).
    norm3 = state['state_dict']['backbone.norm3.weight']
    assert not torch.allclose(norm3, torch.ones_like(norm3))
    out = str(tmp_path / 'backbone.onnx')
    export(tool, checkpoints['backbone'], shape, out, 'global', backbone=True)
    model = reference_model(checkpoints['backbone'], 'global', backbone=True)
    assert torch.equal(model.norm3.weight, norm3)
    fixed = reference_model(checkpoints['backbone'], 'fixed', backbone=True)
    check_graph(out, model, sample_input(shape), ['stage0', 'stage1', 'stage2', 'stage3'],
                fixed_model=fixed)
    shapes, ops, _ = graph_summary(out)
    assert shapes['input'] == ['batch', 3, 320, 480]
    assert shapes['stage3'] == ['batch', 512, 10, 15]
    assert set(ops) <= ALLOWED_OPS, set(ops) - ALLOWED_OPS


@pytest.mark.parametrize('missing', ['onnx', 'onnxruntime'])
def test_missing_package_gives_a_clear_message(tool, monkeypatch, tmp_path, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    with pytest.raises(tool.MissingDependency, match=f"the '{missing}' package is needed"):
        tool.require(missing)
    with pytest.raises(SystemExit, match=f"error: the '{missing}' package is needed"):
        tool.main([CONFIG_T, '--shape', '224', '224', str(tmp_path / 'x.onnx')])
    assert not (tmp_path / 'x.onnx').exists()


def test_only_classifiers_export_whole(tool):
    det = os.path.join(ROOT, 'configs', 'mask_rcnn_parcnetv2_t.py')
    assert os.path.exists(det)
    with pytest.raises(ValueError, match='use --backbone'):
        tool.build(det)
