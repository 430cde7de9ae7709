"""The paths other devices take, run here on the CPU through ``device_paths``.

Under ``device_paths('cuda')`` every op chooses what it would for CUDA
tensors (the op-by-op L2 norm, PyTorch's own depthwise and strided
convolution backward, the device's Toeplitz/direct rule), and an unknown
device runs every reference.  Each is held to the official formulation,
forward and gradients, in both kernel modes, and under fp16/bf16 autocast
against fp32.
"""
import contextlib

import pytest
import torch

import reference_official as ref
from mmparc.models import ParCNetV2
from mmparc.ops import depthwise_conv as depthwise_module
from mmparc.ops import device_paths
from mmparc.ops import gating as gating_module
from mmparc.ops import l2_norm as l2_module
from mmparc.ops import oversized_conv as oversized_module
from mmparc.ops import strided_conv as strided_module
from mmparc.ops.dispatch import path_device
from mmparc.ops.oversized_conv import TOEPLITZ_MAX_RATIO, use_toeplitz


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


def assert_close_scaled(ours, expected, rtol=1e-5, atol=1e-4):
    for a, b in zip(ours, expected):
        assert a is not None and a.shape == b.shape
        assert max_diff(a, b) <= atol + rtol * b.abs().max().item()


@contextlib.contextmanager
def count_calls(monkeypatch, **targets):
    """``name=(owner, attribute)``: count each call, yield the counts."""
    counts = {name: 0 for name in targets}
    for name, (owner, attribute) in targets.items():
        original = getattr(owner, attribute)

        def spy(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, attribute, spy)
    yield counts


def official_model(kernel_mode):
    official = ref.random_official_state_dict('xt', dense_prefix='', seed=7)
    model = ParCNetV2('xt', kernel_mode=kernel_mode, out_indices=(0, 1, 2, 3),
                      gap_before_final_norm=False)
    model.load_state_dict(official)
    return model.train(), official


# (device policy, which fast paths must run) -> a CUDA tensor's choices, and
# an unknown device's (every op by its reference).
POLICIES = {
    'cuda': dict(l2_reference=True, depthwise_fast=False, strided_fast=False, toeplitz=True,
                 gated_fast=True),
    'mps': dict(l2_reference=True, depthwise_fast=False, strided_fast=False, toeplitz=False,
                gated_fast=False),
}


@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
@pytest.mark.parametrize('device', sorted(POLICIES))
def test_other_device_paths_match_official(monkeypatch, kernel_mode, device):
    model, official = official_model(kernel_mode)
    x = torch.randn(2, 3, 97, 130)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    params = {k: v.clone().requires_grad_(True) for k, v in official.items()}
    with count_calls(monkeypatch,
                     l2_reference=(l2_module, 'l2_layer_norm_reference'),
                     depthwise_fast=(depthwise_module._DepthwiseConv2d, 'apply'),
                     strided_fast=(strided_module._StridedConv2d, 'apply'),
                     toeplitz=(oversized_module._ToeplitzPass, 'apply'),
                     gated_fast=(gating_module._GatedProjection, 'apply')) as counts:
        with device_paths(device):
            assert path_device(x) == device
            outs = model(x1)
    assert {name: count > 0 for name, count in counts.items()} == POLICIES[device]
    expected = ref.dense(params, x2, ref.ARCHS['xt'][0], (0, 1, 2, 3),
                         interpolate=kernel_mode == 'global', prefix='')
    assert_close_scaled(outs, expected)
    grads = [torch.randn_like(o) for o in outs]
    torch.autograd.backward(outs, grads)
    torch.autograd.backward(expected, grads)
    named = dict(model.named_parameters())
    assert_close_scaled([x1.grad] + [named[k].grad for k in params],
                        [x2.grad] + [params[k].grad for k in params])
    assert path_device(x) == 'cpu'  # the switch is scoped


@pytest.mark.parametrize('dtype,tolerance', [(torch.bfloat16, 0.05), (torch.float16, 0.01)])
@pytest.mark.parametrize('device', ['cpu', 'cuda'])
def test_autocast_against_fp32(dtype, tolerance, device):
    """Forward and gradients under CPU autocast, with the CPU's or CUDA's paths."""
    model, _ = official_model('global')
    x = torch.randn(2, 3, 64, 96)
    with device_paths(device):
        expected = model(x)
        sum(o.square().mean() for o in expected).backward()
        fp32_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        model.zero_grad()
        with torch.autocast('cpu', dtype=dtype):
            outs = model(x)
        sum(o.float().square().mean() for o in outs).backward()
    for out, ref_out in zip(outs, expected):
        assert max_diff(out, ref_out) <= tolerance * ref_out.abs().max().item()
    # Gradients: within the precision's tolerance of the largest gradient of
    # each tensor, and in fp32 (autocast keeps parameters and their grads fp32).
    for name, param in model.named_parameters():
        assert param.grad.dtype == torch.float32 and torch.isfinite(param.grad).all()
        scale = fp32_grads[name].abs().max().item()
        assert max_diff(param.grad, fp32_grads[name]) <= 4 * tolerance * scale + 1e-8, name


def test_toeplitz_rule_is_chosen_per_device():
    assert set(TOEPLITZ_MAX_RATIO) == {'cpu', 'cuda'}
    assert use_toeplitz(200, 111, 'auto', 'cuda') and not use_toeplitz(512, 13, 'auto', 'cuda')
    assert not use_toeplitz(8, 15, 'auto', 'mps')  # no rule: never GEMM
    assert use_toeplitz(8, 15, 'toeplitz', 'mps')  # an explicit choice stands
