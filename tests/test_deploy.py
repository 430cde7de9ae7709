"""Inference-time re-parameterisation (``ParCNetV2.switch_to_deploy``)."""
import copy

import pytest
import torch
from mmcv.cnn.bricks import DropPath

import mmparc  # noqa: F401
from mmparc.testing import official as ref
from mmparc.convert import convert_official
from mmparc.models import L2LayerNorm, ParCNetV2
from mmparc.models.layers import OversizedConv1d
from mmparc.models.deploy import deploy_model
from mmparc.models.parcnetv2 import SpatialBGU, fuse_pays

ATOL = 1e-4


def random_backbone(arch: str, kernel_mode: str, dense: bool, seed: int = 0) -> ParCNetV2:
    """A backbone with official-like random weights: norm scales far from 1."""
    model = ParCNetV2(arch, kernel_mode=kernel_mode, gap_before_final_norm=not dense,
                      out_indices=(0, 1, 2, 3) if dense else -1, drop_path_rate=0.2)
    state = ref.random_official_state_dict(arch, dense_prefix='backbone.' if dense else None,
                                           seed=seed)
    if dense:
        state = convert_official(state, 'backbone')
    else:  # keep the classifier's final LayerNorm (a 'backbone' conversion drops it)
        state = {k[len('backbone.'):]: v for k, v in convert_official(state, 'classifier').items()
                 if k.startswith('backbone.')}
    model.load_state_dict(state, strict=True)
    return model.eval()


def assert_deploy_parity(model: ParCNetV2, size, fuse='auto', batch: int = 2) -> ParCNetV2:
    x = torch.randn(batch, 3, *size)
    with torch.no_grad():
        expected = model(x)
        deployed = copy.deepcopy(model).switch_to_deploy(size, fuse)
        got = deployed(x)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        assert (g - e).abs().max().item() <= ATOL
    return deployed


def fused_flags(model: ParCNetV2):
    return [stage[0].token_mixer.fused is not None for stage in model.stages]


# ------------------------------------------------------------------ parity
@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
@pytest.mark.parametrize('dense', [False, True])
@pytest.mark.parametrize('size,fuse,expected_fuses', [
    ((96, 128), 'auto', [False, False, False, True]),     # last map 3x4: fused 5x7
    ((100, 75), (True, False, True, False), [True, False, True, False]),
])
def test_deploy_matches_original(kernel_mode, dense, size, fuse, expected_fuses):
    model = random_backbone('xt', kernel_mode, dense)
    deployed = assert_deploy_parity(model, size, fuse)
    assert fused_flags(deployed) == expected_fuses


@pytest.mark.parametrize('kernel_mode,fuse', [('fixed', 'always'), ('global', 'never')])
def test_deploy_policies(kernel_mode, fuse):
    model = random_backbone('xt', kernel_mode, dense=True, seed=1)
    deployed = assert_deploy_parity(model, (64, 96), fuse)
    assert fused_flags(deployed) == [fuse == 'always'] * 4


def test_deploy_matches_original_t_224():
    # At 224 'global' kernels equal the stored ('fixed') ones; one mode suffices.
    model = random_backbone('t', 'global', dense=False, seed=3)
    deployed = assert_deploy_parity(model, (224, 224), batch=1)
    assert fused_flags(deployed) == [False] * 4  # 56..7-pixel maps: separable is cheaper


def test_deployed_classifier_logits_unchanged():
    from mmpretrain.registry import MODELS
    classifier = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='mmparc.ParCNetV2', arch='xt'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=320))).eval()
    state = convert_official(ref.random_official_state_dict('xt', num_classes=10), 'classifier')
    classifier.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = classifier(x, mode='tensor')
        got = deploy_model(copy.deepcopy(classifier), (96, 96))(x, mode='tensor')
    assert (got - expected).abs().max().item() <= ATOL


@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
def test_fused_kernel_equals_three_convolutions(kernel_mode):
    torch.manual_seed(1)
    mixer = SpatialBGU(5, 13, kernel_mode, 'auto').eval()
    for p in mixer.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 5, 6, 4)
    separable, fused = copy.deepcopy(mixer), copy.deepcopy(mixer)
    with torch.no_grad():
        expected = mixer(x)
        separable.switch_to_deploy((6, 4), False, torch.ones(5))
        fused.switch_to_deploy((6, 4), True, torch.ones(5))
        # fixed: 13 taps crop to 2*6-1 = 11 on a 6-row map, 13 and 7 to 7 on 4 columns.
        assert fused.fused.weight.shape == (5, 1, 11, 7)
        assert separable.fused is None and not hasattr(fused, 'dwconv1')
        torch.testing.assert_close(fused(x), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(separable(x), expected, atol=1e-5, rtol=1e-5)


# -------------------------------------------------------------- cost model
@pytest.mark.parametrize('kernels,expected', [
    ((13, 13, 7, 7), False),   # 7x7 map (224, last stage): 169 vs 75 MACs
    ((27, 27, 7, 7), False),
    ((7, 7, 7, 7), True),      # 4x4 map: 49 vs 63
    ((1, 13, 1, 7), True),     # one-row map: a 1-D kernel either way
    ((7, 11, 7, 7), False),    # 4x6 map: 77 vs 67
])
def test_fuse_pays(kernels, expected):
    assert fuse_pays(*kernels) is expected


def test_stage_map_sizes_follow_the_network():
    model = ParCNetV2('xt', gap_before_final_norm=False, out_indices=(0, 1, 2, 3)).eval()
    for size in [(128, 128), (97, 131), (64, 95)]:
        with torch.no_grad():
            outs = model(torch.zeros(1, 3, *size))
        assert model.stage_sizes(size) == [tuple(o.shape[2:]) for o in outs]


# ------------------------------------------------------------ what changed
def test_deployed_structure():
    model = random_backbone('xt', 'global', dense=True).switch_to_deploy((128, 128))
    types = [type(m) for m in model.modules()]
    assert DropPath not in types
    # Oversized kernels resolved for each stage's map: 2h-1 x 2w-1 taps, fixed.
    convs = [m for m in model.modules() if isinstance(m, OversizedConv1d)]
    assert len(convs) == 2 * (sum(model.depths) - model.depths[-1])  # last stage (4x4) fused
    for conv in convs:
        assert conv.kernel_mode == 'fixed' and conv.deploy_size is not None
        assert conv.weight.shape[conv.axis_index] == 2 * conv.deploy_size - 1
    # Only the stem's post_norm and the four output norms keep a scale.
    norms = {name: m for name, m in model.named_modules() if isinstance(m, L2LayerNorm)}
    assert len(norms) == 1 + 3 + 2 * sum(model.depths) + 4
    scaled = [name for name, m in norms.items() if m.weight is not None]
    assert sorted(scaled) == ['downsample_layers.0.post_norm', 'norm0', 'norm1', 'norm2',
                              'norm3']
    assert not any(p.requires_grad for p in model.parameters())
    assert model.deploy_input_size == (128, 128)


def test_train_after_deploy_raises_eval_works():
    model = ParCNetV2('xt').switch_to_deploy((64, 64))
    with pytest.raises(RuntimeError, match='inference-only'):
        model.train()
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))


def test_deployed_model_refuses_other_sizes():
    model = ParCNetV2('xt').switch_to_deploy((64, 64))
    with pytest.raises(ValueError, match='deployed for 64x64 inputs, got 96x64'), \
            torch.no_grad():
        model(torch.zeros(1, 3, 96, 64))
    with pytest.raises(ValueError, match='deployed for maps of h=8, got h=24'), torch.no_grad():
        model.stages[1][0].token_mixer.dwconv1(torch.zeros(1, 96, 24, 16))


@pytest.mark.parametrize('size,fuse,error', [
    ((16, 64), 'auto', ValueError),
    ((64,), 'auto', ValueError),
    ((64.0, 64), 'auto', ValueError),
    ((64, 64), 'sometimes', ValueError),
    ((64, 64), (True, False), ValueError),
])
def test_bad_arguments(size, fuse, error):
    with pytest.raises(error):
        ParCNetV2('xt').switch_to_deploy(size, fuse)


def test_deploy_twice_raises():
    model = ParCNetV2('xt').switch_to_deploy((64, 64))
    with pytest.raises(RuntimeError, match='already deployed'):
        model.switch_to_deploy((64, 64))


def test_deploy_model_needs_a_parcnetv2():
    with pytest.raises(ValueError, match='no ParCNetV2'):
        deploy_model(torch.nn.Linear(2, 2), (64, 64))


# ------------------------------------------- without an input size (mmdeploy)
@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
def test_size_free_deploy_matches_original_at_any_size(kernel_mode):
    # mmdeploy calls model.backbone.switch_to_deploy() with no arguments,
    # before it knows the export shape: the result must hold at every size.
    model = random_backbone('xt', kernel_mode, dense=True, seed=5)
    deployed = copy.deepcopy(model).switch_to_deploy()
    for size in [(64, 96), (100, 75), (224, 224)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            for got, expected in zip(deployed(x), model(x)):
                assert (got - expected).abs().max().item() <= ATOL
    assert deployed.deployed and deployed.deploy_input_size is None
    convs = [m for m in deployed.modules() if isinstance(m, OversizedConv1d)]
    assert convs and all(c.deploy_size is None and c.kernel_mode == kernel_mode for c in convs)
    assert fused_flags(deployed) == [False] * 4
    scaled = [name for name, m in deployed.named_modules()
              if isinstance(m, L2LayerNorm) and m.weight is not None]
    assert sorted(scaled) == ['downsample_layers.0.post_norm', 'norm0', 'norm1', 'norm2',
                              'norm3']
    assert DropPath not in [type(m) for m in deployed.modules()]
    assert not any(p.requires_grad for p in deployed.parameters())


def test_size_free_deploy_as_mmdeploy_calls_it():
    # mmdeploy/codebase/base/task.py: model.backbone.switch_to_deploy(), then model.eval().
    from mmpretrain.registry import MODELS
    classifier = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='mmparc.ParCNetV2', arch='xt'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=320))).eval()
    state = convert_official(ref.random_official_state_dict('xt', num_classes=10), 'classifier')
    classifier.load_state_dict(state, strict=True)
    deployed = copy.deepcopy(classifier)
    deployed.backbone.switch_to_deploy()
    deployed.eval()
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        expected = classifier(x, mode='tensor')
        assert (deployed(x, mode='tensor') - expected).abs().max().item() <= ATOL
        via_helper = deploy_model(copy.deepcopy(classifier))(x, mode='tensor')
        assert (via_helper - expected).abs().max().item() <= ATOL
    with pytest.raises(RuntimeError, match='inference-only'):
        deployed.train()


@pytest.mark.parametrize('fuse', ['always', (True, False, False, False)])
def test_size_free_deploy_cannot_fuse(fuse):
    model = ParCNetV2('xt')
    with pytest.raises(ValueError, match='needs an input_size'):
        model.switch_to_deploy(fuse=fuse)
    assert not model.deployed
    model.switch_to_deploy(fuse='never')
    assert model.deployed


@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
def test_size_free_then_sized_deploy(kernel_mode):
    # A static mmdeploy export resolves the kernels of a backbone that
    # mmdeploy deployed without a size: only the size-dependent part is left.
    model = random_backbone('xt', kernel_mode, dense=True, seed=6)
    once = copy.deepcopy(model).switch_to_deploy()
    twice = copy.deepcopy(once).switch_to_deploy((64, 96), fuse='always')
    assert twice.deploy_input_size == (64, 96) and fused_flags(twice) == [True] * 4
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        for got, expected in zip(twice(x), model(x)):
            assert (got - expected).abs().max().item() <= ATOL
    with pytest.raises(RuntimeError, match=r'already deployed \(for 64x96 inputs\)'):
        twice.switch_to_deploy((64, 96))
    with pytest.raises(RuntimeError, match=r'already deployed \(for any input size\)'):
        once.switch_to_deploy()
