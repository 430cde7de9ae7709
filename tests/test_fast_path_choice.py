"""How fast paths are chosen and what inference keeps between calls.

* :func:`mmparc.ops.linear` picks oneDNN or ``F.linear`` by timing both on
  the running CPU (per shape class), unless ``MMPARC_LINEAR_BACKEND`` or
  :func:`~mmparc.ops.matmul.set_linear_backend` says which; either way the
  result is ``F.linear``'s.
* The oversized convolution keeps its Toeplitz matrices and resampled
  kernels between inference calls, and rebuilds them whenever the weight
  changes; training never uses them.
"""
import copy
from typing import Iterator, List

import pytest
import torch
import torch.nn.functional as F

from mmparc.models.layers import OversizedConv1d
from mmparc.ops import matmul, oversized_conv1d_reference, resample_kernel
from mmparc.ops import oversized_conv as oversized_module

needs_onednn = pytest.mark.skipif(not matmul.ONEDNN, reason='oneDNN runs on x86 CPUs only')


@pytest.fixture(autouse=True)
def fresh_calibration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts unmeasured, with no override, and leaves nothing behind."""
    monkeypatch.delenv(matmul.ENV_VAR, raising=False)
    matmul.set_linear_backend(None)
    matmul.reset_calibration()
    yield
    matmul.set_linear_backend(None)
    matmul.reset_calibration()


def spy(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> List[int]:
    calls: List[int] = []
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a - b).abs().max().item() <= 1e-5 * (1 + b.abs().max().item())


# ------------------------------------------------------- linear backend
@needs_onednn
@pytest.mark.parametrize('fast', ['onednn', 'blas'])
def test_calibration_picks_the_faster_backend(monkeypatch, fast):
    """Injected timings: the faster one is chosen, measured once per shape class."""
    measured = []

    def timer(x, weight, bias):
        measured.append(1)
        return (1.0, 2.0) if fast == 'onednn' else (2.0, 1.0)

    x, weight, bias = torch.randn(40, 12), torch.randn(7, 12), torch.randn(7)
    assert matmul.choose_backend(x, weight, bias, timer) == fast
    assert matmul.choose_backend(torch.randn(33, 12), weight, bias, timer) == fast  # same class
    assert len(measured) == 1
    matmul.choose_backend(torch.randn(300, 12), weight, bias, timer)  # another row bucket
    matmul.choose_backend(x, weight, None, timer)  # without bias
    assert len(measured) == 3
    (entry, ) = [v for k, v in matmul.calibration().items() if 'x 64 x 12' in k
                 and 'bias=True' in k]
    assert entry['choice'] == fast


@needs_onednn
def test_near_tie_runs_the_plain_path():
    x, weight = torch.randn(40, 12), torch.randn(7, 12)
    assert matmul.choose_backend(x, weight, None, lambda *a: (0.99, 1.0)) == 'blas'


@needs_onednn
@pytest.mark.parametrize('fast', ['onednn', 'blas'])
def test_linear_follows_the_measurement_and_equals_f_linear(monkeypatch, fast):
    monkeypatch.setattr(matmul, '_time_backends',
                        lambda *a: (1.0, 2.0) if fast == 'onednn' else (2.0, 1.0))
    onednn = spy(monkeypatch, matmul, '_onednn_linear')
    x, weight, bias = torch.randn(40, 12), torch.randn(7, 12), torch.randn(7)
    with torch.no_grad():
        out = matmul.linear(x, weight, bias)
    assert bool(onednn) == (fast == 'onednn')
    assert close(out, F.linear(x, weight, bias))
    # Training: forward and both gradients equal F.linear's on either backend.
    leaves = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    ref = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    grad = torch.randn(40, 7)
    ours = torch.autograd.grad(matmul.linear(*leaves), leaves, grad)
    theirs = torch.autograd.grad(F.linear(*ref), ref, grad)
    assert all(close(a, b) for a, b in zip(ours, theirs))


@needs_onednn
@pytest.mark.parametrize('how', ['env', 'function'])
@pytest.mark.parametrize('backend', ['onednn', 'blas'])
def test_override_skips_the_measurement(monkeypatch, how, backend):
    def timer(*args):
        raise AssertionError('an override must not measure')

    monkeypatch.setattr(matmul, '_time_backends', timer)
    if how == 'env':
        monkeypatch.setenv(matmul.ENV_VAR, backend)
    else:
        matmul.set_linear_backend(backend)
    onednn = spy(monkeypatch, matmul, '_onednn_linear')
    x, weight, bias = torch.randn(40, 12), torch.randn(7, 12), torch.randn(7)
    with torch.no_grad():
        out = matmul.linear(x, weight, bias)
    assert bool(onednn) == (backend == 'onednn')
    assert close(out, F.linear(x, weight, bias))
    assert matmul.calibration() == {}


def test_bad_override_is_refused(monkeypatch):
    with pytest.raises(ValueError, match='linear backend must be one of'):
        matmul.set_linear_backend('mkl')
    monkeypatch.setenv(matmul.ENV_VAR, 'fastest')
    with pytest.raises(ValueError, match="MMPARC_LINEAR_BACKEND='fastest'"):
        matmul.linear_backend()


@needs_onednn
def test_real_calibration_times_both_and_is_exact():
    """Unmocked: both backends are timed on a slice of the operands; the result is exact."""
    x, weight, bias = torch.randn(9000, 16)[:, :12], torch.randn(5, 12), torch.randn(5)
    onednn_s, blas_s = matmul._time_backends(x, weight, bias)
    assert 0 < onednn_s < 1 and 0 < blas_s < 1
    with torch.no_grad():
        assert close(matmul.linear(x, weight, bias), F.linear(x, weight, bias))
    (entry, ) = matmul.calibration().values()
    assert entry['choice'] in ('onednn', 'blas')


# ------------------------------------------------- inference constants
def channel_major(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(0, 1).contiguous().transpose(0, 1)


def reference(layer: OversizedConv1d, x: torch.Tensor) -> torch.Tensor:
    size = x.shape[layer.axis_index]
    kernel = layer.weight
    if layer.kernel_mode == 'global':
        kernel = resample_kernel(kernel.flatten(1), 2 * size - 1).view(
            kernel.shape[0], 1, *((-1, 1) if layer.axis_index == 2 else (1, -1)))
    return oversized_conv1d_reference(x, kernel.detach(), layer.axis_index)


@pytest.mark.parametrize('mode', ['fixed', 'global'])
@pytest.mark.parametrize('axis', ['h', 'w'])
def test_inference_builds_constants_once_per_weight_version(monkeypatch, mode, axis):
    torch.manual_seed(0)
    layer = OversizedConv1d(6, 15, axis, mode, 'toeplitz').eval()
    builds = spy(monkeypatch, oversized_module, 'toeplitz')
    resamples = spy(monkeypatch, oversized_module.F, 'interpolate')
    x = channel_major(torch.randn(2, 6, 9, 11))
    with torch.no_grad():
        first = layer(x)
        second = layer(x)
    assert len(builds) == 1 and len(resamples) == int(mode == 'global')
    assert torch.equal(first, second) and close(first, reference(layer, x))
    # global mode: another input size is another constant, the first stays valid
    y = channel_major(torch.randn(1, 6, 12, 13))
    with torch.inference_mode():
        assert close(layer(y), reference(layer, y))
        layer(x)
    assert len(builds) == 2


@pytest.mark.parametrize('mode', ['fixed', 'global'])
@pytest.mark.parametrize('change', ['optimizer', 'in_place', 'load_state_dict', 'data', 'to'])
def test_constants_follow_every_weight_change(mode, change):
    torch.manual_seed(0)
    layer = OversizedConv1d(6, 15, 'w', mode, 'toeplitz')
    x = channel_major(torch.randn(2, 6, 9, 11))
    layer.eval()
    with torch.no_grad():
        before = layer(x)
    if change == 'optimizer':  # a training step, then eval() again
        layer.train()
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
        layer(x.requires_grad_(False)).square().sum().backward()
        optimizer.step()
        layer.eval()
    elif change == 'in_place':
        with torch.no_grad():
            layer.weight.mul_(-2)
    elif change == 'load_state_dict':
        layer.load_state_dict({'weight': torch.randn_like(layer.weight)})
    elif change == 'data':
        layer.weight.data = torch.randn_like(layer.weight)
    else:
        layer.to(torch.float64)
        x = x.double()
    with torch.no_grad():
        after = layer(x)
    if change == 'to':  # same values, now computed in float64 from float64 constants
        assert after.dtype == torch.float64
        assert (after - reference(layer, x)).abs().max().item() < 1e-12
    else:
        assert not close(after, before)
        assert close(after, reference(layer, x))


@pytest.mark.parametrize('mode', ['fixed', 'global'])
def test_training_takes_exact_gradients_without_constants(monkeypatch, mode):
    torch.manual_seed(0)
    layer = OversizedConv1d(6, 15, 'h', mode, 'toeplitz')
    x = channel_major(torch.randn(2, 6, 9, 11))
    with torch.no_grad():
        layer.eval()(x)  # fills the constants
    assert len(layer._constants) > 0
    layer.train()
    for step in range(2):
        leaf = x.clone().requires_grad_(True)
        out = layer(leaf)
        grad = torch.randn_like(out)
        grads = torch.autograd.grad(out, [leaf, layer.weight], grad)
        ref_layer = copy.deepcopy(layer)
        ref_leaf = x.clone().requires_grad_(True)
        size = x.shape[2]
        kernel = ref_layer.weight
        if mode == 'global':
            kernel = resample_kernel(kernel.flatten(1), 2 * size - 1).view(6, 1, -1, 1)
        expected = oversized_conv1d_reference(ref_leaf, kernel, 2)
        ref_grads = torch.autograd.grad(expected, [ref_leaf, ref_layer.weight], grad)
        assert close(out, expected)
        assert all(close(a, b) for a, b in zip(grads, ref_grads))
        with torch.no_grad():
            layer.weight.add_(grads[1], alpha=-0.1)  # a plain SGD step between the two passes


def test_constants_are_not_state():
    layer = OversizedConv1d(6, 15, 'w', 'global').eval()
    with torch.no_grad():
        layer(channel_major(torch.randn(1, 6, 9, 11)))
    assert list(layer.state_dict()) == ['weight']
    assert not list(layer.buffers())


# ------------------------------------------------- autocast in inference
def test_autocast_inference_casts_the_weight_once_and_matches_autocast(monkeypatch):
    """bf16 CPU autocast, inference: the 1x1 layers get their bf16 weight from the layer's
    constants (one cast per weight version) and give autocast's result."""
    from mmparc.models.layers import GatedProjection, PointwiseConv2d
    from mmparc.ops import gated_projection_reference, pointwise_conv2d_reference
    torch.manual_seed(0)
    conv, gated = PointwiseConv2d(8, 6), GatedProjection(8, 5, gate_act='gelu')
    x = torch.randn(2, 8, 5, 7).contiguous(memory_format=torch.channels_last)
    casts = spy(monkeypatch, conv._constants, 'get')
    with torch.no_grad(), torch.autocast('cpu', torch.bfloat16):
        first, second = conv(x), conv(x)
        expected = pointwise_conv2d_reference(x, conv.weight, conv.bias)
        gated_out = gated(x, x)
        gated_expected = gated_projection_reference(x, x, gated.weight, True)
    assert first.dtype == gated_out.dtype == torch.bfloat16 == expected.dtype
    assert len(casts) == 2 and len(conv._constants) == 1  # one entry, built once
    assert torch.equal(first, second)
    assert (first.float() - expected.float()).abs().max().item() <= 0.02 * (
        1 + expected.float().abs().max().item())
    assert (gated_out.float() - gated_expected.float()).abs().max().item() <= 0.02 * (
        1 + gated_expected.float().abs().max().item())
    with torch.no_grad():
        conv.weight.mul_(-1)
        with torch.autocast('cpu', torch.bfloat16):
            flipped = conv(x)
    assert not close(flipped.float(), first.float())
    # Training under autocast casts as autocast does, with gradients to the fp32 weight.
    with torch.autocast('cpu', torch.bfloat16):
        conv(x).float().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32


# ------------------------------------------------------- deployed graphs
@pytest.mark.parametrize('dim', [2, 3])
def test_toeplitz_matmul_is_the_oversized_convolution(dim):
    from mmparc.ops.oversized_conv import toeplitz_matmul
    torch.manual_seed(0)
    x = torch.randn(2, 6, 9, 11)
    weight = torch.randn(6, 1, 15, 1) if dim == 2 else torch.randn(6, 1, 1, 15)
    assert close(toeplitz_matmul(x, weight, dim), oversized_conv1d_reference(x, weight, dim))


def test_deployed_layer_traces_products_with_constant_matrices():
    """A deployed layer records a MatMul with one constant per pass (no unfold/flip ops)."""
    torch.manual_seed(0)
    layer = OversizedConv1d(6, 15, 'w', 'global')
    x = torch.randn(1, 6, 9, 11)
    with torch.no_grad():
        expected = reference(layer, x)
        layer.switch_to_deploy(11)
        traced = torch.jit.trace(layer, (x, ))
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert 'aten::matmul' in kinds and not kinds & {'aten::unfold', 'aten::flip', 'aten::conv2d',
                                                    'aten::_convolution'}
    assert close(traced(torch.randn(1, 6, 9, 11) * 0 + x), expected)
