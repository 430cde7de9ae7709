"""ParCNetV2 models through mmdeploy 1.3.1 into ONNX Runtime, against PyTorch.

Each task exports a small model with mmdeploy's own ``torch2onnx`` and a
deploy config of ``configs/mmdeploy/`` (nothing patched by the test), then
runs mmdeploy's ONNX Runtime model and the PyTorch model as built (before
re-parameterisation) on the same image (:mod:`mmparc.deployment.parity`):

* classifier: ParCNetV2-XT, 10 classes, 96x96, ``kernel_mode='global'``
  (kernels resampled for the export size) in a static graph, and the
  ``'fixed'`` model in a dynamic graph checked at another size (128x160);
* segmentor: the quickstart UperNet at 192x192, the graph returning logits;
* detector: the quickstart Mask R-CNN at 192x192: boxes, scores, masks.

Weights are seeded; the heads get larger ones than their initialisation
(std 0.01) so that outputs are decisive: logits spread far beyond the
tolerances, detections separated in score around the compared threshold
(chosen in the widest gap of the PyTorch scores), masks not at 0.5.
"""
import copy
import math
import os
import textwrap
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import torch
import torch.nn as nn

try:
    import mmdeploy  # noqa: F401
except ImportError:
    pytest.skip('mmdeploy is not installed (requirements/deploy.txt, which '
                'tools/setup_env.sh installs)', allow_module_level=True)

import cv2  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

import mmparc  # noqa: E402,F401
from mmparc.deployment import mmdeploy_compat, parity  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / 'configs' / 'mmdeploy'
CLASSIFIER = ROOT / 'configs' / 'imagenet_parcnetv2_xt.py'
SEGMENTOR = ROOT / 'configs' / 'quickstart' / 'upernet_parcnetv2_toy.py'
DETECTOR = ROOT / 'configs' / 'quickstart' / 'mask_rcnn_parcnetv2_toy.py'
# A compared quantity must exceed its tolerance this many times over, or the
# comparison could not tell a right graph from a wrong one.
DECISIVE = 100


def pipeline(crop) -> str:
    return (f"test_pipeline = [dict(type='LoadImageFromFile'), "
            f"dict(type='ResizeEdge', scale={max(np.atleast_1d(crop)) + 16}, edge='short'), "
            f"dict(type='CenterCrop', crop_size={crop!r}), dict(type='PackInputs')]\n")


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


def save_checkpoint(config: str, scope: str, path: Path,
                    tweak: Optional[Callable[[nn.Module], None]] = None) -> str:
    """The config's model with seeded weights (``tweak`` then adjusts them)."""
    init_default_scope(scope)
    from mmengine.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    if tweak is not None:
        tweak(model)
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


def widen(module: nn.Module, seed: int, bias_std: float = 0.5) -> None:
    """Re-draw conv/linear weights with std 1/sqrt(fan-in) and biases with ``bias_std``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
                fan_in = (m.weight.shape[0] if isinstance(m, nn.ConvTranspose2d) else
                          m.weight[0].numel())
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) /
                               math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * bias_std)


@pytest.fixture(scope='module')
def image(tmp_path_factory) -> str:
    """A 192x192 scene: shapes on a gradient with noise (structure at every scale)."""
    rng = np.random.RandomState(0)
    yy, xx = np.mgrid[:192, :192]
    img = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.float32)
    img += rng.normal(0, 12, img.shape)
    img = img.clip(0, 255).astype(np.uint8)
    cv2.circle(img, (60, 70), 30, (20, 20, 230), -1)
    cv2.rectangle(img, (110, 30), (170, 90), (30, 220, 30), -1)
    cv2.fillPoly(img, [np.array([[40, 170], [100, 110], [150, 175]])], (230, 40, 40))
    path = tmp_path_factory.mktemp('img') / 'scene.jpg'
    cv2.imwrite(str(path), img)
    return str(path)


def export(tmp_path: Path, deploy_cfg: str, model_cfg: str, checkpoint: str, img: str) -> str:
    onnx_file = parity.export(deploy_cfg, model_cfg, checkpoint, img, str(tmp_path / 'work'))
    assert os.path.getsize(onnx_file) > 0
    return onnx_file


def assert_passes(report) -> None:
    assert parity.failures(report) == [], report


# ------------------------------------------------------------ the shims
def test_export_shims_apply_inside_only():
    import torch.onnx.symbolic_opset9 as opset9
    original = torch.onnx.export
    had_cast = hasattr(opset9, '_cast_Long')
    with mmdeploy_compat.export_shims():
        assert hasattr(opset9, '_cast_Long')
    assert torch.onnx.export is original and hasattr(opset9, '_cast_Long') == had_cast

    calls = []

    def fake_export(model, args, f=None, *, dynamo: bool = True):
        calls.append(dynamo)

    mmdeploy_compat.with_torchscript_exporter(fake_export)(None, ())
    mmdeploy_compat.with_torchscript_exporter(fake_export)(None, (), dynamo=True)
    assert calls == [False, True]  # the default flips; an explicit choice stays
    no_dynamo = lambda model, args: None  # noqa: E731  (torch 2.1's signature has no dynamo)
    assert mmdeploy_compat.with_torchscript_exporter(no_dynamo) is no_dynamo


def test_rewrite_registered_with_mmdeploy_and_scoped_to_its_export():
    from mmdeploy.core import RewriterContext
    original = torch.onnx.export
    with RewriterContext(cfg=dict(), backend='onnxruntime'):
        assert torch.onnx.export is not original
        assert torch.onnx.export.__name__ == 'torchscript_onnx_export'
    assert torch.onnx.export is original


def test_global_kernels_refuse_a_dynamic_graph():
    from mmparc.models import ParCNetV2
    model = nn.Module()
    model.backbone = ParCNetV2('xt', kernel_mode='global').switch_to_deploy()
    with pytest.raises(ValueError, match='dynamic height and width'):
        mmdeploy_compat.resolve_kernels(model, torch.zeros(1, 3, 64, 64), dynamic=True)
    mmdeploy_compat.resolve_kernels(model, torch.zeros(1, 3, 64, 96), dynamic=False)
    assert model.backbone.deploy_input_size == (64, 96)


def test_cascade_heads_give_their_top_class_deltas_during_export():
    # mmdeploy's cascade rewrite asserts class-agnostic boxes before the last
    # stage; there the heads return each RoI's deltas of its top class.
    class Head(nn.Module):
        reg_class_agnostic = False

        def forward(self, x):
            return x[:, :4], x[:, 4:]  # 3 classes + background; 3 x 4 deltas

    roi_head = nn.Module()
    roi_head.num_stages = 2
    roi_head.bbox_head = nn.ModuleList([Head(), Head()])
    model = nn.Module()
    model.roi_head = roi_head
    x = torch.tensor([[0.1, 0.9, 0.2, 5.0] + list(range(12)),   # top class 1 (not bg)
                      [0.7, 0.1, 0.2, 0.0] + list(range(12, 24))], dtype=torch.float32)
    with mmdeploy_compat.class_selected_deltas(model):
        first, last = roi_head.bbox_head
        assert first.reg_class_agnostic and not last.reg_class_agnostic
        cls_score, deltas = first(x)
        assert torch.equal(cls_score, x[:, :4])
        assert deltas.tolist() == [[4, 5, 6, 7], [12, 13, 14, 15]]
        assert last(x)[1].shape == (2, 12)
    assert not first.reg_class_agnostic and 'forward' not in vars(first)
    assert first(x)[1].shape == (2, 12)


# ------------------------------------------------------------ the configs
def deploy_configs():
    return sorted(p for p in DEPLOY.rglob('*.py') if '_base_' not in p.parts)


@pytest.mark.parametrize('path', deploy_configs(), ids=lambda p: p.stem)
def test_deploy_config_reads_as_mmdeploy_reads_it(path):
    from mmdeploy.utils import (get_backend, get_codebase_config, get_input_shape,
                                is_dynamic_shape, load_config)
    cfg = load_config(str(path))[0]
    assert get_backend(cfg).value == 'onnxruntime'
    assert get_codebase_config(cfg)['type'] == path.parent.name
    assert 'mmparc.deployment.mmdeploy_compat' in cfg.custom_imports['imports']
    assert is_dynamic_shape(cfg) == ('dynamic' in path.stem)
    shape = get_input_shape(cfg)
    if '_static-' in path.stem:  # *_static-HxW: mmdeploy's input_shape is (W, H)
        height, width = map(int, path.stem.rsplit('-', 1)[1].split('x'))
        assert tuple(shape) == (width, height)
    else:
        assert shape is None


# ------------------------------------------------------------ parity
def test_classifier_static_global_kernels(tmp_path, image):
    model_cfg = write(tmp_path / 'cls.py', f"""
        _base_ = ['{CLASSIFIER}']
        model = dict(backbone=dict(kernel_mode='global'), head=dict(num_classes=10))
        """ + pipeline(96))
    checkpoint = save_checkpoint(model_cfg, 'mmpretrain', tmp_path / 'cls.pth',
                                 lambda m: widen(m.head, seed=1, bias_std=0.0))
    deploy_cfg = str(DEPLOY / 'mmpretrain' / 'classification_onnxruntime_static.py')
    onnx_file = export(tmp_path, deploy_cfg, model_cfg, checkpoint, image)
    report = parity.compare(deploy_cfg, model_cfg, checkpoint, image, onnx_file)
    assert_passes(report)
    assert report['log-prob spread'] > DECISIVE * parity.TOLERANCES['max |log-prob diff|']


def test_classifier_dynamic_graph_at_another_size(tmp_path, image):
    export_cfg = write(tmp_path / 'cls96.py', f"""
        _base_ = ['{CLASSIFIER}']
        model = dict(head=dict(num_classes=10))
        """ + pipeline(96))
    check_cfg = write(tmp_path / 'cls128x160.py', f"""
        _base_ = ['{export_cfg}']
        """ + pipeline((128, 160)))
    checkpoint = save_checkpoint(export_cfg, 'mmpretrain', tmp_path / 'cls.pth',
                                 lambda m: widen(m.head, seed=2, bias_std=0.0))
    deploy_cfg = str(DEPLOY / 'mmpretrain' / 'classification_onnxruntime_dynamic.py')
    onnx_file = export(tmp_path, deploy_cfg, export_cfg, checkpoint, image)
    report = parity.compare(deploy_cfg, check_cfg, checkpoint, image, onnx_file)
    assert_passes(report)
    assert report['log-prob spread'] > DECISIVE * parity.TOLERANCES['max |log-prob diff|']


def test_segmentor_logits(tmp_path, image):
    # The shipped config ends the graph in argmax; logits are the decisive comparison.
    deploy_cfg = write(tmp_path / 'seg_logits.py', f"""
        _base_ = ['{DEPLOY / 'mmseg' / 'segmentation_onnxruntime_static-192x192.py'}']
        codebase_config = dict(with_argmax=False)
        """)
    checkpoint = save_checkpoint(str(SEGMENTOR), 'mmseg', tmp_path / 'seg.pth',
                                 lambda m: widen(m.decode_head.conv_seg, seed=3))
    onnx_file = export(tmp_path, deploy_cfg, str(SEGMENTOR), checkpoint, image)
    report = parity.compare(deploy_cfg, str(SEGMENTOR), checkpoint, image, onnx_file)
    assert_passes(report)
    assert report['pixel agreement'] == 1.0
    assert report['logit scale'] > 1.0  # the widened classifier: logits far from 0


def test_instance_segmentation(tmp_path, image):
    def decisive(model: nn.Module) -> None:
        widen(model.rpn_head, seed=4)
        widen(model.roi_head, seed=5)
        model.roi_head.mask_head.conv_logits.bias.data.zero_()  # masks cover part of the box

    checkpoint = save_checkpoint(str(DETECTOR), 'mmdet', tmp_path / 'det.pth', decisive)
    deploy_cfg = str(DEPLOY / 'mmdet' / 'instance-seg_onnxruntime_static-192x192.py')
    # The compared threshold sits in the widest gap of PyTorch's scores
    # (ranks 5-25 of at most 30), so no detection is near it.
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import get_input_shape
    deploy, model = parity.load_configs(deploy_cfg, str(DETECTOR))
    processor = build_task_processor(model, deploy, 'cpu')
    data, _ = processor.create_input(image, get_input_shape(deploy))
    with torch.no_grad():
        result = parity.build_reference(processor, checkpoint).test_step(data)[0]
    scores = result.pred_instances.scores.sort(descending=True).values
    gaps = scores[4:25] - scores[5:26]
    rank = int(gaps.argmax()) + 5
    assert gaps.max() > 1e-3, scores  # separated by far more than float rounding
    score_thr = float(scores[rank - 1] + scores[rank]) / 2

    onnx_file = export(tmp_path, deploy_cfg, str(DETECTOR), checkpoint, image)
    report = parity.compare(deploy_cfg, str(DETECTOR), checkpoint, image, onnx_file, score_thr)
    assert_passes(report)
    assert report['detections above score_thr (PyTorch)'] == rank
    assert report['detections above score_thr (ONNX Runtime)'] == rank
    masks = np.asarray(result.pred_instances.masks[:rank])
    assert masks.any((1, 2)).all() and not masks.all((1, 2)).any()  # masks are shapes
    assert report['min mask IoU'] >= parity.TOLERANCES['min mask IoU']


# ------------------------------------------------------------ the check itself
def test_detection_check_catches_a_moved_box_and_a_lost_detection():
    def instances(boxes, scores, labels):
        data = InstanceData()
        data.bboxes = torch.tensor(boxes, dtype=torch.float32)
        data.scores = torch.tensor(scores)
        data.labels = torch.tensor(labels)
        return data

    expected = instances([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [0, 1])
    assert parity.failures(parity.compare_detection(expected, copy.deepcopy(expected), 0.5)) == []
    moved = instances([[0, 0, 10, 10], [20, 20, 41, 40]], [0.9, 0.8], [0, 1])
    report = parity.compare_detection(expected, moved, 0.5)
    assert report['unmatched'] == 0 and parity.failures(report)  # 1 px > 0.5 px
    lost = instances([[0, 0, 10, 10]], [0.9], [0])
    assert parity.compare_detection(expected, lost, 0.5)['unmatched'] == 1
    relabelled = instances([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [0, 2])
    assert parity.compare_detection(expected, relabelled, 0.5)['unmatched'] == 2


def test_tool_refuses_a_missing_checkpoint_in_one_line(tmp_path, image):
    import subprocess
    import sys
    deploy_cfg = DEPLOY / 'mmseg' / 'segmentation_onnxruntime_static-192x192.py'
    out = tmp_path / 'out'
    result = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'deployment' / 'mmdeploy_export.py'),
         str(deploy_cfg), str(SEGMENTOR), str(tmp_path / 'missing.pth'), image,
         '--work-dir', str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: {tmp_path / "missing.pth"}: checkpoint file not found')
    assert not out.exists()
