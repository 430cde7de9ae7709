"""ParCNetV2 backbone: shapes, numerical parity, API, bad input."""
import math
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import load_checkpoint

import mmparc  # noqa: F401
from mmparc.testing import official as ref
from mmparc.convert import convert_file, convert_official, unwrap_state_dict
from mmparc.models import ParCNetV2
from mmparc.ops import resample_kernel

from helpers import assert_close_scaled

CONFIGS = 'configs/imagenet_parcnetv2_{}.py'


def classifier_from_config(arch: str, kernel_mode: str = 'fixed'):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(CONFIGS.format(arch))
    cfg.model.backbone.kernel_mode = kernel_mode
    cfg.model.pop('data_preprocessor', None)
    cfg.model.pop('train_cfg', None)
    return MODELS.build(cfg.model).eval()


def save_official(tmp_path, state, wrap=None, name='official.pth'):
    path = tmp_path / name
    torch.save(state if wrap is None else wrap(state), path)
    return str(path)


# ------------------------------------------------------------------ parity
@pytest.mark.parametrize('arch', ['xt', 't', 's', 'b'])
def test_classifier_logits_match_official(tmp_path, arch):
    official = ref.random_official_state_dict(arch, seed=1)
    src = save_official(tmp_path, official, wrap=lambda s: {'model': s})
    dst = str(tmp_path / 'cls.pth')
    convert_file(src, dst, 'classifier')
    model = classifier_from_config(arch)
    load_checkpoint(model, dst, strict=True)
    x = torch.randn(2, 3, 224, 224)
    depths = ref.ARCHS[arch][0]
    with torch.no_grad():
        ours = model(x, mode='tensor')
        expected = ref.classify(official, x, depths)
    assert expected.abs().max() > 1e-2  # the comparison is not vacuous
    assert (ours - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize('size', [(224, 224), (160, 97)])
def test_global_mode_matches_official_interpolate(tmp_path, size):
    official = ref.random_official_state_dict('xt', seed=2)
    dst = str(tmp_path / 'cls.pth')
    convert_file(save_official(tmp_path, official), dst, 'classifier')
    model = classifier_from_config('xt', kernel_mode='global')
    load_checkpoint(model, dst, strict=True)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        ours = model(x, mode='tensor')
        expected = ref.classify(official, x, ref.ARCHS['xt'][0], interpolate=True)
        fixed = ref.classify(official, x, ref.ARCHS['xt'][0], interpolate=False)
    if size == (224, 224):  # trained lengths are exactly 2H-1 at 224
        torch.testing.assert_close(fixed, expected)
    else:
        assert (fixed - expected).abs().max() > 1e-3  # the two modes really differ here
    assert (ours - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
@pytest.mark.parametrize('size', [(97, 131), (64, 64)])
def test_dense_outputs_match_official_backbone(tmp_path, kernel_mode, size):
    official = ref.random_official_state_dict('t', dense_prefix='backbone.', seed=3)
    official['neck.lateral_convs.0.conv.weight'] = torch.randn(256, 64, 1, 1)
    src = save_official(tmp_path, {'state_dict': official, 'meta': {'epoch': 36}})
    dst = str(tmp_path / 'det.pth')
    converted = convert_file(src, dst)
    assert 'neck.lateral_convs.0.conv.weight' in converted
    model = ParCNetV2('t', kernel_mode=kernel_mode, out_indices=(0, 1, 2, 3),
                      gap_before_final_norm=False,
                      init_cfg=dict(type='Pretrained', checkpoint=dst, prefix='backbone.'))
    model.init_weights()
    model.eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        ours = model(x)
        expected = ref.dense(official, x, ref.ARCHS['t'][0], (0, 1, 2, 3),
                             interpolate=kernel_mode == 'global')
    for a, b in zip(ours, expected):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= 1e-4


@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
@pytest.mark.parametrize('size', [(512, 512), (800, 1216)])
def test_dense_outputs_match_official_beyond_training_size(kernel_mode, size):
    """Segmentation and detection sizes, the whole model (stem, four stages, their
    downsamplings and output norms) with xt's widths and one block per stage: in
    fixed mode the stage-0 maps (128x128, 200x304) outgrow the stored 111-tap
    kernels, in global mode the kernels are resampled far from them (up to 607 taps)."""
    official = {k: v for k, v in ref.random_official_state_dict('xt', dense_prefix='',
                                                                 seed=8).items()
                if not re.match(r'stages\.\d+\.[1-9]', k)}
    model = ParCNetV2(dict(depths=[1] * 4, dims=ref.ARCHS['xt'][1]), kernel_mode=kernel_mode,
                      out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    model.load_state_dict(official)  # strict: every key of the one-block model
    model.eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        ours = model(x)
        expected = ref.dense(official, x, [1] * 4, (0, 1, 2, 3),
                             interpolate=kernel_mode == 'global', prefix='')
    assert all(e.abs().max() > 1e-2 for e in expected)  # the comparison is not vacuous
    assert_close_scaled(ours, expected, atol=1e-4)


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
@pytest.mark.parametrize('size', [(224, 224), (512, 512), (511, 511), (112, 137), (33, 65)])
def test_output_shapes(kernel_mode, size):
    model = ParCNetV2('xt', kernel_mode=kernel_mode, out_indices=(0, 1, 2, 3),
                      gap_before_final_norm=False).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    h, w = size
    for i, (out, dim) in enumerate(zip(outs, [48, 96, 192, 320])):
        h = (h + 4 - 7) // 4 + 1 if i == 0 else (h - 1) // 2 + 1
        w = (w + 4 - 7) // 4 + 1 if i == 0 else (w - 1) // 2 + 1
        assert out.shape == (1, dim, h, w)
        assert torch.isfinite(out).all()


def test_classification_output_shape_and_negative_index():
    model = ParCNetV2('xt', out_indices=(-2, -1)).eval()
    assert model.out_indices == [2, 3]
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 96))
    assert [o.shape for o in outs] == [(2, 192), (2, 320)]


@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
def test_one_by_one_final_map_is_finite_forward_and_backward(kernel_mode):
    model = ParCNetV2('xt', kernel_mode=kernel_mode, out_indices=(0, 1, 2, 3),
                      gap_before_final_norm=False)
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    outs = model(x)
    assert outs[-1].shape[-2:] == (1, 1)
    sum(o.sum() for o in outs).backward()
    assert all(torch.isfinite(o).all() for o in outs)
    assert torch.isfinite(x.grad).all()
    # A constant input gives zero-length centred vectors in every norm.
    model.zero_grad()
    c = torch.zeros(1, 3, 32, 32, requires_grad=True)
    sum(o.sum() for o in model(c)).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_custom_arch_dict():
    model = ParCNetV2(dict(depths=[1, 1, 2], dims=[8, 16, 24]), out_indices=(0, 1, 2),
                      gap_before_final_norm=False)
    outs = model(torch.randn(1, 3, 40, 40))
    assert [o.shape[1] for o in outs] == [8, 16, 24]
    assert model.kernel_sizes == [111, 55, 27]
    # res-scale sits on the last two stages, as in the four-stage models.
    assert not hasattr(model.stages[0][0].res_scale1, 'scale')
    assert hasattr(model.stages[1][0].res_scale1, 'scale')


# -------------------------------------------------------------------- API
def test_frozen_stages_requires_grad_and_eval_mode_survive_train():
    model = ParCNetV2('xt', frozen_stages=2, out_indices=(0, 1, 2, 3),
                      gap_before_final_norm=False, drop_path_rate=0.1)
    assert model.train() is model
    for i in range(4):
        modules = [model.downsample_layers[i], model.stages[i], getattr(model, f'norm{i}')]
        for module in modules:
            for p in module.parameters():
                assert p.requires_grad == (i >= 2)
            for m in module.modules():
                assert m.training == (i >= 2)


def test_frozen_stages_zero_and_minus_one_freeze_nothing():
    for frozen in (0, -1):
        model = ParCNetV2('xt', frozen_stages=frozen)
        assert all(p.requires_grad for p in model.parameters())


class CheckpointSpy:
    """Counts ``torch.utils.checkpoint.checkpoint`` calls and the bytes autograd saves
    outside them (a checkpointed region saves its tensors to its own hooks)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import torch.utils.checkpoint as checkpoint_module
        self.calls = 0
        self.saved_bytes = 0
        original = checkpoint_module.checkpoint

        def spy(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(checkpoint_module, 'checkpoint', spy)

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self.saved_bytes += tensor.numel() * tensor.element_size()
        return tensor


def train_step_outputs(model: ParCNetV2, x: torch.Tensor, spy: CheckpointSpy,
                       input_grad: bool):
    """Outputs, input gradient (if asked for) and parameter gradients of one backward pass."""
    model.train()
    xi = x.clone().requires_grad_(input_grad)
    with torch.autograd.graph.saved_tensors_hooks(spy.pack, lambda t: t):
        y = model(xi)
    (y[0].square().mean() + y[1].mean()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return y, xi.grad, grads


@pytest.mark.parametrize('frozen_stages', [0, 2])
def test_with_cp_checkpoints_each_block_with_the_same_results(monkeypatch, frozen_stages):
    """``with_cp``: one ``torch.utils.checkpoint`` call per block that backward
    reaches, far fewer activations kept for backward, and the same outputs and
    gradients.  With frozen stages the input image needs no gradient (as in
    training), so neither do the frozen blocks: nothing to recompute there."""
    kwargs = dict(out_indices=(1, 3), gap_before_final_norm=False, frozen_stages=frozen_stages)
    torch.manual_seed(0)
    plain = ParCNetV2('xt', **kwargs)
    ckpt = ParCNetV2('xt', with_cp=True, **kwargs)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 80)
    plain_spy = CheckpointSpy(monkeypatch)
    input_grad = frozen_stages == 0
    expected = train_step_outputs(plain, x, plain_spy, input_grad)
    assert plain_spy.calls == 0
    ckpt_spy = CheckpointSpy(monkeypatch)
    ours = train_step_outputs(ckpt, x, ckpt_spy, input_grad)
    assert ckpt_spy.calls == sum(ckpt.depths[frozen_stages:])
    assert ckpt_spy.saved_bytes < 0.5 * plain_spy.saved_bytes, (ckpt_spy.saved_bytes,
                                                                plain_spy.saved_bytes)
    for a, b in zip(expected[0], ours[0]):
        torch.testing.assert_close(b, a)
    if input_grad:
        torch.testing.assert_close(ours[1], expected[1])
    assert set(ours[2]) == set(expected[2])
    frozen = [n for n, p in ckpt.named_parameters() if not p.requires_grad]
    assert bool(frozen) == bool(frozen_stages) and not set(frozen) & set(ours[2])
    for name, grad in expected[2].items():
        torch.testing.assert_close(ours[2][name], grad, msg=name)


def test_frozen_stages_unchanged_by_a_training_step():
    """One real AdamW step (weight decay on every parameter it is given): frozen
    stages keep their values bit for bit and stay deterministic (no drop path),
    the rest moves."""
    torch.manual_seed(0)
    model = ParCNetV2('xt', frozen_stages=2, out_indices=(1, 3), gap_before_final_norm=False,
                      drop_path_rate=0.3)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    x = torch.randn(2, 3, 64, 64)
    first = model(x)
    sum(o.square().mean() for o in first).backward()
    optimizer.step()
    frozen = ('downsample_layers.0.', 'stages.0.', 'norm0.', 'downsample_layers.1.',
              'stages.1.', 'norm1.')
    moved = 0
    for name, param in model.named_parameters():
        if name.startswith(frozen):
            assert param.grad is None and torch.equal(param, before[name]), f'{name} changed'
        elif param.grad.abs().max() > 0:  # (drop path may silence a block for the batch)
            assert not torch.equal(param, before[name]), f'trained {name} did not change'
            moved += 1
    assert moved > 100
    assert model.training and not model.stages[1].training
    again = model(x)  # the same (training) paths as the first pass
    torch.testing.assert_close(again[0], first[0])


def torch_has_cpu_kernels(dtype: torch.dtype) -> bool:
    """This torch's CPU convolution in ``dtype`` (float16: not in torch 2.1), asked here
    independently of the model's own check."""
    try:
        F.conv2d(torch.ones(1, 1, 3, 3, dtype=dtype), torch.ones(1, 1, 3, 3, dtype=dtype))
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize('dtype,tolerance', [(torch.bfloat16, 0.1), (torch.float16, 0.02)])
def test_low_precision_backbone_on_cpu_without_autocast(dtype, tolerance):
    """``model.to(dtype)`` and inputs in ``dtype``, no autocast: inference within the
    precision's tolerance of float32 (relative to each output's largest value) and a
    finite training step; where this torch has no CPU kernels in that dtype, a
    one-line refusal instead of an error from deep inside."""
    import copy
    official = ref.random_official_state_dict('xt', dense_prefix='', seed=3)
    model = ParCNetV2('xt', kernel_mode='global', out_indices=(0, 1, 2, 3),
                      gap_before_final_norm=False)
    model.load_state_dict(official)
    model.eval()
    x = torch.randn(1, 3, 64, 96)
    low = copy.deepcopy(model).to(dtype)
    if not torch_has_cpu_kernels(dtype):
        with pytest.raises(TypeError, match='float16 on the CPU') as refusal:
            low(x.to(dtype))
        assert '\n' not in str(refusal.value)
        return
    with torch.no_grad():
        expected = model(x)
        outs = low(x.to(dtype))
    for out, exp in zip(outs, expected):
        assert out.dtype == dtype
        assert (out.float() - exp).abs().max() <= tolerance * exp.abs().max()
    low.train()
    sum(o.float().square().mean() for o in low(x.to(dtype))).backward()
    for name, param in low.named_parameters():
        assert param.grad.dtype == dtype and torch.isfinite(param.grad).all(), name


def test_drop_path_rates_are_linear():
    model = ParCNetV2('t', drop_path_rate=0.4)
    rates = [getattr(b.drop_path, 'drop_prob', 0.0) for s in model.stages for b in s]
    assert rates[0] == 0.0 and math.isclose(rates[-1], 0.4, rel_tol=1e-6)
    assert len(rates) == 21


def test_default_init_matches_official():
    model = ParCNetV2('xt')
    model.init_weights()
    w = model.stages[0][0].mlp.fc1.weight
    # timm's (and mmengine's) trunc_normal_ cuts at +-2 absolute: a plain N(0, .02).
    assert abs(w.std().item() - 0.02) < 0.002
    assert model.stages[0][0].mlp.fc1.bias.abs().max() == 0
    assert torch.all(model.stages[0][0].norm1.weight == 1)


@pytest.mark.parametrize('package', ['mmdet', 'mmseg', 'mmpretrain'])
def test_built_from_each_registry_as_the_same_class(package):
    import importlib
    registry = importlib.import_module(f'{package}.registry').MODELS
    for name in ('ParCNetV2', 'mmparc.ParCNetV2'):
        model = registry.build(dict(type=name, arch='xt'))
        assert type(model) is ParCNetV2


@pytest.mark.parametrize('order', [['mmdet', 'mmseg', 'mmpretrain'], ['mmpretrain', 'mmdet', 'mmseg'],
                                   ['mmseg', 'mmpretrain', 'mmdet']])
def test_registration_independent_of_import_order(order):
    import subprocess
    import sys
    code = '\n'.join([f'import {p}.registry' for p in order[:1]] + ['import mmparc'] +
                     [f'import {p}.registry' for p in order[1:]] + [
        'from mmparc.models import ParCNetV2',
        'for p in %r:' % order,
        '    import importlib',
        '    reg = importlib.import_module(p + ".registry").MODELS',
        '    for n in ("ParCNetV2", "mmparc.ParCNetV2"):',
        '        assert type(reg.build(dict(type=n, arch="xt"))) is ParCNetV2, (p, n)',
        'print("ok")'])
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith('ok')


# ------------------------------------------------------------ conversion
@pytest.mark.parametrize('wrap', [
    lambda s: s,
    lambda s: {'state_dict': s, 'epoch': 3},
    lambda s: {'model': {f'module.{k}': v for k, v in s.items()}},
])
def test_conversion_round_trip(tmp_path, wrap):
    official = ref.random_official_state_dict('xt', seed=4)
    src = save_official(tmp_path, wrap(official))
    cls = convert_file(src, str(tmp_path / 'c.pth'), 'classifier')
    assert set(cls) == ({'backbone.' + k for k in official if k[:5] in ('downs', 'stage')}
                        | {'backbone.norm3.weight', 'backbone.norm3.bias',
                           'head.fc.weight', 'head.fc.bias'})
    back = {}
    for k, v in cls.items():
        k = k.replace('backbone.norm3.', 'norm.').replace('head.fc.', 'head.')
        back[k[len('backbone.'):] if k.startswith('backbone.') else k] = v
    assert set(back) == set(official)
    for k in official:
        assert torch.equal(back[k], official[k]), k
    bb = convert_file(src, str(tmp_path / 'b.pth'), 'backbone')
    model = ParCNetV2('xt')
    result = model.load_state_dict(bb, strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys == ['norm3.weight', 'norm3.bias']


def test_conversion_rejects_foreign_checkpoints(tmp_path):
    with pytest.raises(ValueError, match='not a ParCNetV2 checkpoint'):
        convert_official({'conv1.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match='unexpected keys'):
        convert_official({'stages.0.0.norm1.weight': torch.zeros(1), 'pos_embed': torch.zeros(1)})
    with pytest.raises(ValueError, match='no state dict'):
        unwrap_state_dict({'epoch': 3})
    with pytest.raises(ValueError, match='target'):
        convert_official(ref.random_official_state_dict('xt'), 'detector')


def test_classifier_checkpoint_into_dense_backbone_skips_final_norm(tmp_path):
    official = ref.random_official_state_dict('xt', seed=5)
    dst = str(tmp_path / 'cls.pth')
    convert_file(save_official(tmp_path, official), dst, 'classifier')
    model = ParCNetV2('xt', out_indices=(0, 1, 2, 3), gap_before_final_norm=False,
                      init_cfg=dict(type='Pretrained', checkpoint=dst, prefix='backbone.'))
    model.init_weights()
    assert torch.all(model.norm3.weight == 1)
    assert torch.equal(model.stages[3][1].mlp.fc1.weight, official['stages.3.1.mlp.fc1.weight'])


def test_kernel_resampling_on_load(tmp_path, monkeypatch):
    # A checkpoint pretrained at 448 (kernels 223/111/55/27) into 224-sized kernels.
    official = ref.random_official_state_dict('xt', kernel_sizes=[223, 111, 55, 27], seed=6)
    dst = str(tmp_path / 'bb.pth')
    convert_file(save_official(tmp_path, official), dst, 'backbone')
    model = ParCNetV2('xt', out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    import mmparc.models.layers.oversized_conv as oc
    warnings = []
    monkeypatch.setattr(oc, 'print_log', lambda msg, **kw: warnings.append((msg, kw)))
    load_checkpoint(model, dst, strict=False)
    assert len(warnings) == 2 * sum(ref.ARCHS['xt'][0])
    msg, kw = warnings[0]
    assert 'stages.0.0.token_mixer.dwconv1.conv_h.weight' in msg and '223 to 111' in msg
    assert kw['level'] == 30
    w = official['stages.1.2.token_mixer.dwconv1.conv_w.weight']
    resampled = F.interpolate(w, [1, 55], mode='bilinear', align_corners=True)
    torch.testing.assert_close(model.stages[1][2].token_mixer.dwconv1.conv_w.weight, resampled)
    assert model.stages[0][0].token_mixer.dwconv1.conv_h.weight.shape == (48, 1, 111, 1)


def test_resample_kernel_matches_official_bilinear():
    w = torch.randn(5, 1, 13, 1)
    for length in (1, 2, 13, 27, 111):
        expected = F.interpolate(w, [length, 1], mode='bilinear', align_corners=True)
        torch.testing.assert_close(resample_kernel(w.flatten(1), length),
                                   expected.flatten(1))


# -------------------------------------------------------------- bad input
def test_bad_input_channels():
    with pytest.raises(ValueError, match='3 input channels, got 4'):
        ParCNetV2('xt')(torch.randn(1, 4, 64, 64))


def test_input_smaller_than_stride():
    with pytest.raises(ValueError, match='smaller than the network stride 32'):
        ParCNetV2('xt')(torch.randn(1, 3, 31, 64))


def test_input_not_4d():
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        ParCNetV2('xt')(torch.randn(3, 64, 64))


def test_empty_batch():
    with pytest.raises(ValueError, match='non-empty batch'):
        ParCNetV2('xt')(torch.randn(0, 3, 64, 64))


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='huge'), 'unknown ParCNetV2 arch'),
    (dict(arch=dict(depths=[1, 2], dims=[8])), 'equal length'),
    (dict(arch=dict(depths=[1], dims=[8], heads=[1])), 'exactly the keys'),
    (dict(arch=dict(depths=[0], dims=[8])), 'positive ints'),
    (dict(out_indices=(4,)), 'out_indices'),
    (dict(out_indices=(-5,)), 'out_indices'),
    (dict(out_indices=(1, -3)), 'repeat'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(frozen_stages=-2), 'frozen_stages'),
    (dict(kernel_mode='dynamic'), 'kernel_mode'),
    (dict(kernel_sizes=[11, 11]), 'one positive odd int per stage'),
    (dict(kernel_sizes=[12, 11, 11, 11]), 'odd'),
    (dict(drop_path_rate=1.0), 'drop_path_rate'),
    (dict(in_channels=0), 'in_channels'),
    (dict(out_indices=1.0), 'out_indices'),
    (dict(out_indices=(True, )), 'out_indices'),
    (dict(out_indices=()), 'out_indices'),
    (dict(frozen_stages=True), 'frozen_stages'),
    (dict(arch=dict(depths=[True, 1], dims=[8, 16])), 'positive ints'),
    (dict(mlp_ratio=-1), 'mlp_ratio'),
    (dict(mlp_ratio=0), 'mlp_ratio'),
    (dict(mlp_ratio=True), 'mlp_ratio'),
    (dict(mlp_ratio=4.9), 'even'),
    (dict(drop_path_rate=True), 'drop_path_rate'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ParCNetV2(**{'arch': 'xt', **kwargs})


def test_l2_norm_rows_below_eps_are_constant_in_backward():
    from mmparc.models import L2LayerNorm
    norm = L2LayerNorm(8)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(8) + 1)
    x = torch.zeros(2, 8, 3, 1)  # (B, C, H, W): 3 positions per image
    x[0, :, 0, 0] = torch.randn(8)
    x[1, :, 2, 0] = 1e-9 * torch.randn(8)  # below eps: official divisor is the clamp
    x.requires_grad_(True)
    out = norm(x)
    torch.testing.assert_close(out, ref.l2_norm(x.detach(), norm.weight.detach()))
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[0, :, 0].abs().sum() > 0
    assert torch.all(x.grad[1] == 0) and torch.all(x.grad[0, :, 1:] == 0)
