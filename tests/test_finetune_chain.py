"""Pretrain, then fine-tune: an mmpretrain Runner checkpoint becomes a det/seg backbone.

The chain of docs/checkpoints.md: train a classifier with ``configs/imagenet_parcnetv2_*.py``,
then point a det/seg config's backbone at its checkpoint with
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.  The
classifier here is the ImageNet config's model at a tiny custom arch, trained
for one iteration by a Runner (so its checkpoint carries the message hub's
HistoryBuffers and numpy values that torch's weights-only loading refuses on
its own); the det/seg models are those of the Mask R-CNN and UperNet configs
at the same arch.  Without the checkpoint, the configs say how to get one.
"""
from pathlib import Path
from typing import Dict, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmparc  # noqa: F401
from mmparc.checkpoint import load_checkpoint_file

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
DIMS = [8, 16, 24, 32]
ARCH = dict(depths=[1, 1, 1, 1], dims=DIMS)


@pytest.fixture(scope='module')
def classifier_run(tmp_path_factory) -> Tuple[Path, Dict[str, torch.Tensor]]:
    """One iteration of the ImageNet config's classifier, saved by the Runner; and its
    weights as the Runner held them in memory."""
    from mmengine.runner import Runner
    from mmpretrain.structures import DataSample
    work = tmp_path_factory.mktemp('pretrain')
    cfg = Config.fromfile(str(CONFIGS / 'imagenet_parcnetv2_xt.py'))
    cfg.model.backbone.arch = ARCH
    cfg.model.head.in_channels = DIMS[-1]
    cfg.model.head.num_classes = 4
    # as mmpretrain's train.py: the config's top-level data preprocessor
    cfg.model.data_preprocessor = dict(cfg.data_preprocessor, num_classes=4)
    gen = torch.Generator().manual_seed(0)
    data = [dict(inputs=torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=gen),
                 data_samples=DataSample().set_gt_label(i % 4)) for i in range(4)]
    runner = Runner(
        model=cfg.model, work_dir=str(work), default_scope='mmpretrain',
        train_dataloader=dict(dataset=data, batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=1),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        log_level='WARNING')
    runner.train()
    path = work / 'iter_1.pth'
    assert path.is_file()
    weights = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}
    return path, weights


@pytest.fixture(scope='module')
def classifier_checkpoint(classifier_run) -> Path:
    return classifier_run[0]


def _body(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k[len('backbone.'):]: v for k, v in state.items()
            if k.startswith(('backbone.downsample_layers.', 'backbone.stages.'))}


def test_classifier_checkpoint_is_a_runner_checkpoint(classifier_checkpoint):
    from mmengine.logging import HistoryBuffer
    with pytest.raises(Exception):
        torch.load(classifier_checkpoint, map_location='cpu', weights_only=True)  # numpy
    checkpoint = load_checkpoint_file(classifier_checkpoint)
    buffers = checkpoint['message_hub']['log_scalars']
    assert buffers and all(type(b) is HistoryBuffer for b in buffers.values())
    assert _body(checkpoint['state_dict'])


@pytest.mark.parametrize('config, scope', [('mask_rcnn_parcnetv2_t.py', 'mmdet'),
                                           ('upernet_parcnetv2_t.py', 'mmseg')])
def test_runner_classifier_checkpoint_initialises_dense_backbone(classifier_run, config, scope):
    classifier_checkpoint, trained = classifier_run
    cfg = Config.fromfile(str(CONFIGS / config))
    backbone = cfg.model.backbone
    backbone.arch = ARCH
    # what docs/checkpoints.md says to do with an mmpretrain-trained classifier
    backbone.init_cfg = dict(type='Pretrained', checkpoint=str(classifier_checkpoint),
                             prefix='backbone.')
    if scope == 'mmdet':
        cfg.model.neck.in_channels = DIMS
    else:
        cfg.model.decode_head.in_channels = DIMS
        cfg.model.decode_head.channels = 16
        cfg.model.auxiliary_head.in_channels = DIMS[2]
        cfg.model.auxiliary_head.channels = 16
    init_default_scope(scope)
    from mmengine.registry import MODELS
    model = MODELS.build(cfg.model)
    model.init_weights()
    expected = _body(trained)  # the trained classifier's weights, not the loader's output
    params = dict(model.backbone.named_parameters())
    assert set(expected) <= set(params) | {k for k, _ in model.backbone.named_buffers()}
    different = [k for k, v in expected.items() if k in params
                 and not torch.equal(params[k].detach(), v)]
    assert not different, different[:5]
    loaded = [k for k in expected if k in params]
    assert len(loaded) == len([k for k in params if k.startswith(('downsample_layers.',
                                                                  'stages.'))])


@pytest.mark.parametrize('config', ['cascade_parcnetv2_t.py', 'mask_rcnn_parcnetv2_t.py',
                                    'upernet_parcnetv2_t.py'])
def test_missing_imagenet_checkpoint_says_how_to_get_it(config, tmp_path, monkeypatch):
    """``mim train`` without ``checkpoints/parcnetv2_t_in1k_backbone.pth``."""
    cfg = Config.fromfile(str(CONFIGS / config))
    monkeypatch.chdir(tmp_path)
    backbone_cfg = dict(cfg.model.backbone, arch=ARCH)
    from mmparc.registry import MODELS
    backbone = MODELS.build(backbone_cfg)
    with pytest.raises(FileNotFoundError) as info:
        backbone.init_weights()
    message = str(info.value)
    assert '\n' not in message
    for fragment in (cfg.pretrained, 'tools/model_converters/convert_official.py',
                     'model.backbone.init_cfg.prefix=backbone.',
                     '--cfg-options model.backbone.init_cfg=None'):
        assert fragment in message, (fragment, message)
