"""The docs' "in your own config" snippets on mmdet's and mmseg's own bases.

Each user config below is written exactly as the docs show it (the
texts are their code blocks), inherits an upstream config through
``mmdet::`` / ``mmseg::``, and must build and run one forward pass on a tiny
input.  Two fixes make that work, and the negative tests pin down why each
is needed: ``_delete_=True`` drops the base's ResNet arguments (``depth``,
``norm_cfg``, ...), and mmseg's bases set ``model.pretrained`` (an ImageNet
ResNet), which EncoderDecoder passes to the backbone unless it is ``None``.
"""
from pathlib import Path
from typing import Dict

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmparc  # noqa: F401  (registers ParCNetV2)

# ---- the snippets of README.md and docs/get_started.md (keep in step with
# "In your own config")
MMDET_SNIPPET = '''\
custom_imports = dict(imports=['mmparc'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,  # drop the base's ResNet arguments (depth, norm_cfg, ...)
        type='mmparc.ParCNetV2', arch='t', kernel_mode='fixed',  # or 'global'
        out_indices=(0, 1, 2, 3), gap_before_final_norm=False, drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/parcnetv2_t_in1k_backbone.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
'''
MMSEG_SNIPPET = '''\
custom_imports = dict(imports=['mmparc'], allow_failed_imports=False)
model = dict(
    pretrained=None,  # the base's ImageNet ResNet; the backbone's init_cfg loads ours
    backbone=dict(
        _delete_=True,  # drop the base's ResNet arguments (depth, norm_cfg, ...)
        type='mmparc.ParCNetV2', arch='t', kernel_mode='fixed',  # or 'global'
        out_indices=(0, 1, 2, 3), gap_before_final_norm=False, drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/parcnetv2_t_in1k_backbone.pth')),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
'''
BASES: Dict[str, str] = {
    'mask_rcnn': 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    'cascade': 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
    'upernet': 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py',
}
SNIPPETS = {'mask_rcnn': MMDET_SNIPPET, 'cascade': MMDET_SNIPPET, 'upernet': MMSEG_SNIPPET}
SCOPES = {'mask_rcnn': 'mmdet', 'cascade': 'mmdet', 'upernet': 'mmseg'}


def _user_config(tmp_path: Path, name: str, snippet: str) -> Config:
    path = tmp_path / f'my_{name}.py'
    path.write_text(f"_base_ = ['{BASES[name]}']\n\n{snippet}")
    return Config.fromfile(str(path))


def _build(cfg: Config, scope: str) -> torch.nn.Module:
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    # Built as a Runner builds it; init_weights (which would read the
    # Pretrained file) is not called.
    return MODELS.build(cfg.model)


def _forward(model: torch.nn.Module, scope: str) -> None:
    """One inference through the config's data preprocessor on a 64x96 image."""
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
    meta = dict(img_shape=(64, 96), ori_shape=(64, 96), scale_factor=(1.0, 1.0))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=meta)
    else:
        from mmseg.structures import SegDataSample
        sample = SegDataSample(metainfo=meta)
        model.data_preprocessor.size = None  # the base pads to its 512 crop
        model.data_preprocessor.size_divisor = 32
    model.eval()
    with torch.no_grad():
        results = model.test_step(dict(inputs=[image], data_samples=[sample]))
    assert len(results) == 1
    if scope == 'mmdet':
        assert hasattr(results[0], 'pred_instances')
        assert 'masks' in results[0].pred_instances
    else:
        assert tuple(results[0].pred_sem_seg.data.shape[-2:]) == (64, 96)


@pytest.mark.parametrize('name', list(BASES))
def test_readme_snippet_on_upstream_base(tmp_path, name):
    cfg = _user_config(tmp_path, name, SNIPPETS[name])
    backbone = cfg.model.backbone
    assert 'depth' not in backbone and backbone.type == 'mmparc.ParCNetV2'
    model = _build(cfg, SCOPES[name])
    assert type(model.backbone).__name__ == 'ParCNetV2'
    assert model.backbone.init_cfg['checkpoint'] == 'checkpoints/parcnetv2_t_in1k_backbone.pth'
    _forward(model, SCOPES[name])


@pytest.mark.parametrize('name', ['mask_rcnn', 'upernet'])
def test_snippet_without_delete_fails(tmp_path, name):
    """Without ``_delete_=True`` the base's ResNet keys reach ParCNetV2."""
    snippet = SNIPPETS[name].replace(
        "        _delete_=True,  # drop the base's ResNet arguments (depth, norm_cfg, ...)\n", '')
    assert snippet != SNIPPETS[name]
    cfg = _user_config(tmp_path, name, snippet)
    with pytest.raises(TypeError, match="unexpected keyword argument 'depth'"):
        _build(cfg, SCOPES[name])


def test_mmseg_snippet_without_pretrained_none_fails(tmp_path):
    """mmseg's base sets ``model.pretrained``; EncoderDecoder hands it to the backbone."""
    snippet = MMSEG_SNIPPET.replace(
        "    pretrained=None,  # the base's ImageNet ResNet; the backbone's init_cfg loads ours\n",
        '')
    assert snippet != MMSEG_SNIPPET
    cfg = _user_config(tmp_path, 'upernet', snippet)
    with pytest.raises(TypeError, match="unexpected keyword argument 'pretrained'"):
        _build(cfg, 'mmseg')


# ------------------------------------------------------- data roots: one variable
ROOT = Path(__file__).resolve().parents[1]
DATA_ROOTS = {  # config -> (environment variable, default root)
    'mask_rcnn_parcnetv2_t': ('COCO_ROOT', 'data/coco/'),
    'cascade_parcnetv2_b': ('COCO_ROOT', 'data/coco/'),
    'upernet_parcnetv2_s': ('ADE20K_ROOT', 'data/ade/ADEChallengeData2016'),
    'imagenet_parcnetv2_xt': ('IMAGENET_ROOT', 'data/imagenet'),
}


def _roots(cfg: Config) -> Dict[str, str]:
    """Every path the config reads data from."""
    out = {split: cfg[split].dataset.data_root
           for split in ('train_dataloader', 'val_dataloader', 'test_dataloader')}
    for split in ('val_evaluator', 'test_evaluator'):
        if 'ann_file' in cfg[split]:
            out[split] = cfg[split].ann_file
    return out


@pytest.mark.parametrize('name', list(DATA_ROOTS))
def test_data_root_is_one_environment_variable(name, monkeypatch):
    """Unset: the documented default everywhere; set: the new root everywhere
    (loaders and, for COCO, the evaluators' annotation file)."""
    variable, default = DATA_ROOTS[name]
    for other in {v for v, _ in DATA_ROOTS.values()}:
        monkeypatch.delenv(other, raising=False)
    path = str(ROOT / 'configs' / f'{name}.py')
    for root, expected in ((None, default), ('/datasets/elsewhere', '/datasets/elsewhere')):
        if root is not None:
            monkeypatch.setenv(variable, root)
        roots = _roots(Config.fromfile(path))
        assert len(roots) == (5 if variable == 'COCO_ROOT' else 3), roots
        for key, value in roots.items():
            assert value.rstrip('/') == expected.rstrip('/') or value == (
                f"{expected.rstrip('/')}/annotations/instances_val2017.json"), (key, value)
