"""Mixed precision falls back to fp32 with one warning where no GPU exists."""
import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper, build_optim_wrapper

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


def test_accelerator_gets_amp_wrapper(monkeypatch):
    monkeypatch.setattr(amp, 'is_cuda_available', lambda: True)
    built = {}

    class RecordingAmp(AmpOptimWrapper):
        def __init__(self, **kwargs):
            built.update(kwargs)

    monkeypatch.setattr(amp, 'AmpOptimWrapper', RecordingAmp)
    wrapper = build_optim_wrapper(torch.nn.Linear(2, 2),
                                  dict(type='FallbackAmpOptimWrapper', loss_scale=512.0,
                                       optimizer=dict(type='SGD', lr=0.1)))
    assert isinstance(wrapper, RecordingAmp)
    assert built['loss_scale'] == 512.0 and built['accumulative_counts'] == 1
