"""The supplement's ablations (Tables 1-4) as configs, and the layers they are built from.

Every ablation config builds, has the parameters and MACs at 224 that the
paper prints (within 0.1M / 0.1G for the ParCNetV2-XT rows, 1M / 0.1G for the
ConvNeXt-T rows; exact counts pinned beside them) and trains for one
optimizer step on two generated 64x64 images, with a gradient reaching
every parameter.  The mixer's ablation switches are checked for what they
compute, the reusable layers for being built by name from any MMLab scope.
"""
from decimal import Decimal

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmparc  # noqa: F401  (registers mmparc's models)
from mmparc.analysis import complexity
from mmparc.models import ParCNetV2
from mmparc.models.layers import GatedProjection
from mmparc.models.parcnetv2 import MIXERS, SpatialBGU
from mmparc.ops import gated_projection, gated_projection_reference

from helpers import REPO, build_classifier

ABLATIONS = REPO / 'configs' / 'ablations'
# config -> (params, MACs) at 224, ours exactly (mmparc.analysis.complexity).
OURS = {
    'convnext_t': (28_589_128, 4_470_399_744),
    'convnext_t_oc': (30_053_032, 4_760_090_880),
    'convnext_t_sbgu_cbgu': (28_584_712, 4_470_399_744),
    'parcnetv2_xt_parallel': (7_427_720, 1_553_450_688),
    'parcnetv2_xt_dwconv_only': (7_468_136, 1_570_121_664),
    'parcnetv2_xt_cascade_dw_v_h': (7_427_720, 1_553_450_688),
    'parcnetv2_xt_cascade_v_dw_h': (7_427_720, 1_553_450_688),
    'parcnetv2_xt_cascade_v_h_dw': (7_427_720, 1_553_450_688),
    'parcnetv2_xt_merge_add': (7_427_720, 1_553_450_688),
}
TOLERANCE = {'convnext': (1e6, 0.1e9), 'parcnetv2_xt': (0.1e6, 0.1e9)}


def toy_batch(num_classes: int = 1000) -> dict:
    from mmpretrain.structures import DataSample
    generator = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=generator)
              for _ in range(2)]
    return dict(inputs=images,
                data_samples=[DataSample().set_gt_label(c) for c in (1, num_classes - 1)])


def test_every_ablation_config_is_pinned():
    assert sorted(p.stem for p in ABLATIONS.glob('*.py')) == sorted(OURS)


@pytest.mark.parametrize('name', sorted(OURS))
def test_ablation_matches_paper_and_trains_a_step(name):
    cfg, model = build_classifier(ABLATIONS / f'{name}.py')
    measured = complexity(model, (3, 224, 224))
    assert (measured['params'], measured['macs']) == OURS[name]
    params_tol, macs_tol = TOLERANCE['convnext' if name.startswith('convnext') else
                                     'parcnetv2_xt']
    for row in cfg.paper:  # the paper's printed figures, in M and G
        assert abs(measured['params'] - float(Decimal(row['params']) * 10**6)) <= params_tol
        assert abs(measured['macs'] - float(Decimal(row['macs']) * 10**9)) <= macs_tol

    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    data = model.data_preprocessor(toy_batch(), True)
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    optim_wrapper.backward(loss)
    no_grad = [n for n, p in model.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f'no gradient reaches {no_grad[:5]}'
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optim_wrapper.step()
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters())


# ------------------------------------------------------------ the switches
def mixer_with_delta(mixer: str, delta: str) -> SpatialBGU:
    """A mixer whose local (``'local'``) or oversized (``'oversized'``) kernels are identities."""
    torch.manual_seed(0)
    module = SpatialBGU(6, 9, 'fixed', 'auto', mixer=mixer).eval()
    with torch.no_grad():
        if delta == 'local':
            module.dwconv2.weight.zero_()[:, :, 3, 3] = 1
        else:
            for conv in (module.dwconv1.conv_h, module.dwconv1.conv_w):
                conv.weight.zero_().view(6, -1)[:, 4] = 1
    return module


def gate_path(module: SpatialBGU, gate: torch.Tensor) -> torch.Tensor:
    """What the mixer multiplies its value by, read off with a hook on pwconv2."""
    seen = {}
    handle = module.pwconv2.register_forward_hook(
        lambda m, args, out: seen.setdefault('gate', args[1]))
    module(gate)
    handle.remove()
    return seen['gate']


# Each cascade as the chain of convolutions its name spells, in that order: the
# local 7x7 (dw), the vertical 1-D (v) and the horizontal 1-D (h) kernel, each
# with 'same' zero padding.  Convolutions commute only on unbounded maps: on a
# 5x6 map with 9-tap and 7x7 kernels every output sees a border, so each order
# gives another result (checked below), and a swapped order cannot pass.
def _dw(x, module):
    return F.conv2d(x, module.dwconv2.weight, padding=3, groups=x.shape[1])


def _v(x, module):
    return F.conv2d(x, module.dwconv1.conv_h.weight, padding=(4, 0), groups=x.shape[1])


def _h(x, module):
    return F.conv2d(x, module.dwconv1.conv_w.weight, padding=(0, 4), groups=x.shape[1])


CHAINS = {
    'parallel': lambda x, m: _h(_v(x, m), m) + _dw(x, m),
    'cascade_dw_v_h': lambda x, m: _h(_v(_dw(x, m), m), m),
    'cascade_v_dw_h': lambda x, m: _h(_dw(_v(x, m), m), m),
    'cascade_v_h_dw': lambda x, m: _dw(_h(_v(x, m), m), m),
}


@pytest.mark.parametrize('mixer', sorted(CHAINS))
def test_cascades_order_their_convolutions(mixer):
    """What each mixer multiplies its value by is its named chain of conv2d calls,
    on a map small enough that the borders make every order different."""
    torch.manual_seed(0)
    module = SpatialBGU(6, 9, 'fixed', 'auto', mixer=mixer).eval()
    x = torch.randn(2, 6, 5, 6)
    with torch.no_grad():
        gate = module.act(module.pwconv1(x).chunk(2, dim=1)[1])
        expected = CHAINS[mixer](gate, module)
        torch.testing.assert_close(gate_path(module, x), expected, rtol=1e-5, atol=1e-6)
        # Every other order is far from it: the comparison can tell orders apart.
        for other, chain in CHAINS.items():
            if other != mixer:
                gap = (chain(gate, module) - expected).abs().max()
                assert gap > 1e-2 * expected.abs().max(), other


@pytest.mark.parametrize('mixer', ['cascade_dw_v_h', 'cascade_v_dw_h', 'cascade_v_h_dw'])
def test_cascades_with_identity_kernels(mixer):
    """With an identity local kernel every cascade is the oversized convolution alone;
    with identity oversized kernels it is the local one alone."""
    x = torch.randn(2, 6, 8, 10)
    with torch.no_grad():
        for delta, alone in (('local', 'dwconv1'), ('oversized', 'dwconv2')):
            module = mixer_with_delta(mixer, delta)
            gate = module.act(module.pwconv1(x).chunk(2, dim=1)[1])
            expected = getattr(module, alone)(gate)
            torch.testing.assert_close(gate_path(module, x), expected)


def test_dwconv_only_has_no_oversized_convolution():
    model = ParCNetV2('xt', mixer='dwconv_only', local_kernel_sizes=[17, 13, 11, 9])
    names = [n for n, _ in model.named_parameters()]
    assert not any('dwconv1' in n for n in names)
    assert model.stages[0][0].token_mixer.dwconv2.weight.shape == (48, 1, 17, 17)
    assert model.stages[3][0].token_mixer.dwconv2.weight.shape == (320, 1, 9, 9)


def test_default_switches_leave_the_paper_model():
    torch.manual_seed(0)
    default = ParCNetV2('xt')
    torch.manual_seed(0)
    explicit = ParCNetV2('xt', mixer='parallel', branch_merge='mul',
                         local_kernel_sizes=[7, 7, 7, 7])
    assert list(default.state_dict()) == list(explicit.state_dict())
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(default.eval()(x), explicit.eval()(x))


@pytest.mark.parametrize('gelu', [False, True])
def test_add_merge_against_its_formula(gelu):
    """``merge='add'``: ``conv1x1(value + act(gate))``, forward and gradients."""
    value, gate = torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6)
    weight = torch.randn(3, 4)
    leaves = [t.clone().requires_grad_(True) for t in (value, gate, weight)]
    ours = gated_projection(*leaves, gelu, 'add')
    ours.square().sum().backward()
    formula = [t.clone().requires_grad_(True) for t in (value, gate, weight)]
    act = F.gelu(formula[1]) if gelu else formula[1]
    expected = F.conv2d(formula[0] + act, formula[2][:, :, None, None])
    expected.square().sum().backward()
    torch.testing.assert_close(ours, expected)
    for a, b in zip(leaves, formula):
        torch.testing.assert_close(a.grad, b.grad)
    torch.testing.assert_close(gated_projection_reference(value, gate, weight, gelu, 'add'),
                               expected.detach())


def test_add_merge_in_both_gate_units():
    model = ParCNetV2('xt', branch_merge='add')
    block = model.stages[0][0]
    assert block.token_mixer.pwconv2.merge == 'add' and block.mlp.fc2.merge == 'add'
    layer = GatedProjection(4, 3, merge='add')
    value, gate = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(layer(value, gate),
                               F.conv2d(value + gate, layer.weight))


def test_cascade_deploys_unmerged():
    model = ParCNetV2('xt', mixer='cascade_v_dw_h').eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy((64, 64))
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match='fuse'):
        ParCNetV2('xt', mixer='cascade_v_h_dw').switch_to_deploy((64, 64), fuse='always')


@pytest.mark.parametrize('kwargs,argument', [
    (dict(mixer='serial'), 'mixer'),
    (dict(branch_merge='max'), 'branch_merge'),
    (dict(local_kernel_sizes=[7, 7, 6, 7]), 'local_kernel_sizes'),
    (dict(local_kernel_sizes=[7, 7, 7]), 'local_kernel_sizes'),
])
def test_bad_switches_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        ParCNetV2('xt', **kwargs)


def test_mixers_are_listed():
    assert MIXERS == ('parallel', 'dwconv_only', 'cascade_dw_v_h', 'cascade_v_dw_h',
                      'cascade_v_h_dw')


# ------------------------------------------------------ reusable layers
@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
def test_layers_build_by_name_in_every_scope(scope):
    init_default_scope(scope)
    registry = {'mmpretrain': 'mmpretrain.registry', 'mmdet': 'mmdet.registry',
                'mmseg': 'mmseg.registry'}[scope]
    MODELS = __import__(registry, fromlist=['MODELS']).MODELS
    x = torch.randn(2, 8, 12, 10)
    layers = [
        dict(type='mmparc.OversizedConv2d', channels=8, kernel_size=9),
        dict(type='OversizedConv2d', channels=8, kernel_size=9, kernel_mode='global'),
        dict(type='mmparc.GlobalLocalConv', dim=8, kernel_size=23, kernel_mode='global'),
        dict(type='mmparc.SpatialBGU', dim=8, kernel_size=23),
        dict(type='mmparc.SpatialBGU', dim=8, kernel_size=None, mixer='dwconv_only'),
        dict(type='mmparc.ChannelBGU', dim=8, mlp_ratio=5),
    ]
    for cfg in layers:
        layer = MODELS.build(cfg)
        out = layer(x)
        assert out.shape == x.shape, cfg
        out.sum().backward()
    # global mode sees the whole map: the output's corner depends on the far corner
    oc = MODELS.build(dict(type='mmparc.OversizedConv2d', channels=8, kernel_size=3,
                           kernel_mode='global'))
    inp = x.clone().requires_grad_(True)
    oc(inp)[0, 0, 0, 0].backward()
    assert inp.grad[0, 0, -1, -1] != 0


def test_convnext_parc_is_mmpretrains_convnext_without_layers():
    """No layer given: the same parameters and outputs as mmpretrain's ConvNeXt."""
    from mmpretrain.models.backbones import ConvNeXt

    from mmparc.models.convnext import ConvNeXtParC
    arch = dict(depths=[1, 1, 1, 1], channels=[8, 16, 24, 32])
    torch.manual_seed(0)
    ours = ConvNeXtParC(arch=arch, out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    torch.manual_seed(0)
    theirs = ConvNeXt(arch=arch, out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 3, 64, 64)
    ours.eval()  # mmpretrain's ConvNeXt.train returns None
    theirs.eval()
    for a, b in zip(ours(x), theirs(x)):
        torch.testing.assert_close(a, b)


def test_convnext_parc_initialises_mmparc_layers_as_convnext_does():
    """ConvNeXt's truncated normal (std 0.02) reaches mmparc's 1x1 layers too."""
    from mmparc.models.convnext import ConvNeXtParC
    model = ConvNeXtParC(arch=dict(depths=[1, 1, 1, 1], channels=[64, 64, 64, 64]),
                         token_mixer=dict(type='mmparc.SpatialBGU', kernel_size=None,
                                          mixer='dwconv_only'),
                         channel_mixer=dict(type='mmparc.ChannelBGU', mlp_ratio=4))
    model.init_weights()
    block = model.stages[0][0]
    for weight in (block.depthwise_conv.pwconv1.weight, block.depthwise_conv.pwconv2.weight,
                   block.pointwise_conv1.fc1.weight, block.pointwise_conv1.fc2.weight):
        assert abs(weight.std().item() - 0.02) < 0.003  # kaiming-uniform: ~0.07


def test_convnext_parc_layers_per_stage_and_bad_configs():
    from mmparc.models.convnext import ConvNeXtParC
    arch = dict(depths=[1, 1, 1, 1], channels=[8, 16, 24, 32])
    model = ConvNeXtParC(arch=arch, token_mixer=[
        dict(type='mmparc.GlobalLocalConv', kernel_size=k) for k in (31, 15, 7, 3)],
        channel_mixer=dict(type='mmparc.ChannelBGU', mlp_ratio=4))
    assert model.stages[1][0].depthwise_conv.dwconv1.conv_h.weight.shape == (16, 1, 15, 1)
    assert model.stages[3][0].pointwise_conv1.fc1.weight.shape == (128, 32)
    model.eval()
    assert model(torch.randn(1, 3, 64, 64))[0].shape == (1, 32)
    with pytest.raises(ValueError, match='token_mixer'):
        ConvNeXtParC(arch=arch, token_mixer=[dict(type='mmparc.GlobalLocalConv',
                                                  kernel_size=3)] * 3)
    with pytest.raises(ValueError, match='dim'):
        ConvNeXtParC(arch=arch, channel_mixer=dict(type='mmparc.ChannelBGU', dim=8))
    with pytest.raises(ValueError, match='use_grn'):
        ConvNeXtParC(arch=arch, use_grn=True, channel_mixer=dict(type='mmparc.ChannelBGU'))
