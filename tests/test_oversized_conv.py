"""The fast paths (Toeplitz GEMM, fused norm, custom backward passes) against direct formulas."""
import pytest
import torch
import torch.nn.functional as F

import reference_official as ref
import mmparc.models.parcnetv2 as parcnetv2
from mmparc.models import OversizedConv2d, ParCNetV2, conv1d_same
from mmparc.models.norms import l2_layer_norm, l2_layer_norm_reference
from mmparc.models.oversized_conv import (TOEPLITZ_MIN_SIZE, depthwise_conv2d, instance_kernels,
                                          oversized_channel_major, toeplitz, use_toeplitz)

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def direct(x, weight_h, weight_w, mode):
    """Reference: stretch (global) then conv2d each full-length 1-D kernel."""
    channels, height, width = x.shape[1:]
    if mode == 'global':
        weight_h = F.interpolate(weight_h, [2 * height - 1, 1], mode='bilinear', align_corners=True)
        weight_w = F.interpolate(weight_w, [1, 2 * width - 1], mode='bilinear', align_corners=True)
    x = F.conv2d(x, weight_h, padding=(weight_h.shape[2] // 2, 0), groups=channels)
    return F.conv2d(x, weight_w, padding=(0, weight_w.shape[3] // 2), groups=channels)


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


def assert_grads_close(ours, expected, atol=1e-4, rtol=1e-5):
    """Within 1e-4, or float rounding of a large sum (relative to its scale)."""
    for a, b in zip(ours, expected):
        assert max_diff(a, b) <= atol + rtol * b.abs().max().item()


def trained_like(conv):
    # Trained-like magnitudes, so that a 1e-4 absolute bound is meaningful.
    torch.nn.init.normal_(conv.conv_h.weight, std=0.1)
    torch.nn.init.normal_(conv.conv_w.weight, std=0.1)
    return conv


def layout(x, name):
    if name == 'channels_last':
        return x.contiguous(memory_format=torch.channels_last)
    if name == 'channel_major':  # how the mixer stores its maps
        return x.transpose(0, 1).contiguous().transpose(0, 1)
    return x.contiguous()


# -------------------------------------------------------- oversized conv
@pytest.mark.parametrize('impl', ['auto', 'direct', 'toeplitz'])
@pytest.mark.parametrize('mode', ['fixed', 'global'])
@pytest.mark.parametrize('size', [(7, 7), (14, 9), (33, 20), (56, 56), (8, 12), (1, 5)])
@pytest.mark.parametrize('memory', ['contiguous', 'channels_last'])
@pytest.mark.parametrize('batch', [1, 3])
def test_forward_and_gradients_match_direct(impl, mode, size, memory, batch):
    conv = trained_like(OversizedConv2d(6, 27, mode=mode, impl=impl))
    x = layout(torch.randn(batch, 6, *size), memory)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    wh = conv.conv_h.weight.detach().clone().requires_grad_(True)
    ww = conv.conv_w.weight.detach().clone().requires_grad_(True)
    out = conv(x1)
    expected = direct(x2, wh, ww, mode)
    assert out.shape == expected.shape == x.shape
    assert out.is_contiguous(memory_format=torch.channels_last if memory == 'channels_last'
                             else torch.contiguous_format)
    assert max_diff(out, expected) <= 1e-4
    grad = torch.randn_like(out) * 0.1
    out.backward(grad)
    expected.backward(grad)
    assert_grads_close([x1.grad, conv.conv_h.weight.grad, conv.conv_w.weight.grad],
                       [x2.grad, wh.grad, ww.grad])


@pytest.mark.parametrize('mode', ['fixed', 'global'])
@pytest.mark.parametrize('shape', [(1, 14, 9), (2, 20, 33), (3, 6, 16), (2, 5, 4)])
def test_channel_major_with_added_branch_matches_direct(mode, shape):
    """The mixer's entry point: (C, N, H, W) data, a branch added in the GEMM."""
    conv = trained_like(OversizedConv2d(5, 13, mode=mode))
    batch, height, width = shape
    x = torch.randn(batch, 5, height, width)
    extra = torch.randn(batch, 5, height, width)
    v = x.transpose(0, 1).contiguous().requires_grad_(True)
    add = extra.transpose(0, 1).contiguous().requires_grad_(True)
    out = conv.forward_channel_major(v, add=add)
    x2 = x.clone().requires_grad_(True)
    extra2 = extra.clone().requires_grad_(True)
    wh = conv.conv_h.weight.detach().clone().requires_grad_(True)
    ww = conv.conv_w.weight.detach().clone().requires_grad_(True)
    expected = (direct(x2, wh, ww, mode) + extra2).transpose(0, 1)
    assert out.is_contiguous() and max_diff(out, expected) <= 1e-4
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    assert_grads_close([v.grad, add.grad, conv.conv_h.weight.grad, conv.conv_w.weight.grad],
                       [x2.grad.transpose(0, 1), extra2.grad.transpose(0, 1), wh.grad, ww.grad])


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


def test_long_kernel_on_small_map_is_cropped_exactly():
    x = torch.randn(2, 4, 5, 6)
    kernel = torch.randn(4, 111)
    full = F.conv2d(x, kernel.view(4, 1, 111, 1), padding=(55, 0), groups=4)
    for impl in ('direct', 'toeplitz'):
        torch.testing.assert_close(conv1d_same(x, kernel, 2, impl=impl), full)


def test_global_kernels_span_twice_the_map():
    kh, kw = instance_kernels(torch.randn(3, 1, 13, 1), torch.randn(3, 1, 1, 13), 'global', 10, 4)
    assert kh.shape == (3, 19) and kw.shape == (3, 7)


# ------------------------------------------------------ depthwise conv
@pytest.mark.parametrize('memory', ['contiguous', 'channels_last', 'channel_major'])
@pytest.mark.parametrize('batch', [1, 3])
@pytest.mark.parametrize('kernel', [(7, 7), (1, 13), (13, 1)])
def test_depthwise_conv_fast_backward(memory, batch, kernel):
    x = layout(torch.randn(batch, 6, 9, 14), memory).requires_grad_(True)
    weight = (torch.randn(6, 1, *kernel) * 0.1).requires_grad_(True)
    out = depthwise_conv2d(x, weight)
    x2 = x.detach().clone().requires_grad_(True)
    weight2 = weight.detach().clone().requires_grad_(True)
    expected = F.conv2d(x2, weight2, padding=(kernel[0] // 2, kernel[1] // 2), groups=6)
    assert max_diff(out, expected) <= 1e-5
    if memory != 'contiguous' and batch > 1:  # the storage order is kept
        assert out.stride() == x.stride()
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    assert_grads_close([x.grad, weight.grad], [x2.grad, weight2.grad])


# ----------------------------------------------------------------- norm
def test_fused_l2_norm_matches_official_formula():
    x = torch.randn(4, 5, 64) * 3 + 2
    x[0, 0] = 1.5  # constant row: zero centred vector, the clamp decides
    x[0, 1] = 1.5 + torch.randn(64) * 1e-9  # length below eps
    weight = (torch.randn(64) + 4).requires_grad_(True)
    bias = torch.randn(64).requires_grad_(True)
    for b in (None, bias):
        x1 = x.clone().requires_grad_(True)
        x2 = x.clone().requires_grad_(True)
        w2 = weight.detach().clone().requires_grad_(True)
        b2 = None if b is None else b.detach().clone().requires_grad_(True)
        out = l2_layer_norm(x1, weight, b, 1e-6)
        expected = l2_layer_norm_reference(x2, w2, b2, 1e-6)
        assert max_diff(out, expected) <= 1e-5
        grad = torch.randn_like(out)
        inputs = [x1, weight] + ([b] if b is not None else [])
        ours = torch.autograd.grad(out, inputs, grad)
        theirs = torch.autograd.grad(expected, [x2, w2] + ([b2] if b is not None else []), grad)
        assert_grads_close(ours, theirs)
    y = x[1:] * 1.0  # no degenerate rows: the fused kernel's own result
    torch.testing.assert_close(l2_layer_norm(y, weight, None, 1e-6),
                               l2_layer_norm_reference(y, weight, None, 1e-6))


# ------------------------------------------------------------- backbone
@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
@pytest.mark.parametrize('memory', ['contiguous', 'channels_last'])
def test_backbone_matches_official_forward_and_backward(kernel_mode, memory):
    """The whole fast path (layouts, GEMM convolutions, fused norm, custom
    backward passes) against the official formulation, gradients included."""
    official = ref.random_official_state_dict('xt', dense_prefix='', seed=4)
    model = ParCNetV2('xt', kernel_mode=kernel_mode, out_indices=(0, 1, 2, 3),
                      gap_before_final_norm=False)
    model.load_state_dict(official)
    model.train()
    x = layout(torch.randn(2, 3, 97, 130), memory)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    params = {k: v.clone().requires_grad_(True) for k, v in official.items()}
    outs = model(x1)
    expected = ref.dense(params, x2, ref.ARCHS['xt'][0], (0, 1, 2, 3),
                         interpolate=kernel_mode == 'global', prefix='')
    for a, b in zip(outs, expected):
        assert a.shape == b.shape and max_diff(a, b) <= 1e-4
    grads = [torch.randn_like(o) for o in outs]
    torch.autograd.backward(outs, grads)
    torch.autograd.backward(expected, grads)
    named = dict(model.named_parameters())
    assert_grads_close([x1.grad] + [named[k].grad for k in params],
                       [x2.grad] + [params[k].grad for k in params])
    with torch.inference_mode():  # the inference-only paths (in place, tiles)
        model.eval()
        for a, b in zip(model(x), expected):
            assert max_diff(a, b) <= 1e-4


def test_mlp_inference_tiles_match_training_path(monkeypatch):
    mlp = parcnetv2.BifurcateGateMLP(16, 5.0)
    x = torch.randn(2, 9, 31, 16)
    expected = mlp(x)
    monkeypatch.setattr(parcnetv2, 'MLP_TILE_ROWS', 7)
    monkeypatch.setattr(parcnetv2, 'MLP_TILE_ELEMENTS', 1)
    with torch.no_grad():
        assert max_diff(mlp(x), expected) <= 1e-5


# ------------------------------------------------- autocast, compile, CUDA
def test_autocast_bf16_cpu_forward_and_backward():
    model = ParCNetV2('xt', kernel_mode='global', out_indices=(3, ), gap_before_final_norm=False)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)[0]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(x)[0]
        with torch.no_grad():
            inferred = model(x)[0]
    out.float().sum().backward()
    scale = expected.abs().max()
    assert max_diff(out, expected) < 0.05 * scale and max_diff(inferred, expected) < 0.05 * scale
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_autocast_bf16_cpu_oversized_conv():
    conv = trained_like(OversizedConv2d(4, 13, mode='global'))
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conv(x)
    ref_out = direct(x.detach(), conv.conv_h.weight.detach(), conv.conv_w.weight.detach(), 'global')
    assert max_diff(out, ref_out) < 0.05 * ref_out.abs().max()
    out.float().sum().backward()
    assert x.grad.dtype == torch.float32 and conv.conv_h.weight.grad.dtype == torch.float32


@pytest.mark.parametrize('backend', ['eager', 'aot_eager'])
def test_torch_compile_matches_eager(backend):
    model = ParCNetV2('xt', kernel_mode='global', out_indices=(2, 3), gap_before_final_norm=False)
    model.load_state_dict(ref.random_official_state_dict('xt', dense_prefix='', seed=5),
                          strict=False)
    x = torch.randn(2, 3, 64, 80)
    try:
        compiled = torch.compile(model, backend=backend)
        outs = compiled(x)
    except Exception as err:  # pragma: no cover - torch without a working dynamo
        pytest.skip(f'torch.compile unavailable: {err}')
    expected = model(x)
    for a, b in zip(outs, expected):
        assert max_diff(a, b) <= 1e-4
    sum(o.sum() for o in outs).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    sum(o.sum() for o in expected).backward()
    assert_grads_close(grads, [p.grad for p in model.parameters()])


@CUDA
@pytest.mark.parametrize('mode', ['fixed', 'global'])
def test_cuda_matches_direct(mode):
    conv = trained_like(OversizedConv2d(6, 27, mode=mode)).cuda()
    x = torch.randn(2, 6, 33, 20, device='cuda', requires_grad=True)
    out = conv(x)
    expected = direct(x, conv.conv_h.weight, conv.conv_w.weight, mode)
    assert max_diff(out, expected) <= 1e-4
    v = x.detach().transpose(0, 1).contiguous()
    kh, kw = conv.kernels(33, 20)
    assert max_diff(oversized_channel_major(v, kh, kw).transpose(0, 1), expected) <= 1e-4
    with torch.autocast('cuda', dtype=torch.float16):
        half = conv(x)
    assert max_diff(half, expected) < 0.05 * expected.abs().max()


@CUDA
def test_cuda_backbone_matches_cpu():
    model = ParCNetV2('xt', out_indices=(3, ), gap_before_final_norm=False)
    x = torch.randn(2, 3, 64, 96)
    expected = model(x)[0]
    out = model.cuda()(x.cuda())[0]
    assert max_diff(out.cpu(), expected) <= 1e-3


# ------------------------------------------------------------ arguments
def test_bad_kernel_arguments():
    with pytest.raises(ValueError, match='odd'):
        OversizedConv2d(4, 12)
    with pytest.raises(ValueError, match='kernel_mode'):
        OversizedConv2d(4, 13, mode='both')
    with pytest.raises(ValueError, match='impl'):
        OversizedConv2d(4, 13, impl='fft')
    with pytest.raises(ValueError, match='odd'):
        depthwise_conv2d(torch.randn(1, 2, 5, 5), torch.randn(2, 1, 4, 3))
