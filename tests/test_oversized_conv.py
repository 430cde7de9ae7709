"""The fast oversized convolution against direct convolution."""
import pytest
import torch
import torch.nn.functional as F

from mmparc.models import OversizedConv2d, conv1d_same
from mmparc.models.oversized_conv import instance_kernels


def direct(x, weight_h, weight_w, mode):
    """Reference: stretch (global) then conv2d each full-length 1-D kernel."""
    channels, height, width = x.shape[1:]
    if mode == 'global':
        weight_h = F.interpolate(weight_h, [2 * height - 1, 1], mode='bilinear', align_corners=True)
        weight_w = F.interpolate(weight_w, [1, 2 * width - 1], mode='bilinear', align_corners=True)
    x = F.conv2d(x, weight_h, padding=(weight_h.shape[2] // 2, 0), groups=channels)
    return F.conv2d(x, weight_w, padding=(0, weight_w.shape[3] // 2), groups=channels)


@pytest.mark.parametrize('impl', ['auto', 'direct', 'toeplitz'])
@pytest.mark.parametrize('mode', ['fixed', 'global'])
@pytest.mark.parametrize('size', [(7, 7), (14, 9), (33, 20), (56, 56), (1, 5)])
@pytest.mark.parametrize('channels_last', [False, True])
def test_forward_and_gradients_match_direct(impl, mode, size, channels_last):
    conv = OversizedConv2d(6, 27, mode=mode, impl=impl)
    # Trained-like magnitudes, so that a 1e-4 absolute bound is meaningful.
    torch.nn.init.normal_(conv.conv_h.weight, std=0.1)
    torch.nn.init.normal_(conv.conv_w.weight, std=0.1)
    x = torch.randn(3, 6, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    wh = conv.conv_h.weight.detach().clone().requires_grad_(True)
    ww = conv.conv_w.weight.detach().clone().requires_grad_(True)
    out = conv(x1)
    expected = direct(x2, wh, ww, mode)
    assert out.shape == expected.shape == x.shape
    assert (out - expected).abs().max().item() <= 1e-4
    grad = torch.randn_like(out) * 0.1
    out.backward(grad)
    expected.backward(grad)
    assert (x1.grad - x2.grad).abs().max().item() <= 1e-4
    assert (conv.conv_h.weight.grad - wh.grad).abs().max().item() <= 1e-4
    assert (conv.conv_w.weight.grad - ww.grad).abs().max().item() <= 1e-4


def test_long_kernel_on_small_map_is_cropped_exactly():
    x = torch.randn(2, 4, 5, 6)
    kernel = torch.randn(4, 111)
    out = conv1d_same(x, kernel, 2, impl='direct')
    full = F.conv2d(x, kernel.view(4, 1, 111, 1), padding=(55, 0), groups=4)
    torch.testing.assert_close(out, full)


def test_global_kernels_span_twice_the_map():
    kh, kw = instance_kernels(torch.randn(3, 1, 13, 1), torch.randn(3, 1, 1, 13), 'global', 10, 4)
    assert kh.shape == (3, 19) and kw.shape == (3, 7)


@pytest.mark.parametrize('dtype', [torch.bfloat16])
def test_autocast_cpu(dtype):
    conv = OversizedConv2d(4, 13, mode='global')
    x = torch.randn(2, 4, 16, 16)
    with torch.autocast('cpu', dtype=dtype):
        out = conv(x)
    ref = direct(x, conv.conv_h.weight, conv.conv_w.weight, 'global')
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_torch_compile_matches_eager():
    conv = OversizedConv2d(4, 13, mode='global')
    x = torch.randn(2, 4, 12, 9)
    try:
        compiled = torch.compile(conv, backend='eager', fullgraph=False)
    except Exception as err:  # pragma: no cover - torch without dynamo
        pytest.skip(f'torch.compile unavailable: {err}')
    torch.testing.assert_close(compiled(x), conv(x))


def test_bad_kernel_arguments():
    with pytest.raises(ValueError, match='odd'):
        OversizedConv2d(4, 12)
    with pytest.raises(ValueError, match='kernel_mode'):
        OversizedConv2d(4, 13, mode='both')
    with pytest.raises(ValueError, match='impl'):
        OversizedConv2d(4, 13, impl='fft')
