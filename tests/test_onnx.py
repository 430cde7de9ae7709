"""ONNX export (tools/deployment/export_onnx.py) checked with onnxruntime.

The t classifier is exported at 224x224 in both kernel modes, the t backbone
(all four stages, official det/seg weights layout) at 320x480, a small
detection-like size that keeps the test within a minute on two cores.  Each
graph is exported with batch 1 and run with batch 2 (dynamic batch axis).
"""
import importlib.util
import os
import sys
from collections import Counter
from types import ModuleType

import pytest
import torch

import reference_official as ref
from mmparc.convert import convert_official

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_T = os.path.join(ROOT, 'configs', 'imagenet_parcnetv2_t.py')
ATOL = 1e-4
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


def graph_summary(path: str):
    onnx = pytest.importorskip('onnx')
    model = onnx.load(path)
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.input) + list(model.graph.output)}
    return shapes, Counter(node.op_type for node in model.graph.node), model.opset_import[0]


@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
def test_classifier_t_224(tool, checkpoints, tmp_path, kernel_mode):
    pytest.importorskip('onnxruntime')
    out = str(tmp_path / 't.onnx')
    diffs = tool.main([CONFIG_T, '--checkpoint', checkpoints['classifier'], '--shape', '224',
                       '224', out, '--kernel-mode', kernel_mode])
    assert set(diffs) == {'logits'} and diffs['logits'] <= ATOL
    shapes, ops, opset = graph_summary(out)
    assert shapes == {'input': ['batch', 3, 224, 224], 'logits': ['batch', 1000]}
    assert set(ops) <= ALLOWED_OPS, set(ops) - ALLOWED_OPS
    assert opset.version >= 17


def test_backbone_t_detection_size(tool, checkpoints, tmp_path):
    pytest.importorskip('onnxruntime')
    shape = (320, 480)
    model = tool.build(CONFIG_T, checkpoints['backbone'], backbone=True, kernel_mode='global')
    # The checkpoint's per-output norms were loaded, not left at 1.
    assert not torch.allclose(model.norm3.weight, torch.ones_like(model.norm3.weight))
    x = tool.sample_input(shape, batch=2)
    expected = tool.torch_outputs(model, x)  # before re-parameterisation
    out = str(tmp_path / 'backbone.onnx')
    tool.export(model, shape, out)
    diffs = tool.compare(out, x, expected)
    assert list(diffs) == ['stage0', 'stage1', 'stage2', 'stage3']
    assert max(diffs.values()) <= ATOL, diffs
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
    if not os.path.exists(det):
        pytest.skip('no detection config')
    with pytest.raises(ValueError, match='use --backbone'):
        tool.build(det)
