"""Mixed precision falls back to fp32 with one warning where no GPU exists, and
builds mmengine's real ``AmpOptimWrapper`` with the config's settings where one does."""
import pytest
import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper, build_optim_wrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper as mmengine_amp

import mmparc.engine.amp as amp


def test_cpu_fallback_builds_plain_wrapper_with_one_warning(monkeypatch):
    for check in ('is_cuda_available', 'is_npu_available', 'is_mlu_available', 'is_musa_available'):
        monkeypatch.setattr(amp, check, lambda: False)
    messages = []
    monkeypatch.setattr(amp, 'print_log', lambda msg, **kw: messages.append((msg, kw)))
    model = torch.nn.Linear(2, 2)
    wrapper = build_optim_wrapper(model, dict(type='mmparc.FallbackAmpOptimWrapper',
                                              optimizer=dict(type='SGD', lr=0.1),
                                              clip_grad=dict(max_norm=1.0)))
    assert type(wrapper) is OptimWrapper
    assert wrapper.clip_grad_kwargs == dict(max_norm=1.0)
    assert len(messages) == 1 and 'fp32' in messages[0][0] and messages[0][1]['level'] == 30
    loss = model(torch.randn(3, 2)).sum()
    wrapper.update_params(loss)


@pytest.fixture
def cuda_reported(monkeypatch):
    """mmengine's CUDA-availability check says yes (in mmparc's wrapper and in
    mmengine's ``AmpOptimWrapper``, which asserts it); nothing else is replaced.
    The loss scaler's constructor arguments are recorded on the way through (torch's
    own scaler disables itself without CUDA and then keeps no initial scale)."""
    monkeypatch.setattr(amp, 'is_cuda_available', lambda: True)
    monkeypatch.setattr(mmengine_amp, 'is_cuda_available', lambda: True)
    scaler_args = []
    real_scaler = mmengine_amp.GradScaler

    def recording_scaler(*args, **kwargs):
        scaler_args.append((args, kwargs))
        return real_scaler(*args, **kwargs)

    monkeypatch.setattr(mmengine_amp, 'GradScaler', recording_scaler)
    return scaler_args


@pytest.mark.parametrize('loss_scale,scaler_kwargs', [
    (512.0, dict(init_scale=512.0)),
    ('dynamic', {}),
    (dict(init_scale=2.0**10, growth_interval=100), dict(init_scale=2.0**10, growth_interval=100)),
])
def test_accelerator_gets_the_real_amp_wrapper(cuda_reported, loss_scale, scaler_kwargs):
    model = torch.nn.Linear(2, 2)
    wrapper = build_optim_wrapper(model, dict(
        type='mmparc.FallbackAmpOptimWrapper', loss_scale=loss_scale, dtype='bfloat16',
        accumulative_counts=2, clip_grad=dict(max_norm=0.5, norm_type=2),
        optimizer=dict(type='AdamW', lr=0.1)))
    assert type(wrapper) is AmpOptimWrapper
    assert wrapper.cast_dtype is torch.bfloat16
    assert wrapper.clip_grad_kwargs == dict(max_norm=0.5, norm_type=2)
    assert wrapper.clip_func is torch.nn.utils.clip_grad_norm_
    assert wrapper._accumulative_counts == 2
    assert isinstance(wrapper.optimizer, torch.optim.AdamW)
    assert cuda_reported == [((), scaler_kwargs)]
    # A static scale is also what mmengine updates the scaler with at each step.
    assert wrapper._scale_update_param == (loss_scale if isinstance(loss_scale, float) else None)


def test_amp_wrapper_dtype_default_and_bad_dtype(cuda_reported):
    model = torch.nn.Linear(2, 2)
    wrapper = build_optim_wrapper(model, dict(type='mmparc.FallbackAmpOptimWrapper',
                                              optimizer=dict(type='SGD', lr=0.1)))
    assert type(wrapper) is AmpOptimWrapper
    assert wrapper.cast_dtype is None and not wrapper.clip_grad_kwargs
    with pytest.raises(AssertionError, match='dtype'):
        build_optim_wrapper(model, dict(type='mmparc.FallbackAmpOptimWrapper', dtype='int8',
                                        optimizer=dict(type='SGD', lr=0.1)))
