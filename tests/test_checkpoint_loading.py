"""Runner checkpoints load with torch's default ``weights_only=True``."""
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner

import mmparc  # noqa: F401  (allow-lists the checkpoint classes)
from mmparc.safe_load import runner_checkpoint_globals


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return {'loss': (out - labels).pow(2).mean()}
        return [{'pred': o, 'label': t} for o, t in zip(out, labels)]


class ToyMetric(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.extend(float((d['pred'] - d['label']).abs()) for d in data_samples)

    def compute_metrics(self, results):
        return {'mae': sum(results) / len(results)}


def toy_data(n=8):
    return [dict(inputs=torch.randn(2), labels=torch.randn(1)) for _ in range(n)]


def runner_kwargs(work_dir, **extra):
    loader = dict(dataset=toy_data(), sampler=dict(type='DefaultSampler', shuffle=False),
                  batch_size=4, collate_fn=dict(type='default_collate'))
    return dict(model=ToyModel(), work_dir=str(work_dir), train_dataloader=loader,
                optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
                train_cfg=dict(by_epoch=True, max_epochs=1), val_dataloader=loader,
                val_cfg=dict(), val_evaluator=dict(type=ToyMetric), test_dataloader=loader,
                test_cfg=dict(), test_evaluator=dict(type=ToyMetric),
                default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
                **extra)


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('runner')
    runner = Runner(**runner_kwargs(work_dir, experiment_name='write'))
    runner.train()
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.exists()
    return work_dir, ckpt


def test_plain_torch_load_refuses_without_mmparc(runner_checkpoint):
    """The allow-list is what makes loading work (and weights_only stays on)."""
    _, ckpt = runner_checkpoint
    code = ('import torch, sys\n'
            'try:\n'
            f'    torch.load({str(ckpt)!r}, map_location="cpu")\n'
            'except Exception as err:\n'
            '    print("refused", type(err).__name__)\n'
            '    sys.exit(0)\n'
            'sys.exit(1)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, 'torch loaded a Runner checkpoint without the allow-list'
    code = f'import mmparc, torch; torch.load({str(ckpt)!r}, map_location="cpu"); print("ok")'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.stdout.strip() == 'ok', result.stderr[-2000:]


def test_weights_only_default_untouched():
    import inspect
    assert inspect.signature(torch.load).parameters['weights_only'].default is None
    import os
    assert os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD') is None
    names = {getattr(g, '__name__', str(g)) for g in runner_checkpoint_globals()}
    assert 'HistoryBuffer' in names and '_reconstruct' in names


def test_resume_from_runner_checkpoint(runner_checkpoint):
    work_dir, _ = runner_checkpoint
    kwargs = runner_kwargs(work_dir, resume=True, experiment_name='resume')
    kwargs['train_cfg'] = dict(by_epoch=True, max_epochs=2)
    runner = Runner(**kwargs)
    runner.train()
    assert runner.epoch == 2
    assert (work_dir / 'epoch_2.pth').exists()


def test_test_from_runner_checkpoint(runner_checkpoint, tmp_path):
    _, ckpt = runner_checkpoint
    runner = Runner(**runner_kwargs(tmp_path, load_from=str(ckpt), experiment_name='test'))
    metrics = runner.test()
    assert 'mae' in metrics
    saved = torch.load(ckpt, map_location='cpu')['state_dict']['linear.weight']
    assert torch.equal(runner.model.linear.weight.detach(), saved)


class _SneakyGetattr:
    """Pickles as ``getattr(HistoryBuffer, 'update')``: not a statistic."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return getattr, (HistoryBuffer, 'update')


def test_getattr_stand_in_refuses_other_attributes(tmp_path):
    import pickle
    path = tmp_path / 'sneaky.pth'
    torch.save({'x': _SneakyGetattr()}, path)
    with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer statistics'):
        torch.load(path)
