"""The ready-made configs: recipe values, Table 6 sizes, and end-to-end runs.

Every config is run for one training iteration and one evaluation through
mmengine's Runner on tiny synthetic data (``mmparc.testing.toy_data``), with the real
model but shrunk images, pipeline scales, schedules, batch sizes and RoI
sampling.  Two tests run the documented command lines through ``mim``.

SyncBN: the det/seg heads keep ``SyncBN`` as the official configs do.  With
no process group initialised (single process, CPU), torch's SyncBatchNorm
computes plain batch statistics, and mmengine's Runner does not wrap or
convert anything when not distributed, so the configs run unchanged on CPU;
``test_syncbn_heads_run_without_process_group`` pins that down.

Pretrained weights: the det/seg configs load an ImageNet-1K backbone through
``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``.  The runs here
point that path at a synthetic backbone checkpoint (random weights and
biases, written once per arch), which exercises the configs' real loading
path.  ``test_from_scratch_dense_training_stays_finite`` covers ``init_cfg=None``:
a zero-initialised backbone holds exact zeros over the zero padding of
dense batches, where the official norm's exact gradient (``1 / eps``) would
overflow; mmparc's norm treats those rows as constants in the backward pass.
"""
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch

from mmparc.testing import toy_data

from helpers import REPO

CONFIGS = REPO / 'configs'
MIM = Path(sys.executable).with_name('mim')
# Intra-op threads for these runs.  On a small machine shared with other jobs,
# one thread is several times faster than two (OpenMP threads wait on each
# other when the cores are oversubscribed); raise it on a dedicated machine.
THREADS = int(os.environ.get('MMPARC_TEST_THREADS', '1'))


@pytest.fixture(scope='module', autouse=True)
def _threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(previous)


DET = [f'{kind}_parcnetv2_{a}' for kind in ('cascade', 'mask_rcnn') for a in 'tsb']
SEG = [f'upernet_parcnetv2_{a}' for a in 'tsb']
CLS = [f'imagenet_parcnetv2_{a}' for a in ('xt', 't', 's', 'b')]
ALL = DET + SEG + CLS

DIMS = {'xt': [48, 96, 192, 320], 't': [64, 128, 320, 512], 's': [64, 128, 320, 512],
        'b': [96, 192, 384, 576]}


def _arch(name: str) -> str:
    return name.rsplit('_', 1)[1]


def load_cfg(name: str):
    from mmengine.config import Config
    return Config.fromfile(str(CONFIGS / f'{name}.py'))


# --------------------------------------------------------------------- recipes
# (drop_path, lr, weight_decay, decay_rate, decay_type, num_layers) per config.
RECIPES = {
    'cascade_parcnetv2_t': (0.4, 2e-4, 0.05, 0.7, 'layer_wise', 7),
    'cascade_parcnetv2_s': (0.6, 2e-4, 0.05, 0.7, 'layer_wise', 13),
    'cascade_parcnetv2_b': (0.7, 2e-4, 0.05, 0.8, 'layer_wise', 13),
    'mask_rcnn_parcnetv2_t': (0.4, 1e-4, 0.05, 0.95, 'layer_wise', 7),
    'mask_rcnn_parcnetv2_s': (0.6, 1e-4, 0.05, 0.95, 'layer_wise', 13),
    'mask_rcnn_parcnetv2_b': (0.7, 1e-4, 0.05, 0.95, 'layer_wise', 13),
    'upernet_parcnetv2_t': (0.3, 1e-4, 0.02, 0.9, 'stage_wise', 6),
    'upernet_parcnetv2_s': (0.3, 1e-4, 0.02, 0.9, 'stage_wise', 12),
    'upernet_parcnetv2_b': (0.5, 1e-4, 0.02, 0.9, 'stage_wise', 12),
    'imagenet_parcnetv2_xt': (0.1, 4e-3, 0.05, None, None, None),
    'imagenet_parcnetv2_t': (0.2, 4e-3, 0.05, None, None, None),
    'imagenet_parcnetv2_s': (0.3, 4e-3, 0.05, None, None, None),
    'imagenet_parcnetv2_b': (0.4, 4e-3, 0.05, None, None, None),
}


@pytest.mark.parametrize('name', ALL)
def test_config_recipe(name):
    cfg = load_cfg(name)
    arch = _arch(name)
    assert cfg.custom_imports == dict(imports=['mmparc'], allow_failed_imports=False)
    backbone = cfg.model.backbone
    assert backbone.type == 'mmparc.ParCNetV2'
    assert backbone.arch == arch
    assert backbone.kernel_mode == 'fixed'
    drop_path, lr, wd, rate, decay_type, num_layers = RECIPES[name]
    assert backbone.drop_path_rate == drop_path
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.lr == lr and opt.weight_decay == wd
    assert tuple(opt.betas) == (0.9, 0.999)
    if rate is not None:
        assert cfg.optim_wrapper.constructor == 'mmparc.LayerDecayOptimWrapperConstructor'
        assert cfg.optim_wrapper.paramwise_cfg == dict(
            decay_rate=rate, decay_type=decay_type, num_layers=num_layers)
        # Dense models fine-tune from ImageNet: the path is a variable on top.
        assert backbone.init_cfg == dict(type='Pretrained', checkpoint=cfg.pretrained)
        assert cfg.pretrained == f'checkpoints/parcnetv2_{arch}_in1k_backbone.pth'
        assert tuple(backbone.out_indices) == (0, 1, 2, 3)
        assert backbone.gap_before_final_norm is False

    if name in DET:
        assert cfg.model.neck.in_channels == DIMS[arch]
        assert cfg.optim_wrapper.type == 'mmparc.FallbackAmpOptimWrapper'  # mixed precision
        assert cfg.train_cfg.max_epochs == 36
        step = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR'][0]
        assert step.milestones == [27, 33] and step.by_epoch
        assert cfg.train_dataloader.batch_size == 2
        assert cfg.auto_scale_lr.base_batch_size == 16
        assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
        choice = [t for t in cfg.train_pipeline if t.type == 'RandomChoice'][0]
        assert len(choice.transforms) == 2 and len(choice.transforms[1]) == 3  # DETR crop
        if name.startswith('cascade'):
            heads = cfg.model.roi_head.bbox_head
            assert len(heads) == 3
            for head in heads:
                assert head.type == 'ConvFCBBoxHead'
                assert (head.num_shared_convs, head.num_shared_fcs) == (4, 1)
                assert head.reg_decoded_bbox is True
                assert head.loss_bbox == dict(type='GIoULoss', loss_weight=10.0)
                assert head.norm_cfg.type == 'SyncBN'
    elif name in SEG:
        assert cfg.model.decode_head.in_channels == DIMS[arch]
        assert cfg.model.auxiliary_head.in_channels == DIMS[arch][2]
        assert cfg.model.auxiliary_head.in_index == 2
        assert cfg.model.decode_head.num_classes == 150
        assert cfg.train_cfg.max_iters == 160000
        warmup, poly = cfg.param_scheduler
        assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 1e-6, 1500)
        assert (poly.type, poly.power, poly.eta_min, poly.by_epoch) == ('PolyLR', 1.0, 0.0, False)
        assert cfg.model.test_cfg == dict(mode='slide', crop_size=(512, 512), stride=(341, 341))
        assert cfg.train_dataloader.batch_size == 2
        types = [t.type for t in cfg.train_pipeline]
        assert {'RandomResize', 'RandomFlip', 'PhotoMetricDistortion'} <= set(types)
        assert cfg.train_pipeline[types.index('RandomResize')].ratio_range == (0.5, 2.0)
        assert cfg.tta_model.type == 'SegTTAModel'
        assert cfg.tta_pipeline[1].type == 'TestTimeAug'
        assert cfg.train_dataloader.dataset.data_root == 'data/ade/ADEChallengeData2016'
    else:
        assert backbone.gap_before_final_norm is True
        assert cfg.model.neck is None
        assert cfg.model.head.type == 'LinearClsHead'
        assert cfg.model.head.num_classes == 1000
        assert cfg.model.head.in_channels == DIMS[arch][-1]
        assert cfg.model.head.loss.label_smooth_val == 0.1
        assert [a['alpha'] for a in cfg.model.train_cfg.augments] == [0.8, 1.0]
        assert cfg.auto_scale_lr.base_batch_size == 4096
        assert cfg.train_dataloader.batch_size == 128
        assert cfg.train_cfg.max_epochs == 300
        warmup, cosine = cfg.param_scheduler
        assert warmup.end == 20 and math.isclose(warmup.start_factor * lr, 1e-6)
        assert cosine.type == 'CosineAnnealingLR' and cosine.eta_min == 1e-5
        types = [t.type for t in cfg.train_pipeline]
        assert {'RandomResizedCrop', 'RandAugment', 'RandomErasing'} <= set(types)
        erase = cfg.train_pipeline[types.index('RandomErasing')]
        assert erase.erase_prob == 0.25
        resize, crop = cfg.test_pipeline[1], cfg.test_pipeline[2]
        assert (resize.type, resize.scale, resize.interpolation) == ('ResizeEdge', 256, 'bicubic')
        assert (crop.type, crop.crop_size) == ('CenterCrop', 224)
        assert cfg.train_dataloader.dataset.data_root == 'data/imagenet'


# --------------------------------------------------------------- model sizes
@pytest.mark.parametrize('arch,millions', [('t', 55), ('s', 69), ('b', 87)])
def test_upernet_parameters_match_table6(arch, millions):
    """Paper Table 6: UperNet + ParCNetV2-T/S/B has 55M / 69M / 87M parameters."""
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = load_cfg(f'upernet_parcnetv2_{arch}')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count / 1e6 - millions) <= 0.5, f'{count / 1e6:.2f}M vs {millions}M'


def test_syncbn_heads_run_without_process_group():
    """Official configs use SyncBN in the heads; on CPU without a process group
    it must act as BatchNorm (training and eval) instead of failing."""
    from mmcv.cnn import ConvModule
    assert not (torch.distributed.is_available() and torch.distributed.is_initialized())
    module = ConvModule(4, 4, 3, padding=1, norm_cfg=dict(type='SyncBN', requires_grad=True))
    assert isinstance(module.norm, torch.nn.SyncBatchNorm)
    x = torch.randn(2, 4, 5, 5)
    module.train()
    out = module(x)
    out.sum().backward()
    assert torch.isfinite(out).all()
    module.eval()
    assert module(x).shape == x.shape


# ------------------------------------------------------- toy data and shrink
@pytest.fixture(scope='module')
def toy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('toy')
    toy_data.make_coco_instances(root / 'coco', 2, 2, (64, 80), seed=0, max_objects=3,
                                 crowd_prob=0.0)
    toy_data.make_ade20k(root / 'ade', 2, 2, (64, 80), seed=0)
    toy_data.make_imagenet(root / 'imagenet', 4, 4, (40, 40), seed=0)
    return root


@pytest.fixture(scope='module')
def fake_pretrained(tmp_path_factory):
    """``arch -> path`` of a synthetic backbone checkpoint (random weights and
    biases), in the format the configs expect for ``pretrained``.

    Parameters that start constant (norm weights, residual scales) are
    perturbed too, so that no parameter of the checkpoint equals a fresh
    initialisation and :func:`pretrained_mismatches` sees every one that
    was not loaded."""
    from mmparc import ParCNetV2
    root = tmp_path_factory.mktemp('pretrained')
    cache: Dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in cache:
            torch.manual_seed(0)
            backbone = ParCNetV2(arch=arch, out_indices=(0, 1, 2, 3),
                                 gap_before_final_norm=False)
            backbone.init_weights()
            with torch.no_grad():
                for name, param in backbone.named_parameters():
                    if name.endswith('bias'):
                        param.normal_(0, 0.02)
                    elif bool((param == param.flatten()[0]).all()):
                        param.add_(torch.randn_like(param), alpha=0.02)
            cache[arch] = root / f'parcnetv2_{arch}_backbone.pth'
            torch.save({'state_dict': backbone.state_dict()}, cache[arch])
        return cache[arch]

    return get


def _scaled(value, factor: float, minimum: int):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(minimum, int(round(value * factor)))
    return type(value)(max(minimum, int(round(v * factor))) for v in value)


def shrink_pipeline(obj: Any, factor: float, minimum: int = 32) -> Any:
    """Scale every resize scale / crop size in a (nested) pipeline."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in ('scale', 'crop_size') and value is not None:
                out[key] = _scaled(value, factor, minimum)
            elif key == 'scales':
                out[key] = [_scaled(v, factor, minimum) for v in value]
            else:
                out[key] = shrink_pipeline(value, factor, minimum)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(shrink_pipeline(v, factor, minimum) for v in obj)
    return obj


def _common_runtime(cfg, work_dir: Path) -> None:
    cfg.work_dir = str(work_dir)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    cfg.launcher = 'none'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False


def shrink_det(cfg, data_root: Path, work_dir: Path):
    _common_runtime(cfg, work_dir)
    classes = toy_data.COCO_CLASSES
    roi = cfg.model.roi_head
    for head in (roi.bbox_head if isinstance(roi.bbox_head, list) else [roi.bbox_head]):
        head.num_classes = len(classes)
    roi.mask_head.num_classes = len(classes)
    # Fewer proposals / sampled RoIs: the heads stay the same, CPU time drops.
    train_cfg = cfg.model.train_cfg
    train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    for rcnn in (train_cfg.rcnn if isinstance(train_cfg.rcnn, list) else [train_cfg.rcnn]):
        rcnn.sampler.num = 16
    cfg.model.test_cfg.rpn.update(nms_pre=100, max_per_img=20)
    # After one step the heads' BN running statistics are barely estimated and
    # every score may fall under 0.05; keep all detections so that the COCO
    # evaluation always has something to evaluate.
    rcnn_test = cfg.model.test_cfg.rcnn
    rcnn_test.score_thr = 0.0
    rcnn_test.max_per_img = 20
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader].dataset
        ds.data_root = f'{data_root}/'
        ds.metainfo = dict(classes=classes)
        ds.pipeline = shrink_pipeline(ds.pipeline, 1 / 12)
    cfg.train_dataloader.batch_size = 2
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = str(data_root / 'annotations/instances_val2017.json')
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    return cfg


def shrink_seg(cfg, data_root: Path, work_dir: Path):
    _common_runtime(cfg, work_dir)
    cfg.default_hooks.logger.log_metric_by_epoch = False
    crop = (64, 64)
    cfg.model.data_preprocessor.size = crop
    cfg.model.test_cfg = dict(mode='slide', crop_size=crop, stride=(43, 43))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader].dataset
        ds.data_root = str(data_root)
        ds.pipeline = shrink_pipeline(ds.pipeline, 1 / 8)
    cfg.tta_pipeline = shrink_pipeline(cfg.tta_pipeline, 1 / 8)
    cfg.train_dataloader.batch_size = 2  # the heads' BN needs > 1 value per channel
    cfg.train_cfg.max_iters = 1
    cfg.train_cfg.val_interval = 1
    return cfg


def shrink_cls(cfg, data_root: Path, work_dir: Path):
    _common_runtime(cfg, work_dir)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader].dataset
        ds.data_root = str(data_root)
        ds.pipeline = shrink_pipeline(ds.pipeline, 1 / 7)  # 224 -> 32, 256 -> 37
        cfg[loader].batch_size = 4
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    return cfg


def shrink(name: str, toy: Path, work_dir: Path, pretrained=None):
    """A config shrunk for CPU; ``pretrained`` replaces the checkpoint path
    (det/seg), ``None`` trains the backbone from scratch."""
    cfg = load_cfg(name)
    if name not in CLS:
        if pretrained is None:
            cfg.model.backbone.init_cfg = None
        else:
            cfg.model.backbone.init_cfg.checkpoint = str(pretrained)
    if name in DET:
        return shrink_det(cfg, toy / 'coco', work_dir)
    if name in SEG:
        return shrink_seg(cfg, toy / 'ade', work_dir)
    return shrink_cls(cfg, toy / 'imagenet', work_dir)


def pretrained_mismatches(backbone: torch.nn.Module, checkpoint, prefix: str = '') -> List[str]:
    """Names of ``backbone``'s parameters that are not the checkpoint's
    ``prefix + name`` entry (absent there, or another value)."""
    state = torch.load(str(checkpoint), map_location='cpu', weights_only=True)
    state = state.get('state_dict', state)
    params = dict(backbone.named_parameters())
    assert params
    return [name for name, param in params.items()
            if prefix + name not in state
            or not torch.equal(param.detach().cpu(), state[prefix + name])]


def _pretrained_of(cfg):
    """``(checkpoint, prefix)`` of the backbone's ``Pretrained`` init, or None."""
    init = cfg.model.backbone.get('init_cfg')
    if not init or init.get('type') != 'Pretrained':
        return None
    return init.checkpoint, init.get('prefix') or ''


def _catcher(pretrained=None):
    from mmengine.hooks import Hook

    class Catcher(Hook):
        priority = 'LOWEST'

        def __init__(self):
            self.losses: List[Dict[str, float]] = []
            self.metrics: Dict[str, float] = {}
            self.pretrained_mismatches = None

        def before_train(self, runner):
            # After the Runner's init_weights (and Pretrained loading), before
            # the first step changes anything.
            if pretrained is not None:
                backbone = getattr(runner.model, 'module', runner.model).backbone
                self.pretrained_mismatches = pretrained_mismatches(backbone, *pretrained)

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.losses.append({k: float(v) for k, v in (outputs or {}).items()})

        def after_val_epoch(self, runner, metrics=None):
            self.metrics.update(metrics or {})

    return Catcher()


def run_one_iteration(cfg):
    """Train for one iteration and evaluate once; returns (losses, metrics,
    runner, mismatches): ``mismatches`` lists the backbone parameters that
    were not the ``Pretrained`` checkpoint's when training started (None
    without a ``Pretrained`` init)."""
    from mmengine.runner import Runner
    pretrained = _pretrained_of(cfg)
    runner = Runner.from_cfg(cfg)
    catcher = _catcher(pretrained)
    runner.register_hook(catcher)
    runner.train()
    return catcher.losses, catcher.metrics, runner, catcher.pretrained_mismatches


EXPECTED_METRIC = {**{n: 'coco/bbox_mAP' for n in DET}, **{n: 'mIoU' for n in SEG},
                   **{n: 'accuracy/top1' for n in CLS}}


@pytest.fixture(scope='module')
def upernet_t_run(toy_root, fake_pretrained, tmp_path_factory):
    """The UperNet-T run, shared with the ``mim test`` test: it also saves a
    Runner checkpoint after its one iteration."""
    work = tmp_path_factory.mktemp('upernet_t')
    cfg = shrink('upernet_parcnetv2_t', toy_root, work, fake_pretrained('t'))
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=1,
                                        save_optimizer=False, save_param_scheduler=False)
    losses, metrics, runner, mismatches = run_one_iteration(cfg)
    return losses, metrics, runner, work / 'iter_1.pth', mismatches


@pytest.mark.slow
@pytest.mark.parametrize('name', ALL)
def test_config_trains_and_evaluates(name, toy_root, tmp_path, fake_pretrained, request):
    if name == 'upernet_parcnetv2_t':
        losses, metrics, runner, _, mismatches = request.getfixturevalue('upernet_t_run')
    else:
        pretrained = None if name in CLS else fake_pretrained(_arch(name))
        cfg = shrink(name, toy_root, tmp_path / 'work', pretrained)
        losses, metrics, runner, mismatches = run_one_iteration(cfg)
    if name in CLS:
        assert mismatches is None  # trained from scratch: no Pretrained init
    else:
        # The configs' Pretrained init loaded the whole backbone: when training
        # started, every backbone parameter was the checkpoint's (mmengine
        # loads with strict=False, so a wrong prefix or key layout would only warn).
        assert mismatches == [], f'not loaded from the checkpoint: {mismatches[:5]}'
    assert len(losses) == 1, losses
    assert 'loss' in losses[0] and math.isfinite(losses[0]['loss']), losses
    bad = [n for n, p in runner.model.named_parameters() if not torch.isfinite(p).all()]
    assert not bad, f'non-finite parameters after one step: {bad[:5]}'
    assert EXPECTED_METRIC[name] in metrics, metrics
    if name in DET:
        assert 'coco/segm_mAP' in metrics
    model = runner.model
    assert type(model.backbone).__name__ == 'ParCNetV2'
    if name not in CLS:
        # The layer-decay constructor made groups with decayed lr for the stem.
        groups = runner.optim_wrapper.optimizer.param_groups
        scales = [g.get('lr_scale') for g in groups]
        assert min(scales) < 1.0 and max(scales) == pytest.approx(1.0), scales


def test_pretrained_check_catches_a_wrong_prefix(fake_pretrained, tmp_path):
    """What the check in ``test_config_trains_and_evaluates`` would see if the
    weights did not arrive: a classifier checkpoint (``backbone.*`` keys)
    given to a det config without ``prefix='backbone.'`` loads nothing, and
    mmengine's ``Pretrained`` (``strict=False``) only warns; with the prefix
    it loads everything."""
    from mmengine.registry import MODELS
    state = torch.load(str(fake_pretrained('t')), map_location='cpu', weights_only=True)
    classifier = tmp_path / 'classifier.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in state['state_dict'].items()}},
               classifier)
    backbone_cfg = load_cfg('mask_rcnn_parcnetv2_t').model.backbone
    backbone_cfg.init_cfg.checkpoint = str(classifier)
    mismatches = {}
    for prefix in (None, 'backbone.'):
        if prefix is not None:
            backbone_cfg.init_cfg.prefix = prefix
        backbone = MODELS.build(backbone_cfg)
        backbone.init_weights()
        mismatches[prefix] = pretrained_mismatches(backbone, classifier, 'backbone.')
    names = [n for n, _ in backbone.named_parameters()]
    assert mismatches[None] == names  # nothing arrived, and every parameter shows it
    assert mismatches['backbone.'] == []


@pytest.mark.slow
def test_from_scratch_dense_training_stays_finite(toy_root, tmp_path):
    """Mask R-CNN from scratch (``init_cfg=None``): one step must leave every
    parameter finite."""
    from mmengine.runner import Runner
    cfg = shrink('mask_rcnn_parcnetv2_t', toy_root, tmp_path / 'work', pretrained=None)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    bad = [n for n, p in runner.model.named_parameters() if not torch.isfinite(p).all()]
    assert not bad, f'non-finite parameters after one step: {bad[:5]}'


# ------------------------------------------------------------------- via mim
def _link_configs(cwd: Path) -> None:
    (cwd / 'configs').symlink_to(CONFIGS, target_is_directory=True)


def _run(cmd: List[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS=str(THREADS),
               MKL_NUM_THREADS=str(THREADS))
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}')
    return proc


def assert_loaded_exactly(log: str) -> None:
    """No checkpoint load in the run's log reported missing or unexpected keys
    (mmengine's ``load_state_dict`` with ``strict=False`` prints them and goes on)."""
    start = log.find('do not match exactly')
    assert start < 0, log[max(0, start - 200):start + 2000]


@pytest.mark.slow
def test_mim_train_cascade_t(tmp_path, toy_root, fake_pretrained):
    """`mim train mmdet configs/cascade_parcnetv2_t.py` with COCO at data/coco/
    (and, see the module docstring, a synthetic ImageNet backbone checkpoint
    where the config expects the real one)."""
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'coco').symlink_to(toy_root / 'coco')
    _link_configs(tmp_path)
    small = '[(40,111),(56,111),(67,111)]'
    pipe = 'train_dataloader.dataset.pipeline.3.transforms'
    classes = '(' + ','.join(toy_data.COCO_CLASSES) + ')'
    options = [
        f'model.backbone.init_cfg.checkpoint={fake_pretrained("t")}',
        *[f'model.roi_head.bbox_head.{i}.num_classes=3' for i in range(3)],
        'model.roi_head.mask_head.num_classes=3',
        *[f'model.train_cfg.rcnn.{i}.sampler.num=16' for i in range(3)],
        'model.train_cfg.rpn_proposal.max_per_img=100',
        'model.test_cfg.rpn.max_per_img=20',
        'model.test_cfg.rcnn.score_thr=0.0', 'model.test_cfg.rcnn.max_per_img=20',
        f'{pipe}.0.0.scales={small}',
        f'{pipe}.1.0.scales={small}',
        f'{pipe}.1.1.crop_size=(32,50)',
        f'{pipe}.1.2.scales={small}',
        'val_dataloader.dataset.pipeline.1.scale=(112,67)',
        'test_dataloader.dataset.pipeline.1.scale=(112,67)',
        f'train_dataloader.dataset.metainfo.classes={classes}',
        f'val_dataloader.dataset.metainfo.classes={classes}',
        f'test_dataloader.dataset.metainfo.classes={classes}',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
        'train_cfg.max_epochs=1',
        'default_hooks.checkpoint=None',
        'default_hooks.logger.interval=1',
    ]
    proc = _run([str(MIM), 'train', 'mmdet', 'configs/cascade_parcnetv2_t.py',
                 '--work-dir', str(tmp_path / 'work'), '--cfg-options', *options],
                cwd=tmp_path, timeout=900)
    log = proc.stdout + proc.stderr
    assert 'Mixed precision needs a GPU' in log or torch.cuda.is_available()
    assert 'coco/bbox_mAP' in log and 'coco/segm_mAP' in log, log[-3000:]
    assert_loaded_exactly(log)


@pytest.mark.slow
def test_mim_test_upernet_tta(tmp_path, toy_root, upernet_t_run):
    """`mim test mmseg configs/upernet_parcnetv2_t.py --checkpoint CKPT --tta`
    on ADE20K-format data at data/ade/ADEChallengeData2016, with CKPT the
    Runner checkpoint of the one-iteration UperNet-T run (so torch's
    weights_only loading of its message hub is exercised too)."""
    ckpt = upernet_t_run[3]
    assert ckpt.is_file()
    (tmp_path / 'data' / 'ade').mkdir(parents=True)
    (tmp_path / 'data' / 'ade' / 'ADEChallengeData2016').symlink_to(toy_root / 'ade')
    _link_configs(tmp_path)
    # Views of 32x40 .. 112x140 pixels; 96-pixel windows keep them to 1-4 each.
    options = [
        'model.test_cfg.crop_size=(96,96)', 'model.test_cfg.stride=(64,64)',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
        *[f'tta_pipeline.1.transforms.0.{i}.scale=({int(256 * r)},{int(64 * r)})'
          for i, r in enumerate(load_cfg('upernet_parcnetv2_t').tta_img_ratios)],
    ]
    proc = _run([str(MIM), 'test', 'mmseg', 'configs/upernet_parcnetv2_t.py', '--checkpoint',
                 str(ckpt), '--tta', '--work-dir', str(tmp_path / 'test'),
                 '--cfg-options', *options], cwd=tmp_path, timeout=600)
    log = proc.stdout + proc.stderr
    assert 'mIoU' in log, log[-3000:]
    # The Runner checkpoint went into the model under test, every key of it: the
    # Runner loads with strict=False and only prints a mismatch.
    assert f'Load checkpoint from {ckpt}' in log, log[-3000:]
    assert_loaded_exactly(log)
    # The Runner dumps the config it ran: the TTA model over the real one,
    # fed the multi-scale + flip pipeline.
    from mmengine.config import Config
    ran = Config.fromfile(str(tmp_path / 'test' / 'upernet_parcnetv2_t.py'))
    assert ran.model.type == 'SegTTAModel'
    assert ran.model.module.backbone.type == 'mmparc.ParCNetV2'
    tta = ran.test_dataloader.dataset.pipeline[1]
    assert tta.type == 'TestTimeAug' and len(tta.transforms[0]) == 6
    assert [t.type for t in tta.transforms[1]] == ['ResizeToMultiple']  # as the official
    assert len(tta.transforms[2]) == 2  # no flip, flip
