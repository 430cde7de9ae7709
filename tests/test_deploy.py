"""Inference-time re-parameterisation (``ParCNetV2.switch_to_deploy``)."""
import copy

import pytest
import torch
from mmcv.cnn.bricks import DropPath

import mmparc  # noqa: F401
import reference_official as ref
from mmparc.convert import convert_official
from mmparc.models import L2LayerNorm, OversizedConv2d, ParCNetV2
from mmparc.models.deploy import (DeployedMixerConv, L2Normalize, deploy_model, merge_pays,
                                  stage_map_sizes)

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


def assert_deploy_parity(model: ParCNetV2, size, merge='auto', batch: int = 2) -> ParCNetV2:
    x = torch.randn(batch, 3, *size)
    with torch.no_grad():
        expected = model(x)
        deployed = copy.deepcopy(model).switch_to_deploy(size, merge)
        got = deployed(x)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        assert (g - e).abs().max().item() <= ATOL
    return deployed


def merged_flags(model: ParCNetV2):
    return [stage[0].token_mixer.spatial.merged for stage in model.stages]


# ------------------------------------------------------------------ parity
@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
@pytest.mark.parametrize('dense', [False, True])
@pytest.mark.parametrize('size,merge,expected_merges', [
    ((96, 128), 'auto', [False, False, False, True]),     # last map 3x4: merged 5x7
    ((100, 75), (True, False, True, False), [True, False, True, False]),
])
def test_deploy_matches_original(kernel_mode, dense, size, merge, expected_merges):
    model = random_backbone('xt', kernel_mode, dense)
    deployed = assert_deploy_parity(model, size, merge)
    assert merged_flags(deployed) == expected_merges


@pytest.mark.parametrize('kernel_mode,merge', [('fixed', 'always'), ('global', 'never')])
def test_deploy_policies(kernel_mode, merge):
    model = random_backbone('xt', kernel_mode, dense=True, seed=1)
    deployed = assert_deploy_parity(model, (64, 96), merge)
    assert merged_flags(deployed) == [merge == 'always'] * 4


def test_deploy_matches_original_t_224():
    # At 224 'global' kernels equal the stored ('fixed') ones; one mode suffices.
    model = random_backbone('t', 'global', dense=False, seed=3)
    deployed = assert_deploy_parity(model, (224, 224), batch=1)
    assert merged_flags(deployed) == [False] * 4  # 56..7-pixel maps: separable is cheaper


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


def test_merged_kernel_equals_three_convolutions():
    torch.manual_seed(1)
    kernel_h, kernel_w, local = torch.randn(5, 13), torch.randn(5, 9), torch.randn(5, 1, 7, 7)
    x = torch.randn(2, 5, 6, 4)
    separable = DeployedMixerConv(kernel_h, kernel_w, local, (6, 4), merge=False)
    merged = DeployedMixerConv(kernel_h, kernel_w, local, (6, 4), merge=True)
    # 13 taps crop to 2*6-1 = 11 on a 6-row map, 9 and 7 to 7 on 4 columns.
    assert merged.weight.shape == (5, 1, 11, 7)
    torch.testing.assert_close(merged(x), separable(x), atol=1e-5, rtol=1e-5)


# -------------------------------------------------------------- cost model
@pytest.mark.parametrize('kernels,expected', [
    ((13, 13, 7, 7), False),   # 7x7 map (224, last stage): 169 vs 75 MACs
    ((27, 27, 7, 7), False),
    ((7, 7, 7, 7), True),      # 4x4 map: 49 vs 63
    ((1, 13, 1, 7), True),     # one-row map: a 1-D kernel either way
    ((7, 11, 7, 7), False),    # 4x6 map: 77 vs 67
])
def test_merge_pays(kernels, expected):
    assert merge_pays(*kernels) is expected


def test_stage_map_sizes_follow_the_network():
    model = ParCNetV2('xt', gap_before_final_norm=False, out_indices=(0, 1, 2, 3)).eval()
    for size in [(128, 128), (97, 131), (64, 95)]:
        with torch.no_grad():
            outs = model(torch.zeros(1, 3, *size))
        assert stage_map_sizes(model, size) == [tuple(o.shape[2:]) for o in outs]


# ------------------------------------------------------------ what changed
def test_deployed_structure():
    model = random_backbone('xt', 'global', dense=True).switch_to_deploy((128, 128))
    types = [type(m) for m in model.modules()]
    assert OversizedConv2d not in types and DropPath not in types
    assert L2LayerNorm not in types
    # Only the stem's post_norm and the four output norms keep a scale.
    norms = {name: m for name, m in model.named_modules() if isinstance(m, L2Normalize)}
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
    with pytest.raises(ValueError, match='deployed for 16x16'), torch.no_grad():
        model(torch.zeros(1, 3, 96, 64))


@pytest.mark.parametrize('size,merge,error', [
    ((16, 64), 'auto', ValueError),
    ((64,), 'auto', ValueError),
    ((64.0, 64), 'auto', ValueError),
    ((64, 64), 'sometimes', ValueError),
    ((64, 64), (True, False), ValueError),
])
def test_bad_arguments(size, merge, error):
    with pytest.raises(error):
        ParCNetV2('xt').switch_to_deploy(size, merge)


def test_deploy_twice_raises():
    model = ParCNetV2('xt').switch_to_deploy((64, 64))
    with pytest.raises(RuntimeError, match='already deployed'):
        model.switch_to_deploy((64, 64))


def test_deploy_model_needs_a_parcnetv2():
    with pytest.raises(ValueError, match='no ParCNetV2'):
        deploy_model(torch.nn.Linear(2, 2), (64, 64))
