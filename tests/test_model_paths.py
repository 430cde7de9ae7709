"""The whole backbone, fast paths and reference paths, against the official formulation.

Forward and gradients, both kernel modes, training and inference, with every
op forced to its reference (:func:`mmparc.ops.reference_ops`), under bf16
autocast, ``torch.compile`` and (where present) CUDA.
"""
import contextlib

import pytest
import torch

from mmparc.testing import official as ref
from mmparc.models import OversizedConv2d, ParCNetV2
from mmparc.ops import reference_ops

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


def assert_close_scaled(ours, expected, rtol=1e-5, atol=1e-4):
    """Within ``atol``, or float rounding of a large sum (relative to its scale)."""
    for a, b in zip(ours, expected):
        assert a is not None and a.shape == b.shape
        assert max_diff(a, b) <= atol + rtol * b.abs().max().item()


def official_model(kernel_mode, seed=4, arch='xt'):
    official = ref.random_official_state_dict(arch, dense_prefix='', seed=seed)
    model = ParCNetV2(arch, kernel_mode=kernel_mode, out_indices=(0, 1, 2, 3),
                      gap_before_final_norm=False)
    model.load_state_dict(official)
    return model, official


def check_against_official(model, official, kernel_mode, paths=contextlib.nullcontext,
                           memory='contiguous'):
    """Outputs and gradients of ``model`` (training, then inference) against the official
    formulation, with ``paths()`` (a context) around each forward pass."""
    model.train()
    x = torch.randn(2, 3, 97, 130)
    if memory == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    params = {k: v.clone().requires_grad_(True) for k, v in official.items()}
    with paths():
        outs = model(x1)
    expected = ref.dense(params, x2, ref.ARCHS['xt'][0], (0, 1, 2, 3),
                         interpolate=kernel_mode == 'global', prefix='')
    assert_close_scaled(outs, expected)
    grads = [torch.randn_like(o) for o in outs]
    torch.autograd.backward(outs, grads)
    torch.autograd.backward(expected, grads)
    named = dict(model.named_parameters())
    assert_close_scaled([x1.grad] + [named[k].grad for k in params],
                        [x2.grad] + [params[k].grad for k in params])
    model.eval()
    with torch.inference_mode(), paths():
        assert_close_scaled(model(x), expected)


@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
@pytest.mark.parametrize('paths', ['fast', 'reference'])
@pytest.mark.parametrize('memory', ['contiguous', 'channels_last'])
def test_backbone_matches_official_forward_and_backward(kernel_mode, paths, memory):
    model, official = official_model(kernel_mode)
    check_against_official(model, official, kernel_mode,
                           lambda: reference_ops(paths == 'reference'), memory)


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
    for p in model.parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32
        assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize('backend', ['eager', 'aot_eager'])
def test_torch_compile_matches_eager(backend):
    """A compiled training step agrees with eager mode (a compile error fails the test)."""
    model, _ = official_model('global', seed=5)
    x = torch.randn(2, 3, 64, 80)
    compiled = torch.compile(model, backend=backend)
    outs = compiled(x)
    expected = model(x)
    assert_close_scaled(outs, expected)
    sum(o.sum() for o in outs).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    sum(o.sum() for o in expected).backward()
    assert_close_scaled(grads, [p.grad for p in model.parameters()])


@CUDA
@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
def test_cuda_backbone_matches_cpu_forward_and_gradients(kernel_mode):
    model, _ = official_model(kernel_mode)
    x = torch.randn(2, 3, 64, 96)
    expected = model(x)
    sum(o.square().mean() for o in expected).backward()
    cpu_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.cuda()
    outs = model(x.cuda())
    sum(o.square().mean() for o in outs).backward()
    assert_close_scaled([o.cpu() for o in outs], expected, rtol=1e-4, atol=1e-6)
    assert_close_scaled([p.grad.cpu() for p in model.parameters()], cpu_grads, rtol=1e-4,
                        atol=1e-8)


def test_bad_oversized_conv_arguments():
    with pytest.raises(ValueError, match='odd'):
        OversizedConv2d(4, 12)
    with pytest.raises(ValueError, match='kernel_mode'):
        OversizedConv2d(4, 13, kernel_mode='both')
    with pytest.raises(ValueError, match='conv_impl'):
        OversizedConv2d(4, 13, conv_impl='fft')
