"""Every fast op in mmparc.ops against its reference formula, forward and gradients.

Each case runs on inputs that really take the fast path and asserts that it
did (the autograd Function or fused kernel ran, the reference did not); the
fallbacks are asserted the same way.  The references are also checked
against independent formulas (full-length kernels, conv2d).
"""
import contextlib
from typing import Callable, Iterator, List

import pytest
import torch
import torch.nn.functional as F

from mmparc.ops import (depthwise_conv2d, depthwise_conv2d_reference, gated_projection,
                        gated_projection_reference, l2_layer_norm, l2_layer_norm_reference,
                        oversized_conv1d, oversized_conv1d_reference, pointwise_conv2d,
                        pointwise_conv2d_reference, reference_ops, strided_conv2d,
                        strided_conv2d_reference)
from mmparc.ops import device_paths, linear, linear_reference
from mmparc.ops import depthwise_conv as depthwise_module
from mmparc.ops import gating as gated_module
from mmparc.ops import l2_norm as l2_module
from mmparc.ops import matmul as matmul_module
from mmparc.ops import oversized_conv as oversized_module
from mmparc.ops import strided_conv as strided_module
from mmparc.ops.oversized_conv import TOEPLITZ_MIN_SIZE, crop_kernel, toeplitz, use_toeplitz

from helpers import assert_close_scaled, max_diff

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


@pytest.fixture(autouse=True)
def _linear_on_onednn():
    """Hold ``linear`` to oneDNN here: these tests check that path (it is eligible or not
    by the same rules); the measured choice is tested in ``test_fast_path_choice.py``."""
    matmul_module.set_linear_backend('onednn')
    yield
    matmul_module.set_linear_backend(None)


def layout(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == 'channels_last':
        return x.contiguous(memory_format=torch.channels_last)
    if name == 'channel_major':  # how the mixer stores its maps
        return x.transpose(0, 1).contiguous().transpose(0, 1)
    return x.contiguous()


def storage_orders(x: torch.Tensor) -> tuple:
    """Which of contiguous, channels-last and channel-major storage ``x`` satisfies."""
    return (x.is_contiguous(), x.is_contiguous(memory_format=torch.channels_last),
            x.transpose(0, 1).is_contiguous())


def leaves(*tensors: torch.Tensor) -> List[torch.Tensor]:
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def forward_and_grads(fn: Callable, inputs: List[torch.Tensor], seed: int = 0):
    out = fn(*inputs)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    return out, torch.autograd.grad(out, inputs, grad)


@contextlib.contextmanager
def counting(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> Iterator[List[int]]:
    """Count calls of ``owner.name`` (a function or an autograd Function's ``apply``)."""
    calls: List[int] = []
    original = getattr(owner, name)

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    yield calls


# ---------------------------------------------------------------- L2 norm
def test_l2_norm_fused_path_matches_reference(monkeypatch):
    x = torch.randn(4, 5, 64) * 3 + 2
    weight, bias = torch.randn(64) + 4, torch.randn(64)
    for b in (None, bias):
        inputs = leaves(x, weight) + ([] if b is None else leaves(b))
        with counting(monkeypatch, l2_module, 'l2_layer_norm_reference') as fallbacks:
            out, grads = forward_and_grads(
                lambda x, w, *b: l2_layer_norm(x, w, b[0] if b else None, 1e-6), inputs)
        assert not fallbacks, 'the fused path did not run'
        ref_inputs = leaves(*inputs)
        expected, ref_grads = forward_and_grads(
            lambda x, w, *b: l2_layer_norm_reference(x, w, b[0] if b else None, 1e-6), ref_inputs)
        assert_close_scaled([out], [expected])
        assert_close_scaled(grads, ref_grads, rtol=1e-4)


def test_l2_norm_reference_is_the_official_formula():
    x, weight = torch.randn(3, 7, 32), torch.randn(32)
    centred = x - x.mean(-1, keepdim=True)
    official = centred / centred.norm(dim=-1, keepdim=True).clamp_min(1e-6) * weight
    torch.testing.assert_close(l2_layer_norm_reference(x, weight, None, 1e-6), official)


@pytest.mark.parametrize('case', ['constant_row', 'below_eps', 'huge'])
def test_l2_norm_falls_back_where_fusion_is_not_exact(monkeypatch, case):
    x = torch.randn(2, 3, 64) * 3 + 2
    if case == 'constant_row':  # zero centred vector: the clamp decides
        x[0, 0] = 1.5
    elif case == 'below_eps':
        x[0, 1] = 1.5 + torch.randn(64) * 1e-9
    else:  # variance overflows float32 inside the fused kernel
        x = x * 1e20
    weight = torch.randn(64) + 4
    with counting(monkeypatch, l2_module, 'l2_layer_norm_reference') as fallbacks:
        out, grads = forward_and_grads(lambda x, w: l2_layer_norm(x, w, None, 1e-6),
                                       leaves(x, weight))
    assert fallbacks, 'expected the reference formula for this input'
    expected, ref_grads = forward_and_grads(
        lambda x, w: l2_layer_norm_reference(x, w, None, 1e-6), leaves(x, weight))
    assert torch.isfinite(out).all() and torch.isfinite(expected).all()
    assert_close_scaled([out], [expected])
    assert_close_scaled(grads, ref_grads, rtol=1e-4)


def test_l2_norm_layer_falls_back_when_one_row_overflows(monkeypatch):
    """Through the model's layer (NCHW maps, channels-last view, the dispatcher's CPU
    choice): one position whose variance overflows float32 among ordinary ones sends
    the whole input to the reference formula, forward and backward.  The official
    formula, op by op in float32, is the expectation: its squared length overflows
    there too, so that position normalises to zero and the others are unaffected."""
    from mmparc.models.layers import L2LayerNorm
    norm = L2LayerNorm(64)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(64) + 4)
    x = torch.randn(2, 64, 3, 5)
    x[1, :, 2, 4] *= 1e20
    with counting(monkeypatch, l2_module, 'l2_layer_norm_reference') as fallbacks:
        out, grads = forward_and_grads(norm, leaves(x))
    assert len(fallbacks) == 1, 'expected the reference formula for this input'
    weight = norm.weight.detach()

    def official(x):
        centred = x - x.mean(1, keepdim=True)
        length = centred.pow(2).sum(1, keepdim=True).sqrt()
        return centred / length.clamp_min(1e-6) * weight.view(1, -1, 1, 1)

    expected, ref_grads = forward_and_grads(official, leaves(x))
    assert torch.isfinite(out).all() and torch.isfinite(grads[0]).all()
    lengths = expected.abs().amax(1)  # (B, H, W): zero only where the row overflowed
    assert lengths[1, 2, 4] == 0 and (lengths > 0).sum() == lengths.numel() - 1
    assert_close_scaled([out], [expected])
    assert_close_scaled(grads, ref_grads, rtol=1e-4)


def test_l2_norm_rows_below_eps_are_constant_in_backward():
    x = torch.full((1, 8), 2.0, requires_grad=True)
    l2_layer_norm_reference(x, torch.ones(8), None, 1e-6).sum().backward()
    assert (x.grad == 0).all()


# ------------------------------------------------------- depthwise conv
@pytest.mark.parametrize('memory', ['contiguous', 'channels_last', 'channel_major'])
@pytest.mark.parametrize('batch', [1, 3])
@pytest.mark.parametrize('kernel', [(7, 7), (1, 13), (13, 1)])
def test_depthwise_conv_fast_backward(monkeypatch, memory, batch, kernel):
    x = layout(torch.randn(batch, 6, 9, 14), memory)
    weight = torch.randn(6, 1, *kernel) * 0.1
    with counting(monkeypatch, depthwise_module._DepthwiseConv2d, 'apply') as fast:
        out, grads = forward_and_grads(depthwise_conv2d, leaves(x, weight))
    assert fast, 'the fast backward did not run'
    expected, ref_grads = forward_and_grads(depthwise_conv2d_reference, leaves(x, weight))
    independent = F.conv2d(x, weight, padding=(kernel[0] // 2, kernel[1] // 2), groups=6)
    assert_close_scaled([out, expected], [expected, independent])
    assert_close_scaled(grads, ref_grads)
    if memory != 'contiguous' and batch > 1:  # the storage order is kept
        assert storage_orders(out) == storage_orders(x)
    with torch.no_grad():
        assert_close_scaled([depthwise_conv2d(x, weight)], [expected])


def test_depthwise_conv_rejects_even_kernels():
    with pytest.raises(ValueError, match='odd'):
        depthwise_conv2d(torch.randn(1, 2, 5, 5), torch.randn(2, 1, 4, 3))


# --------------------------------------------------------- strided conv
@pytest.mark.parametrize('geometry', [(7, 4, 2), (3, 2, 1)])
def test_strided_conv_fast_weight_gradient(monkeypatch, geometry):
    kernel, stride, padding = geometry
    x = torch.randn(2, 5, 23, 30).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(8, 5, kernel, kernel).contiguous(memory_format=torch.channels_last)
    bias = torch.randn(8)
    fn = (lambda f: lambda x, w, b: f(x, w, b, (stride, stride), (padding, padding)))
    with counting(monkeypatch, strided_module._StridedConv2d, 'apply') as fast:
        out, grads = forward_and_grads(fn(strided_conv2d), leaves(x, weight, bias))
    assert fast
    expected, ref_grads = forward_and_grads(fn(strided_conv2d_reference), leaves(x, weight, bias))
    assert_close_scaled([out], [expected])
    assert_close_scaled(grads, ref_grads)


# ---------------------------------------------------------------- linear
needs_onednn = pytest.mark.skipif(not matmul_module.ONEDNN,
                                  reason='oneDNN runs on x86 CPUs only')


def test_onednn_is_available_on_x86():
    """The fast path exists wherever the project's CI runs (x86 Linux, registry torch)."""
    import platform
    if platform.machine().lower() in ('x86_64', 'amd64'):
        assert matmul_module.ONEDNN


def test_onednn_self_check_refuses_a_changed_op(monkeypatch):
    """A torch whose internal op is gone or changed runs F.linear instead."""
    assert matmul_module.ONEDNN == (matmul_module._X86 and matmul_module._onednn_works())

    def changed(*args):
        raise RuntimeError('_linear_pointwise() expected at most 5 arguments')

    monkeypatch.setattr(torch.ops.mkldnn, '_linear_pointwise', changed, raising=False)
    assert not matmul_module._onednn_works()
    monkeypatch.setattr(torch.ops.mkldnn, '_linear_pointwise',
                        lambda x, w, b, *rest: x @ w.t(), raising=False)  # bias dropped
    assert not matmul_module._onednn_works()


@needs_onednn
@pytest.mark.parametrize('rows', ['contiguous', 'strided', 'transposed', 'one'])
@pytest.mark.parametrize('bias', [False, True])
def test_linear_inference_runs_onednn(monkeypatch, rows, bias):
    base = torch.randn(40, 24)
    x = {'contiguous': base[:, :12], 'strided': base[::2, 5:17],
         'transposed': torch.randn(12, 33).t(), 'one': base[:1, :12]}[rows]
    if rows == 'contiguous':
        x = x.contiguous()
    weight, b = torch.randn(7, 12), (torch.randn(7) if bias else None)
    with counting(monkeypatch, matmul_module, '_onednn_linear') as fast, torch.no_grad():
        out = linear(x, weight, b)
    assert fast and out.is_contiguous()
    expected = x.double() @ weight.double().t() + (0 if b is None else b.double())
    assert_close_scaled([out], [expected.float()])


@needs_onednn
def test_linear_training_runs_onednn_forward_and_backward(monkeypatch):
    x, weight, bias = torch.randn(50, 12)[::2], torch.randn(7, 12), torch.randn(7)
    with counting(monkeypatch, matmul_module, '_onednn_linear') as fast:
        out, grads = forward_and_grads(linear, leaves(x, weight, bias))
    assert len(fast) == 3  # the product, then grad_x and grad_weight
    expected, ref_grads = forward_and_grads(linear_reference, leaves(x, weight, bias))
    assert_close_scaled([out], [expected])
    assert_close_scaled(grads, ref_grads)


def test_linear_takes_matrices():
    with pytest.raises(ValueError, match='2-D x and weight'):
        linear(torch.randn(2, 3, 4), torch.randn(5, 4), None)


@needs_onednn
@pytest.mark.parametrize('bias', ['strided', 'expanded'])
def test_linear_reads_any_bias_layout(bias):
    x, weight = torch.randn(9, 6), torch.randn(5, 6)
    b = torch.randn(10)[::2] if bias == 'strided' else torch.randn(1).expand(5)
    with torch.no_grad():
        assert_close_scaled([linear(x, weight, b)], [F.linear(x, weight, b)])
        assert_close_scaled([pointwise_conv2d(x.view(1, 6, 3, 3), weight, b, False)],
                            [pointwise_conv2d_reference(x.view(1, 6, 3, 3), weight, b)])


def test_linear_forward_mode_ad_carries_tangents():
    import torch.autograd.forward_ad as fwad
    x, weight, bias = torch.randn(9, 6), torch.randn(4, 6), torch.randn(4)
    tangent = torch.randn(9, 6)
    with fwad.dual_level():
        out = fwad.unpack_dual(linear(fwad.make_dual(x, tangent), weight, bias))
    assert out.tangent is not None
    assert_close_scaled([out.primal, out.tangent], [F.linear(x, weight, bias), tangent @ weight.t()])


@pytest.mark.parametrize('case', ['float64', 'bfloat16', 'cuda_paths', 'empty', 'autocast',
                                  'mkldnn_off'])
def test_linear_falls_back_to_the_reference(monkeypatch, case):
    x, weight, bias = torch.randn(9, 6), torch.randn(4, 6), torch.randn(4)
    if case == 'float64':
        x, weight, bias = x.double(), weight.double(), bias.double()
    if case == 'bfloat16':
        x, weight, bias = x.bfloat16(), weight.bfloat16(), bias.bfloat16()
    if case == 'empty':
        x = x[:0]
    inputs = leaves(x, weight, bias)
    paths = {'cuda_paths': device_paths('cuda'),
             'autocast': torch.autocast('cpu', torch.bfloat16),
             }.get(case, contextlib.nullcontext())
    if case == 'mkldnn_off':
        monkeypatch.setattr(torch.backends.mkldnn, 'enabled', False)
    with counting(monkeypatch, matmul_module, '_onednn_linear') as fast, paths:
        out = linear(*inputs)
        expected = linear_reference(*inputs)
    assert not fast
    assert torch.equal(out, expected) and out.dtype == expected.dtype
    grads = torch.autograd.grad(out.float().sum(), inputs) if out.numel() else None
    if grads is not None:
        assert all(g is not None for g in grads)


# ------------------------------------------------------- pointwise conv
@pytest.mark.parametrize('memory', ['contiguous', 'channels_last'])
@pytest.mark.parametrize('weight_dims', [2, 4])
def test_pointwise_conv_writes_channel_major(monkeypatch, memory, weight_dims):
    x = layout(torch.randn(3, 6, 5, 7), memory)
    weight = torch.randn(10, 6, *[1] * (weight_dims - 2))
    bias = torch.randn(10)
    with counting(monkeypatch, matmul_module._Linear, 'apply') as fast, \
            counting(monkeypatch, matmul_module, '_onednn_linear') as onednn:
        out, grads = forward_and_grads(pointwise_conv2d, leaves(x, weight, bias))
    # Forward and both gradient products on oneDNN where it runs.
    assert len(fast) == len(onednn) / 3 == int(matmul_module.ONEDNN)
    assert out.transpose(0, 1).is_contiguous()  # (C, N, H, W) storage
    expected, ref_grads = forward_and_grads(pointwise_conv2d_reference, leaves(x, weight, bias))
    assert_close_scaled([out], [expected])
    assert_close_scaled(grads, ref_grads)
    with reference_ops():
        assert not pointwise_conv2d(x, weight, bias).transpose(0, 1).is_contiguous()  # reference


@pytest.mark.parametrize('channel_major', [False, True])
@pytest.mark.parametrize('memory', ['contiguous', 'channels_last'])
def test_pointwise_conv_inference_layouts(monkeypatch, channel_major, memory):
    """Inference writes channel-major (``channel_major``) or channels-last rows, on oneDNN."""
    x = layout(torch.randn(2, 6, 5, 7), memory)
    weight, bias = torch.randn(10, 6), torch.randn(10)
    with counting(monkeypatch, matmul_module, '_onednn_linear') as fast, torch.no_grad():
        out = pointwise_conv2d(x, weight, bias, channel_major)
    assert bool(fast) == matmul_module.ONEDNN
    if channel_major:
        assert out.transpose(0, 1).is_contiguous()
    else:
        assert out.is_contiguous(memory_format=torch.channels_last)
    assert_close_scaled([out], [pointwise_conv2d_reference(x, weight, bias)])
    # Training writes channel-major either way (the gated projection's backward reads it).
    train = pointwise_conv2d(*leaves(x, weight, bias), channel_major)
    assert train.transpose(0, 1).is_contiguous()


@pytest.mark.parametrize('grad', [False, True])
@pytest.mark.parametrize('channel_major', [False, True])
def test_pointwise_and_gated_projection_take_empty_batches(grad, channel_major):
    x, weight = torch.randn(0, 6, 5, 7), torch.randn(4, 6)
    inputs = leaves(x, weight) if grad else [x, weight]
    with torch.set_grad_enabled(grad):
        out = pointwise_conv2d(*inputs, None, channel_major)
        gated = gated_projection(inputs[0], inputs[0], inputs[1], True)
    assert out.shape == gated.shape == (0, 4, 5, 7)
    if grad:
        (out.sum() + gated.sum()).backward()
        assert inputs[0].grad.shape == x.shape


# ----------------------------------------------------- gated projection
@pytest.mark.parametrize('gelu', [False, True])
@pytest.mark.parametrize('memory', ['channel_major', 'channels_last', 'contiguous'])
def test_gated_projection_recomputes_and_matches(monkeypatch, gelu, memory):
    value = layout(torch.randn(2, 6, 5, 7), memory)
    gate = layout(torch.randn(2, 6, 5, 7), memory)
    weight = torch.randn(4, 6, 1, 1)
    fn = (lambda f: lambda v, g, w: f(v, g, w, gelu))
    with counting(monkeypatch, gated_module._GatedProjection, 'apply') as fast, \
            counting(monkeypatch, matmul_module, '_onednn_linear') as onednn:
        out, grads = forward_and_grads(fn(gated_projection), leaves(value, gate, weight))
    assert fast and len(onednn) == 3 * int(matmul_module.ONEDNN)
    assert out.is_contiguous(memory_format=torch.channels_last)
    expected, ref_grads = forward_and_grads(fn(gated_projection_reference),
                                            leaves(value, gate, weight))
    independent = F.conv2d(value * (F.gelu(gate) if gelu else gate), weight)
    assert_close_scaled([out, expected], [expected, independent])
    assert_close_scaled(grads, ref_grads)
    with counting(monkeypatch, matmul_module, '_onednn_linear') as onednn, torch.no_grad():
        assert_close_scaled([gated_projection(value, gate, weight, gelu)], [expected])
    assert bool(onednn) == matmul_module.ONEDNN


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('memory', ['channels_last', 'contiguous'])
def test_gated_projection_inference_leaves_its_inputs(dtype, memory):
    """The halves of one map (as the MLP's fc1 gives them): GELU runs in place only
    on a copy of its own, never on the caller's gate."""
    hidden = layout(torch.randn(2, 12, 5, 7), memory).to(dtype)
    value, gate = hidden.split(6, dim=1)
    weight = torch.randn(4, 6).to(dtype)
    before = hidden.clone()
    with torch.inference_mode():
        out = gated_projection(value, gate, weight, True)
    assert torch.equal(hidden, before)
    expected = gated_projection_reference(value.float(), gate.float(), weight.float(), True)
    assert_close_scaled([out.float()], [expected], 1e-5 if dtype == torch.float32 else 2e-2)
    dense = layout(torch.randn(2, 6, 5, 7), 'channels_last').to(dtype)  # dense pixel rows
    kept = dense.clone()
    with torch.inference_mode():
        gated_projection(dense, dense, weight, True)
    assert torch.equal(dense, kept)


# -------------------------------------------------------- oversized conv
@pytest.mark.parametrize('size', [1, 2, 7, 56])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_toeplitz_kernel_gradient_sums_the_diagonals(size, dtype):
    """The Toeplitz pass's kernel gradient, against autograd through :func:`toeplitz`."""
    torch.manual_seed(size)
    kernel = torch.randn(5, 2 * size - 1, requires_grad=True)
    grad_matrix = torch.randn(5, size, size).to(dtype)
    (toeplitz(kernel, size) * grad_matrix.float()).sum().backward()
    ours = oversized_module._toeplitz_kernel_grad(grad_matrix)
    assert ours.dtype == torch.float32
    assert_close_scaled([ours], [kernel.grad])


def full_length(x: torch.Tensor, kernel_h: torch.Tensor, kernel_w: torch.Tensor) -> torch.Tensor:
    """Independent formula: conv2d with the whole (uncropped) 1-D kernels."""
    channels = x.shape[1]
    x = F.conv2d(x, kernel_h[:, None, :, None], padding=(kernel_h.shape[1] // 2, 0),
                 groups=channels)
    return F.conv2d(x, kernel_w[:, None, None, :], padding=(0, kernel_w.shape[1] // 2),
                    groups=channels)


def oversized_conv2d(x, kernel_h, kernel_w, impl='auto'):
    """The oversized convolution of ``(C, K)`` kernels: the vertical, then the horizontal pass."""
    x = oversized_conv1d(x, kernel_h[:, None, :, None], 2, impl)
    return oversized_conv1d(x, kernel_w[:, None, None, :], 3, impl)


def oversized_conv2d_reference(x, kernel_h, kernel_w):
    x = oversized_conv1d_reference(x, kernel_h[:, None, :, None], 2)
    return oversized_conv1d_reference(x, kernel_w[:, None, None, :], 3)


@pytest.mark.parametrize('impl', ['auto', 'direct', 'toeplitz'])
@pytest.mark.parametrize('size', [(7, 7), (14, 9), (33, 20), (56, 56), (8, 12), (1, 5), (6, 130)])
@pytest.mark.parametrize('memory', ['contiguous', 'channels_last', 'channel_major'])
@pytest.mark.parametrize('batch', [1, 3])
def test_oversized_conv_matches_reference(monkeypatch, impl, size, memory, batch):
    height, width = size
    x = layout(torch.randn(batch, 6, height, width), memory)
    kernel_h, kernel_w = torch.randn(6, 27) * 0.1, torch.randn(6, 2 * width + 5) * 0.1
    gemm = [use_toeplitz(height, crop_kernel(kernel_h, height).shape[1], impl),
            use_toeplitz(width, crop_kernel(kernel_w, width).shape[1], impl)]
    fn = (lambda f: lambda x, h, w: f(x, h, w, impl))
    with counting(monkeypatch, oversized_module._ToeplitzPass, 'apply') as toeplitz_calls:
        out, grads = forward_and_grads(fn(oversized_conv2d), leaves(x, kernel_h, kernel_w))
    assert len(toeplitz_calls) == sum(gemm)
    assert storage_orders(out) == storage_orders(x)  # the storage order is kept
    expected, ref_grads = forward_and_grads(oversized_conv2d_reference,
                                            leaves(x, kernel_h, kernel_w))
    assert_close_scaled([out, expected], [expected, full_length(x, kernel_h, kernel_w)])
    assert_close_scaled(grads, ref_grads, rtol=1e-4)
    with torch.no_grad():
        assert_close_scaled([fn(oversized_conv2d)(x, kernel_h, kernel_w)], [expected])


def test_oversized_conv_rejects_other_dims_and_kernels():
    with pytest.raises(ValueError, match='dim'):
        oversized_conv1d(torch.randn(1, 2, 5, 5), torch.randn(2, 1, 3, 1), 1)
    with pytest.raises(ValueError, match=r'\(C, 1, 1, K\) for dim=3'):
        oversized_conv1d(torch.randn(1, 2, 5, 5), torch.randn(2, 1, 3, 1), 3)


def test_toeplitz_matrix_is_the_convolution():
    kernel = torch.randn(3, 9)
    for size in (1, 4, 5, 12):
        matrix = toeplitz(kernel, size)
        x = torch.randn(3, size, 2)
        expected = F.conv1d(x.transpose(1, 2).reshape(1, 6, size), kernel.repeat_interleave(2, 0)
                            [:, None], padding=4, groups=6).view(3, 2, size).transpose(1, 2)
        torch.testing.assert_close(torch.bmm(matrix, x), expected)


def test_auto_rule():
    assert use_toeplitz(56, 111, 'auto') and use_toeplitz(200, 111, 'auto')
    assert use_toeplitz(TOEPLITZ_MIN_SIZE - 1, 13, 'auto')  # zero-padded to 8
    assert not use_toeplitz(512, 13, 'auto')  # dense matrix 40x the kernel
    assert use_toeplitz(5, 9, 'toeplitz') and not use_toeplitz(56, 111, 'direct')
    with pytest.raises(ValueError, match='impl'):
        use_toeplitz(5, 9, 'fft')


def test_crop_keeps_the_taps_that_meet_data():
    kernel = torch.arange(11.).view(1, 11)
    assert crop_kernel(kernel, 3).tolist() == [[3., 4., 5., 6., 7.]]
    assert crop_kernel(kernel, 20) is kernel
    with pytest.raises(ValueError, match='odd'):
        crop_kernel(torch.randn(1, 4), 3)


# ------------------------------------------------- switch and recording
def test_reference_switch_runs_every_reference(monkeypatch):
    x = torch.randn(2, 6, 9, 14, requires_grad=True)
    with counting(monkeypatch, oversized_module._ToeplitzPass, 'apply') as gemm, \
            counting(monkeypatch, depthwise_module._DepthwiseConv2d, 'apply') as dw, \
            counting(monkeypatch, l2_module, 'l2_layer_norm_reference') as norm_ref:
        with reference_ops():
            oversized_conv2d(x, torch.randn(6, 17), torch.randn(6, 27), 'toeplitz')
            depthwise_conv2d(x, torch.randn(6, 1, 7, 7))
            l2_layer_norm(x.permute(0, 2, 3, 1), torch.ones(6), None, 1e-6)
        assert not gemm and not dw and norm_ref
        oversized_conv2d(x, torch.randn(6, 17), torch.randn(6, 27), 'toeplitz')
        assert gemm


def test_tracing_records_standard_operators_only():
    """What jit tracing (ONNX export, mmengine's FLOP counter) sees: no custom Function."""

    def ops(x, kh, kw, w, weight1x1):
        y = oversized_conv2d(x, kh, kw, 'toeplitz') + depthwise_conv2d(x, w)
        y = gated_projection(pointwise_conv2d(y, weight1x1, None), y, weight1x1, True)
        return l2_layer_norm(y.permute(0, 2, 3, 1), None, None, 1e-6)

    args = (torch.randn(1, 6, 9, 14, requires_grad=True), torch.randn(6, 17), torch.randn(6, 27),
            torch.randn(6, 1, 7, 7), torch.randn(6, 6, 1, 1))
    graph = torch.jit.trace(ops, args, check_trace=False).graph
    kinds = {node.kind() for node in graph.nodes()}
    assert 'prim::PythonOp' not in kinds
    assert 'aten::_convolution' in kinds and 'aten::bmm' not in kinds


# ------------------------------------------------------------ autocast
def test_autocast_bf16_cpu_oversized_conv():
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    kernel_h, kernel_w = torch.randn(4, 31, requires_grad=True), torch.randn(4, 31)
    assert use_toeplitz(16, 31, 'auto')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = oversized_conv2d(x, kernel_h, kernel_w)
    expected = oversized_conv2d_reference(x.detach(), kernel_h.detach(), kernel_w)
    assert max_diff(out, expected) < 0.05 * expected.abs().max()
    out.float().sum().backward()
    assert x.grad.dtype == torch.float32 and kernel_h.grad.dtype == torch.float32


# ----------------------------------------------------------------- CUDA
@CUDA
@pytest.mark.parametrize('impl', ['auto', 'toeplitz'])
def test_cuda_oversized_conv_forward_and_gradients(impl):
    x = torch.randn(2, 6, 33, 20, device='cuda')
    kernel_h, kernel_w = torch.randn(6, 27, device='cuda'), torch.randn(6, 39, device='cuda')
    out, grads = forward_and_grads(lambda x, h, w: oversized_conv2d(x, h, w, impl),
                                   leaves(x, kernel_h, kernel_w))
    expected, ref_grads = forward_and_grads(oversized_conv2d_reference,
                                            leaves(x.cpu(), kernel_h.cpu(), kernel_w.cpu()))
    assert_close_scaled([out.cpu()], [expected], rtol=1e-4)
    assert_close_scaled([g.cpu() for g in grads], ref_grads, rtol=1e-4)
