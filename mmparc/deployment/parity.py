"""Export with mmdeploy and compare ONNX Runtime with the PyTorch model on one image.

The reference is the model as its config builds it with the checkpoint
loaded, before any re-parameterisation (what ``mmdeploy`` itself would run
is already re-parameterised).  Both run the same ``test_step`` on the same
image through the model's own data preprocessing, so the comparison covers
everything a user of the exported model sees:

* classification: the class probabilities (max |difference|) and their
  logarithms (logits up to a constant per image; the graph ends in softmax);
* segmentation: the class map (share of equal pixels) and, where the graph
  returns logits (``with_argmax=False``), the logits;
* detection / instance segmentation: every detection above ``score_thr`` on
  either side must have a partner of the same class on the other side
  (box IoU >= :data:`MATCH_IOU`, any score); for matched pairs the box
  corners, scores and mask IoU are compared.

Needs mmdeploy (``requirements/deploy.txt``); see ``docs/deployment.md``.
"""
import copy
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

# Without a checkpoint both builds (mmdeploy's and the reference) start from
# this seed, so that they hold the same initial weights.
SEED = 0
# Two boxes are the same detection when they overlap at least this much.
MATCH_IOU = 0.9
# What :func:`failures` accepts.  float32 rounding in another runtime moves
# log-probabilities and logits by ~1e-6 of their scale and boxes by a few
# hundredths of a pixel at 800x1216; a pasted mask's border pixels may flip.
TOLERANCES = {
    'max |log-prob diff|': 1e-3,
    'max |logit diff| / logit scale': 1e-4,
    'pixel agreement': 0.999,   # at least
    'max |box diff| (px)': 0.5,
    'max |score diff|': 1e-3,
    'min mask IoU': 0.9,        # at least
}


def load_configs(deploy_cfg: str, model_cfg: str) -> Any:
    """``(deploy_cfg, model_cfg)`` as mmdeploy reads them, with the export rules installed.

    Importing :mod:`.mmdeploy_compat` registers its rewrite with mmdeploy
    even for deploy configs that do not import it.
    """
    from mmdeploy.utils import load_config

    from . import mmdeploy_compat  # noqa: F401  (registers its rewrite)
    return load_config(deploy_cfg, model_cfg)


def export(deploy_cfg: str, model_cfg: str, checkpoint: Optional[str], img: str,
           work_dir: str, device: str = 'cpu') -> str:
    """``mmdeploy.apis.torch2onnx``; returns the path of the ONNX file in ``work_dir``."""
    import os.path as osp

    from mmdeploy.apis import torch2onnx
    from mmdeploy.utils import get_onnx_config
    deploy, model = load_configs(deploy_cfg, model_cfg)
    save_file = get_onnx_config(deploy)['save_file']
    if checkpoint is None:
        torch.manual_seed(SEED)
    torch2onnx(img, work_dir, save_file, deploy, model, checkpoint, device=device)
    return osp.join(work_dir, save_file)


def build_reference(task_processor: Any, checkpoint: Optional[str]) -> nn.Module:
    """The PyTorch model as mmdeploy builds it, but not re-parameterised.

    mmdeploy's ``build_pytorch_model`` calls ``backbone.switch_to_deploy()``;
    this is the same build without that step.  Without a checkpoint the
    weights are the initial ones drawn after seeding with :data:`SEED`, as
    :func:`export` seeds mmdeploy's build.
    """
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS
    from mmengine.runner.checkpoint import load_checkpoint
    cfg = task_processor.model_cfg
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('pretrained', None)
    preprocess = copy.deepcopy(cfg.get('preprocess_cfg', {}))
    preprocess.update(copy.deepcopy(cfg.get('data_preprocessor', {})))
    model_cfg.setdefault('data_preprocessor', preprocess)
    if checkpoint is None:
        torch.manual_seed(SEED)
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, map_location='cpu')
    return revert_sync_batchnorm(model).eval()


def compare(deploy_cfg: str, model_cfg: str, checkpoint: Optional[str], img: str,
            onnx_file: str, score_thr: float = 0.3) -> Dict[str, float]:
    """Run ``onnx_file`` in ONNX Runtime and the PyTorch model on ``img``; the differences."""
    from mmdeploy.apis.utils import build_task_processor
    from mmdeploy.utils import get_input_shape
    deploy, model = load_configs(deploy_cfg, model_cfg)
    processor = build_task_processor(model, deploy, 'cpu')
    reference = build_reference(processor, checkpoint)
    backend = processor.build_backend_model([onnx_file], processor.update_data_preprocessor)
    data, _ = processor.create_input(img, get_input_shape(deploy))
    with torch.no_grad():
        expected = reference.test_step(copy.deepcopy(data))
        got = backend.test_step(copy.deepcopy(data))
        task = deploy.codebase_config.type
        if task == 'mmpretrain':
            return compare_classification(expected, got)
        if task == 'mmseg':
            inputs = backend.data_preprocessor(copy.deepcopy(data), False)['inputs']
            raw = backend.wrapper({backend.input_name: inputs})
            return compare_segmentation(expected, got, list(raw.values())[0])
        if task == 'mmdet':
            return compare_detection(expected[0].pred_instances, got[0].pred_instances,
                                     score_thr)
    raise ValueError(f'{deploy_cfg}: codebase {task!r} is not one of mmpretrain, mmseg, mmdet')


def compare_classification(expected: List[Any], got: List[Any]) -> Dict[str, float]:
    """Probabilities and log-probabilities of every class, and the top-1 agreement."""
    p = torch.stack([s.pred_score for s in expected]).double()
    q = torch.stack([s.pred_score for s in got]).double()
    return {
        'max |prob diff|': (p - q).abs().max().item(),
        'max |log-prob diff|': (p.log() - q.log()).abs().max().item(),
        'log-prob spread': (p.log().max(1).values - p.log().min(1).values).min().item(),
        'top-1 agreement': (p.argmax(1) == q.argmax(1)).double().mean().item(),
    }


def compare_segmentation(expected: List[Any], got: List[Any],
                         raw: torch.Tensor) -> Dict[str, float]:
    """Class maps; logits too where the graph returns them (``with_argmax=False``)."""
    labels = torch.stack([s.pred_sem_seg.data for s in expected])
    ort_labels = torch.stack([s.pred_sem_seg.data for s in got]).to(labels.dtype)
    report = {'pixel agreement': (labels == ort_labels).double().mean().item()}
    logits = torch.stack([s.seg_logits.data for s in expected])
    if raw.shape[1] == logits.shape[1] > 1 and raw.shape[2:] == logits.shape[2:]:
        report['max |logit diff|'] = (raw.to(logits) - logits).abs().max().item()
        report['logit scale'] = logits.abs().max().item()
    return report


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N, M)`` IoU of ``x1, y1, x2, y2`` boxes."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def _partners(src: Any, dst: Any, score_thr: float) -> List[Tuple[int, Optional[int]]]:
    """Each detection of ``src`` above ``score_thr`` and its partner in ``dst`` (or None)."""
    keep = (src.scores >= score_thr).nonzero().flatten().tolist()
    if not keep:
        return []
    iou = box_iou(src.bboxes[keep].double(), dst.bboxes.double())
    iou[src.labels[keep][:, None] != dst.labels[None, :]] = 0
    partners: List[Optional[int]] = []
    for row in iou:
        best = int(row.argmax()) if row.numel() else -1
        partners.append(best if best >= 0 and row[best] >= MATCH_IOU else None)
    return list(zip(keep, partners))


def compare_detection(expected: Any, got: Any, score_thr: float) -> Dict[str, float]:
    """Detections above ``score_thr`` matched both ways; their boxes, scores and masks."""
    forward = _partners(expected, got, score_thr)
    backward = _partners(got, expected, score_thr)
    pairs = [(i, j) for i, j in forward if j is not None]
    report = {
        'detections above score_thr (PyTorch)': float(len(forward)),
        'detections above score_thr (ONNX Runtime)': float(len(backward)),
        'unmatched': float(sum(j is None for _, j in forward + backward)),
    }
    if pairs:
        i, j = map(list, zip(*pairs))
        report['max |box diff| (px)'] = (expected.bboxes[i].double() -
                                         got.bboxes[j].double()).abs().max().item()
        report['max |score diff|'] = (expected.scores[i].double() -
                                      got.scores[j].double()).abs().max().item()
        if 'masks' in expected and 'masks' in got:
            a = torch.as_tensor(np.asarray(expected.masks[i])).bool().flatten(1)
            b = torch.as_tensor(np.asarray(got.masks[j])).bool().flatten(1)
            union = (a | b).sum(1)
            iou = torch.where(union > 0, (a & b).sum(1) / union.clamp(min=1), 1.0)
            report['min mask IoU'] = iou.min().item()
    return report


def failures(report: Dict[str, float]) -> List[str]:
    """What in a :func:`compare` report is outside :data:`TOLERANCES` (empty: it passes)."""
    found = []
    if report.get('top-1 agreement', 1.0) < 1.0:
        found.append(f"top-1 agreement {report['top-1 agreement']:.4g} < 1")
    if report.get('unmatched', 0.0) > 0:
        found.append(f"{report['unmatched']:.0f} detections without a partner")
    values = dict(report)
    if 'max |logit diff|' in report:
        values['max |logit diff| / logit scale'] = (report['max |logit diff|'] /
                                                    max(report['logit scale'], 1e-12))
    for name, limit in TOLERANCES.items():
        if name not in values:
            continue
        at_least = name in ('pixel agreement', 'min mask IoU')
        if (values[name] < limit) if at_least else (values[name] > limit):
            found.append(f"{name} {values[name]:.4g} {'<' if at_least else '>'} {limit}")
    return found
