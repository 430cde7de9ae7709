"""Layer-wise lr decay: the full (parameter -> lr scale, weight decay) table.

With ``decay_rate=2`` every layer id has its own power of two, so a wrong id
anywhere shows up as a wrong scale.  The expected ids are written out below
from the official release's rule (ParCNetV2 object_detection/mmcv_custom/
layer_decay_optimizer_constructor.py), not computed by the backbone.
"""
from typing import Dict, List, Optional, Tuple

import pytest
import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmparc  # noqa: F401  (registers ParCNetV2 and the constructor)
from mmparc.engine import LayerDecayOptimWrapperConstructor
from mmparc.engine import layer_decay as layer_decay_module
from mmparc.models import ParCNetV2

LR = 1e-3
WD = 0.05
DIMS = {'xt': [48, 96, 192, 320], 't': [64, 128, 320, 512],
        's': [64, 128, 320, 512], 'b': [96, 192, 384, 576]}
DEPTHS = {'xt': [3, 3, 9, 2], 't': [3, 3, 12, 3], 's': [3, 9, 24, 3], 'b': [3, 9, 24, 3]}


def _threes(first: int, last: int) -> List[int]:
    """Ids ``first..last``, each shared by three consecutive blocks."""
    return [i for i in range(first, last + 1) for _ in range(3)]


# Layer-wise ids written out by hand: (downsample_layers.i, stages.i.j).
# The paper's models: t has 7 layers (21 blocks / 3), s and b have 13 (39 / 3).
_S_B_IDS = ([0, 2, 5, 13], [[1, 1, 1], _threes(2, 4), _threes(5, 12), [13, 13, 13]])
LAYER_IDS: Dict[str, Tuple[List[int], List[List[int]]]] = {
    't': ([0, 2, 3, 7], [[1, 1, 1], [2, 2, 2], _threes(3, 6), [7, 7, 7]]),
    's': _S_B_IDS,
    'b': _S_B_IDS,
    # xt (not in the official det/seg release): the same rule gives 6 layers.
    'xt': ([0, 2, 3, 6], [[1, 1, 1], [2, 2, 2], _threes(3, 5), [6, 6]]),
}
PAPER_NUM_LAYERS = {'t': 7, 's': 13, 'b': 13, 'xt': 6}


def official_layer_wise_id(rel_name: str, depths: List[int]) -> Optional[int]:
    """The official rule, restated: blocks are numbered in threes per stage.

    The stem is layer 0.  A stage starts at one plus a third (rounded down)
    of the blocks before it; its downsampling shares that id and its j-th
    block adds j // 3.  ``None`` for anything else (it takes the top id).
    """
    kind, *rest = rel_name.split('.')
    if kind not in ('downsample_layers', 'stages'):
        return None
    stage = int(rest[0])
    blocks_before = sum(depths[:stage])
    if kind == 'downsample_layers':
        return 0 if stage == 0 else blocks_before // 3 + 1
    block = int(rest[1])
    return (blocks_before // 3 if stage else 0) + 1 + block // 3


@pytest.mark.parametrize('arch', ['t', 's', 'b', 'xt'])
def test_hand_written_ids_follow_the_official_rule(arch: str) -> None:
    downsample_ids, block_ids = LAYER_IDS[arch]
    depths = DEPTHS[arch]
    assert [len(ids) for ids in block_ids] == depths
    for i, expected in enumerate(downsample_ids):
        assert official_layer_wise_id(f'downsample_layers.{i}.conv.weight', depths) == expected
    for i, ids in enumerate(block_ids):
        for j, expected in enumerate(ids):
            assert official_layer_wise_id(f'stages.{i}.{j}.norm1.weight', depths) == expected
    if arch != 'xt':  # the official code asserts sum(depths) // 3 == num_layers
        assert sum(depths) // 3 == PAPER_NUM_LAYERS[arch] == block_ids[-1][-1]


def expected_entry(name: str, ndim: int, arch: str, decay_type: str, num_layers: int,
                   prefix: str = 'backbone.') -> Tuple[float, float, int]:
    """(lr scale, weight decay, layer id) of one trainable parameter, decay_rate=2."""
    top = num_layers + 1
    layer_id = top
    if name.startswith(prefix):
        kind, *rest = name[len(prefix):].split('.')
        downsample_ids, block_ids = LAYER_IDS[arch]
        if kind == 'downsample_layers':
            layer_id = 0 if decay_type == 'stage_wise' else downsample_ids[int(rest[0])]
        elif kind == 'stages':
            stage, block = int(rest[0]), int(rest[1])
            layer_id = stage + 1 if decay_type == 'stage_wise' else block_ids[stage][block]
    # ids 0..num_layers+1; the top id trains at the base lr, each id below at half.
    scale = 2.0**(top - layer_id)
    no_decay = ndim <= 1 or name.endswith('.bias')
    return scale, 0.0 if no_decay else WD, layer_id


# ------------------------------------------------------------------ models
def _backbone(arch: str, out_indices, gap: bool, frozen_stages: int = 0) -> dict:
    return dict(type='mmparc.ParCNetV2', arch=arch, out_indices=out_indices,
                gap_before_final_norm=gap, frozen_stages=frozen_stages)


def build_detector(arch: str, frozen_stages: int = 0) -> nn.Module:
    import mmdet.models  # noqa: F401
    from mmdet.registry import MODELS
    roi = dict(type='SingleRoIExtractor', out_channels=256, featmap_strides=[4, 8, 16, 32])
    cfg = dict(
        type='MaskRCNN',
        backbone=_backbone(arch, (0, 1, 2, 3), False, frozen_stages),
        neck=dict(type='FPN', in_channels=DIMS[arch], out_channels=256, num_outs=5),
        rpn_head=dict(
            type='RPNHead', in_channels=256, feat_channels=256,
            anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                            target_stds=[1.0] * 4),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        roi_head=dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(
                roi, roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0)),
            bbox_head=dict(
                type='Shared2FCBBoxHead', in_channels=256, fc_out_channels=1024,
                roi_feat_size=7, num_classes=80,
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                                target_stds=[0.1, 0.1, 0.2, 0.2]),
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
            mask_roi_extractor=dict(
                roi, roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0)),
            mask_head=dict(
                type='FCNMaskHead', num_convs=4, in_channels=256, conv_out_channels=256,
                num_classes=80,
                loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
        train_cfg=None,
        test_cfg=dict(
            rpn=dict(nms_pre=1000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7),
                     min_bbox_size=0),
            rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=100, mask_thr_binary=0.5)))
    return MODELS.build(ConfigDict(cfg))


def build_segmentor(arch: str) -> nn.Module:
    import mmseg.models  # noqa: F401
    from mmseg.registry import MODELS
    norm_cfg = dict(type='BN', requires_grad=True)
    loss = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)
    cfg = dict(
        type='EncoderDecoder',
        backbone=_backbone(arch, (0, 1, 2, 3), False),
        decode_head=dict(type='UPerHead', in_channels=DIMS[arch], in_index=[0, 1, 2, 3],
                         pool_scales=(1, 2, 3, 6), channels=128, dropout_ratio=0.1,
                         num_classes=19, norm_cfg=norm_cfg, align_corners=False,
                         loss_decode=loss),
        auxiliary_head=dict(type='FCNHead', in_channels=DIMS[arch][2], in_index=2,
                            channels=64, num_convs=1, concat_input=False, dropout_ratio=0.1,
                            num_classes=19, norm_cfg=norm_cfg, align_corners=False,
                            loss_decode=dict(loss, loss_weight=0.4)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))
    return MODELS.build(ConfigDict(cfg))


def build_classifier(arch: str) -> nn.Module:
    import mmpretrain.models  # noqa: F401
    from mmpretrain.registry import MODELS
    cfg = dict(type='ImageClassifier', backbone=_backbone(arch, -1, True),
               head=dict(type='LinearClsHead', num_classes=10, in_channels=DIMS[arch][-1],
                         loss=dict(type='CrossEntropyLoss')))
    return MODELS.build(ConfigDict(cfg))


BUILDERS = {'detector': build_detector, 'segmentor': build_segmentor,
            'classifier': build_classifier}
_last_model: Dict[Tuple[str, str], nn.Module] = {}


def cached_model(kind: str, arch: str) -> nn.Module:
    """The model for (kind, arch); only the latest one is kept (s/b are big)."""
    if (kind, arch) not in _last_model:
        _last_model.clear()
        _last_model[(kind, arch)] = BUILDERS[kind](arch)
    return _last_model[(kind, arch)]


class TinyModel(nn.Module):
    """A backbone and a head: enough for config and registry checks."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = ParCNetV2(arch=dict(depths=[1, 2], dims=[8, 16]))
        self.head = nn.Linear(16, 3)


class DDPStyleWrapper(nn.Module):
    """What distributed training hands the constructor: the model in ``.module``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


def optim_cfg(wrapper_type: str = 'OptimWrapper',
              constructor: str = 'mmparc.LayerDecayOptimWrapperConstructor',
              **paramwise) -> dict:
    return dict(type=wrapper_type, optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
                constructor=constructor, paramwise_cfg=paramwise)


def group_table(optim_wrapper) -> Dict[str, Tuple[float, float, int]]:
    """name -> (lr scale, weight decay, layer id) from the built optimizer."""
    table = {}
    for group in optim_wrapper.optimizer.param_groups:
        assert len(group['params']) == len(group['param_names'])
        assert group['lr'] == pytest.approx(LR * group['lr_scale'], rel=1e-12)
        for name in group['param_names']:
            assert name not in table, f'{name} in two groups'
            table[name] = (group['lr_scale'], group['weight_decay'], group['layer_id'])
    return table


def check_table(model: nn.Module, optim_wrapper, arch: str, decay_type: str,
                num_layers: int) -> Dict[str, Tuple[float, float, int]]:
    table = group_table(optim_wrapper)
    params = dict(model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert set(table) == trainable
    by_id = {id(p) for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    assert by_id == {id(params[n]) for n in trainable}
    expected = {n: expected_entry(n, params[n].ndim, arch, decay_type, num_layers)
                for n in trainable}
    wrong = {n: (table[n], expected[n]) for n in trainable if table[n] != expected[n]}
    assert not wrong, f'{len(wrong)} wrong entries, e.g. {sorted(wrong.items())[:5]}'
    # Grouped per (layer id, decay / no decay): few groups, not one per tensor.
    assert len(optim_wrapper.optimizer.param_groups) <= 2 * (num_layers + 2)
    return table


# ------------------------------------------------------------ full tables
@pytest.mark.parametrize('arch', ['t', 's', 'b', 'xt'])
@pytest.mark.parametrize('kind', ['detector', 'segmentor', 'classifier'])
def test_full_table(kind: str, arch: str) -> None:
    model = cached_model(kind, arch)
    # layer_wise with the paper's num_layers, stage_wise as ConvNeXt configs do (12).
    for decay_type, num_layers in (('layer_wise', PAPER_NUM_LAYERS[arch]),
                                   ('stage_wise', 12)):
        wrapper = build_optim_wrapper(model, optim_cfg(
            decay_rate=2, decay_type=decay_type, num_layers=num_layers))
        table = check_table(model, wrapper, arch, decay_type, num_layers)
        # Heads and necks train at the base lr; the stem at the smallest one.
        assert table['backbone.downsample_layers.0.conv.weight'][0] == 2.0**(num_layers + 1)
        assert all(v[0] == 1.0 for n, v in table.items() if not n.startswith('backbone.'))
    # num_layers omitted: derived from the backbone (7/13/13, xt 6; stage-wise 4).
    wrapper = build_optim_wrapper(model, optim_cfg(decay_rate=2))
    table = check_table(model, wrapper, arch, 'layer_wise', PAPER_NUM_LAYERS[arch])
    block_ids = [v[2] for n, v in table.items()
                 if n.startswith(('backbone.stages.', 'backbone.downsample_layers.'))]
    # The deepest block is layer num_layers: no block shares the top id with the heads.
    assert max(block_ids) == PAPER_NUM_LAYERS[arch]
    if kind == 'classifier':
        wrapper = build_optim_wrapper(model, optim_cfg(decay_rate=2, decay_type='stage_wise'))
        check_table(model, wrapper, arch, 'stage_wise', 4)


# xt at a realistic rate, 0.9, layer_wise (6 layers: ids 0..7, scale 0.9 ** (7 - id)),
# the values written out: parameter -> lr scale.
XT_SCALES_AT_0_9 = {
    'backbone.downsample_layers.0.conv.weight': 0.4782969,  # id 0
    'backbone.downsample_layers.0.post_norm.weight': 0.4782969,
    'backbone.stages.0.2.token_mixer.dwconv1.conv_h.weight': 0.531441,  # id 1
    'backbone.downsample_layers.1.conv.bias': 0.59049,  # id 2
    'backbone.stages.1.0.norm1.weight': 0.59049,
    'backbone.stages.2.2.mlp.fc1.weight': 0.6561,  # id 3
    'backbone.stages.2.3.mlp.fc1.bias': 0.729,  # id 4
    'backbone.stages.2.8.norm2.weight': 0.81,  # id 5
    'backbone.downsample_layers.3.pre_norm.weight': 0.9,  # id 6
    'backbone.stages.3.1.res_scale2.scale': 0.9,
    'backbone.norm3.bias': 1.0,  # id 7, as the head
    'head.fc.weight': 1.0,
}


def test_lr_by_value_at_a_realistic_rate() -> None:
    """decay_rate=0.9: each group's lr is the base lr times the scale written out
    above, and one AdamW step moves each undecayed parameter by that lr (Adam's
    first step is lr * sign(grad) wherever the gradient is not tiny)."""
    torch.manual_seed(0)
    model = build_classifier('xt')
    wrapper = build_optim_wrapper(model, optim_cfg(decay_rate=0.9))
    lr_of = {name: group['lr'] for group in wrapper.optimizer.param_groups
             for name in group['param_names']}
    for name, scale in XT_SCALES_AT_0_9.items():
        assert lr_of[name] == pytest.approx(LR * scale, rel=1e-6), name
    params = dict(model.named_parameters())
    before = {name: params[name].detach().clone() for name in XT_SCALES_AT_0_9}
    model.train()
    from mmpretrain.structures import DataSample
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
                        for _ in range(2)],
                data_samples=[DataSample().set_gt_label(c) for c in (1, 7)])
    model.train_step(data, wrapper)
    for name, scale in XT_SCALES_AT_0_9.items():
        if params[name].ndim <= 1:  # no weight decay: the step is the lr alone
            step = (params[name].detach() - before[name]).abs().max().item()
            assert step == pytest.approx(LR * scale, rel=1e-3), name


def test_frozen_stages_drop_out() -> None:
    model = build_detector('t', frozen_stages=1)
    wrapper = build_optim_wrapper(model, optim_cfg(decay_rate=2, num_layers=7))
    table = check_table(model, wrapper, 't', 'layer_wise', 7)
    frozen = ('backbone.downsample_layers.0.', 'backbone.stages.0.', 'backbone.norm0.')
    assert not any(n.startswith(frozen) for n in table)
    assert any(n.startswith('backbone.stages.1.') for n in table)
    assert min(v[2] for v in table.values()) == 2


def test_ddp_style_wrapper() -> None:
    model = cached_model('classifier', 'xt')
    plain = group_table(build_optim_wrapper(model, optim_cfg(decay_rate=2)))
    wrapped_model = DDPStyleWrapper(DDPStyleWrapper(model))
    wrapped = group_table(build_optim_wrapper(wrapped_model, optim_cfg(decay_rate=2)))
    assert wrapped == plain
    check_table(model, build_optim_wrapper(DDPStyleWrapper(model), optim_cfg(decay_rate=2)),
                'xt', 'layer_wise', 6)


def test_mmpretrain_spelling_matches() -> None:
    model = TinyModel()
    ours = group_table(build_optim_wrapper(model, optim_cfg(decay_rate=0.5)))
    theirs = group_table(build_optim_wrapper(model, optim_cfg(layer_decay_rate=0.5)))
    assert ours == theirs


# ------------------------------------------------------------ paramwise options
def test_custom_keys_and_decay_mults() -> None:
    model = TinyModel()  # ids: stem 0, stage 0 -> 1, downsample 1 / stage 1 -> 1, top 3
    wrapper = build_optim_wrapper(model, optim_cfg(
        decay_rate=2, num_layers=2, bias_decay_mult=0.5, norm_decay_mult=0.25,
        flat_decay_mult=0.1,
        custom_keys={'backbone': dict(lr_mult=0.5),
                     'backbone.stages': dict(lr_mult=0.25, decay_mult=2.0),
                     'head': dict(decay_mult=0.0)}))
    table = group_table(wrapper)
    # Longest key wins: every stage parameter, biases and norms too, gets 2 * WD.
    assert table['backbone.stages.0.0.norm1.weight'] == (4.0 * 0.25, 2 * WD, 1)
    assert table['backbone.stages.1.1.mlp.fc1.bias'] == (4.0 * 0.25, 2 * WD, 1)
    # 'backbone' without decay_mult: the decay mults and the default rule apply.
    assert table['backbone.downsample_layers.0.conv.weight'] == (8.0 * 0.5, WD, 0)
    assert table['backbone.downsample_layers.0.conv.bias'] == (8.0 * 0.5, WD * 0.5, 0)
    assert table['backbone.downsample_layers.0.post_norm.weight'] == (8.0 * 0.5, WD * 0.25, 0)
    assert table['backbone.norm1.weight'] == (0.5, WD * 0.25, 3)  # nn.LayerNorm
    assert table['backbone.norm1.bias'] == (0.5, WD * 0.25, 3)
    assert table['head.weight'] == (1.0, 0.0, 3)
    # Without multipliers: the official rule (1-D and biases undecayed).
    plain = group_table(build_optim_wrapper(model, optim_cfg(decay_rate=2, num_layers=2)))
    assert plain['backbone.stages.1.0.res_scale1.scale'] == (4.0, 0.0, 1)
    assert plain['backbone.downsample_layers.0.conv.bias'] == (8.0, 0.0, 0)
    assert plain['head.weight'] == (1.0, WD, 3)
    flat = group_table(build_optim_wrapper(model, optim_cfg(
        decay_rate=2, num_layers=2, flat_decay_mult=0.1)))
    assert flat['backbone.stages.1.0.res_scale1.scale'] == (4.0, pytest.approx(WD * 0.1), 1)


def test_logs_one_table(monkeypatch: pytest.MonkeyPatch) -> None:
    messages = []
    monkeypatch.setattr(layer_decay_module, 'print_log',
                        lambda msg, logger=None, level=None: messages.append(msg))
    wrapper = build_optim_wrapper(TinyModel(), optim_cfg(decay_rate=0.7))
    assert len(messages) == 1
    text = messages[0]
    assert 'stages.0.0' not in text  # a summary, not a dump of parameter names
    lines = text.splitlines()
    assert lines[1].split() == ['group', 'layer', 'lr', 'scale', 'weight', 'decay',
                                'tensors', 'params']
    groups = wrapper.optimizer.param_groups
    assert len(lines) == 3 + len(groups) + 1  # title, header, rule, groups, total
    assert {g['group_name'] for g in groups} == {line.split()[0] for line in lines[3:-1]}


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize('paramwise, match', [
    (dict(decay_rate=0.7, decay_type='block_wise'), 'decay_type'),
    (dict(decay_rat=0.7), r"unknown paramwise_cfg key\(s\) \['decay_rat'\]"),
    (dict(decay_rate=0.7, bias_lr_mult=2.0), 'bias_lr_mult'),
    (dict(decay_rate=0.7, layer_decay_rate=0.7), 'not both'),
    (dict(decay_type='layer_wise'), "needs 'decay_rate'"),
    (dict(decay_rate=0.0), 'decay_rate must be'),
    (dict(decay_rate=0.7, num_layers=2.5), 'num_layers'),
    (dict(decay_rate=0.7, custom_keys={'head': dict(lr_mul=2.0)}), 'lr_mul'),
])
def test_bad_paramwise_cfg(paramwise: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_optim_wrapper(TinyModel(), optim_cfg(**paramwise))


def test_weight_decay_must_be_explicit() -> None:
    cfg = optim_cfg(decay_rate=0.7)
    del cfg['optimizer']['weight_decay']
    with pytest.raises(ValueError, match='weight_decay'):
        build_optim_wrapper(TinyModel(), cfg)


def test_num_layers_too_small() -> None:
    with pytest.raises(ValueError, match='too small'):
        build_optim_wrapper(cached_model('classifier', 'xt'),
                            optim_cfg(decay_rate=0.7, num_layers=5))


def test_model_without_backbone() -> None:
    with pytest.raises(TypeError, match='needs a model with a `backbone`'):
        build_optim_wrapper(nn.Sequential(nn.Linear(2, 2)), optim_cfg(decay_rate=0.7))


def test_backbone_without_get_layer_depth() -> None:
    model = nn.Module()
    model.backbone = nn.Conv2d(3, 8, 3)
    with pytest.raises(TypeError, match='Conv2d has no get_layer_depth'):
        build_optim_wrapper(model, optim_cfg(decay_rate=0.7))


# -------------------------------------------------------------- registries
@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
@pytest.mark.parametrize('name', ['mmparc.LayerDecayOptimWrapperConstructor',
                                  'LayerDecayOptimWrapperConstructor'])
def test_found_from_every_default_scope(scope: str, name: str) -> None:
    import importlib
    registry = importlib.import_module(f'{scope}.registry').OPTIM_WRAPPER_CONSTRUCTORS
    with DefaultScope.overwrite_default_scope(scope):
        wrapper = build_optim_wrapper(TinyModel(), optim_cfg(constructor=name, decay_rate=0.5))
        assert {'layer_id', 'lr_scale', 'param_names'} <= set(
            wrapper.optimizer.param_groups[0])
        constructor = registry.build(dict(
            type=name, optim_wrapper_cfg=dict(optimizer=dict(type='AdamW', lr=LR,
                                                             weight_decay=WD)),
            paramwise_cfg=dict(decay_rate=0.5)))
    assert type(constructor) is LayerDecayOptimWrapperConstructor
    assert registry.get(name) is LayerDecayOptimWrapperConstructor


def test_downstream_constructors_not_shadowed() -> None:
    import mmdet.engine  # noqa: F401
    import mmpretrain.engine  # noqa: F401
    import mmseg.engine  # noqa: F401
    from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as DET
    from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS as CLS
    from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as SEG
    ours = LayerDecayOptimWrapperConstructor
    assert DET.get('LearningRateDecayOptimizerConstructor') not in (None, ours)
    assert SEG.get('LearningRateDecayOptimizerConstructor') not in (None, ours)
    assert CLS.get('LearningRateDecayOptimWrapperConstructor') not in (None, ours)


def test_fallback_amp_wrapper_with_constructor() -> None:
    model = TinyModel()
    wrapper = build_optim_wrapper(model, optim_cfg('mmparc.FallbackAmpOptimWrapper',
                                                   decay_rate=0.5))
    assert isinstance(wrapper.optimizer, torch.optim.AdamW)
    assert {g['layer_id'] for g in wrapper.optimizer.param_groups} == {0, 1, 2}
