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

from mmparc.engine import cpu_autocast_supports
from mmparc.ops import depthwise_conv as depthwise_module
from mmparc.ops import device_paths
from mmparc.ops import gating as gating_module
from mmparc.ops import l2_norm as l2_module
from mmparc.ops import oversized_conv as oversized_module
from mmparc.ops import strided_conv as strided_module
from mmparc.ops.dispatch import path_device
from mmparc.ops.oversized_conv import TOEPLITZ_MAX_RATIO, use_toeplitz

from helpers import check_against_official, max_diff, official_model


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
    model, official = official_model(kernel_mode, seed=7)
    with count_calls(monkeypatch,
                     l2_reference=(l2_module, 'l2_layer_norm_reference'),
                     depthwise_fast=(depthwise_module._DepthwiseConv2d, 'apply'),
                     strided_fast=(strided_module._StridedConv2d, 'apply'),
                     toeplitz=(oversized_module._ToeplitzPass, 'apply'),
                     gated_fast=(gating_module._GatedProjection, 'apply')) as counts:
        check_against_official(model, official, kernel_mode, lambda: device_paths(device))
    assert {name: count > 0 for name, count in counts.items()} == POLICIES[device]
    with device_paths(device):
        assert path_device(torch.zeros(1)) == device
    assert path_device(torch.zeros(1)) == 'cpu'  # the switch is scoped


@pytest.mark.parametrize('dtype,tolerance', [
    (torch.bfloat16, 0.05),
    pytest.param(torch.float16, 0.01, marks=pytest.mark.skipif(
        not cpu_autocast_supports(torch.float16),
        reason=f'needs float16 CPU autocast (torch {torch.__version__} takes bfloat16 only)'))])
@pytest.mark.parametrize('device', ['cpu', 'cuda'])
def test_autocast_against_fp32(dtype, tolerance, device):
    """Forward and gradients under CPU autocast, with the CPU's or CUDA's paths."""
    model, _ = official_model('global', seed=7)
    model.train()
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
