"""Runner checkpoints load with torch's default ``weights_only=True``.

Through mmparc's loader (and mmengine's, which ``import mmparc`` routes
through it) only; plain ``torch.load`` accepts exactly what it accepts
without mmparc.  Crafted files: tests/test_crafted_checkpoints.py.
"""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

import mmparc  # noqa: F401  (routes mmengine's checkpoint loading)
from mmparc.checkpoint import CheckpointError, load_checkpoint_file

ROOT = Path(__file__).resolve().parents[1]


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
def written_run(tmp_path_factory):
    """The writing run's checkpoint, and its state as the Runner held it in memory
    (what a loader is checked against, rather than against itself)."""
    work_dir = tmp_path_factory.mktemp('runner')
    runner = Runner(**runner_kwargs(work_dir, experiment_name='write'))
    runner.train()
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.exists()
    memory = {'epoch': runner.epoch, 'iter': runner.iter,
              'weights': {k: v.detach().clone() for k, v in runner.model.state_dict().items()}}
    return work_dir, ckpt, memory


@pytest.fixture(scope='module')
def runner_checkpoint(written_run):
    work_dir, ckpt, _ = written_run
    return work_dir, ckpt


def _run(code: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get('PYTHONPATH')) if p)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS='1'))


def test_plain_torch_load_is_untouched_and_mmparc_loads(runner_checkpoint):
    """Plain torch.load refuses a Runner checkpoint with and without mmparc
    (weights_only stays on); mmparc's and mmengine's loaders read it."""
    _, ckpt = runner_checkpoint
    for prelude in ('', 'import mmparc\n'):
        code = (f'import torch, sys\n{prelude}'
                'try:\n'
                f'    torch.load({str(ckpt)!r}, map_location="cpu", weights_only=True)\n'
                'except Exception as err:\n'
                '    print("refused", type(err).__name__)\n'
                '    sys.exit(0)\n'
                'sys.exit(1)\n')
        result = _run(code)
        assert result.returncode == 0, f'plain torch.load read a Runner checkpoint ({prelude!r})'
    code = ('import mmparc\n'
            'from mmparc.checkpoint import load_checkpoint_file\n'
            'from mmengine.runner.checkpoint import _load_checkpoint\n'
            'from mmengine.logging import HistoryBuffer\n'
            f'a = load_checkpoint_file({str(ckpt)!r})\n'
            f'b = _load_checkpoint({str(ckpt)!r}, map_location="cpu")\n'
            'for c in (a, b):\n'
            '    buffers = c["message_hub"]["log_scalars"].values()\n'
            '    assert buffers and all(type(v) is HistoryBuffer for v in buffers)\n'
            'print("ok")')
    result = _run(code)
    assert result.stdout.strip().splitlines()[-1:] == ['ok'], result.stderr[-2000:]


def test_torch_load_untouched():
    """mmparc neither wraps torch.load nor sets the environment that changes its default."""
    import inspect
    assert torch.load.__module__ == 'torch.serialization'
    assert 'weights_only' in inspect.signature(torch.load).parameters
    assert os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD') is None


class ResumeProbe(Hook):
    """What the resumed run holds when training starts, and at each epoch's start."""

    def __init__(self):
        self.start = None
        self.epochs = []

    def before_train(self, runner):
        self.start = {'epoch': runner.epoch, 'iter': runner.iter,
                      'weights': {k: v.detach().clone()
                                  for k, v in runner.model.state_dict().items()}}

    def before_train_epoch(self, runner):
        self.epochs.append(runner.epoch)


def test_resume_from_runner_checkpoint(written_run):
    """Training resumes at the saved epoch and iteration with the saved weights, as the
    writing Runner held them in memory (a loader that drops the weights, or a resume that
    finds no checkpoint and trains from scratch, fails here)."""
    work_dir, _, memory = written_run
    probe = ResumeProbe()
    kwargs = runner_kwargs(work_dir, resume=True, experiment_name='resume',
                           custom_hooks=[probe])
    kwargs['train_cfg'] = dict(by_epoch=True, max_epochs=2)
    runner = Runner(**kwargs)
    runner.train()
    assert probe.start['epoch'] == memory['epoch'] == 1
    assert probe.start['iter'] == memory['iter'] == 2
    assert probe.epochs == [1]  # only the second epoch ran
    assert probe.start['weights'].keys() == memory['weights'].keys()
    for key, value in memory['weights'].items():
        assert torch.equal(probe.start['weights'][key], value), key
    assert runner.epoch == 2 and (work_dir / 'epoch_2.pth').exists()


def test_test_from_runner_checkpoint(written_run, tmp_path):
    _, ckpt, memory = written_run
    runner = Runner(**runner_kwargs(tmp_path, load_from=str(ckpt), experiment_name='test'))
    metrics = runner.test()
    assert 'mae' in metrics
    assert torch.equal(runner.model.linear.weight.detach(), memory['weights']['linear.weight'])


class _SneakyGetattr:
    """Pickles as ``getattr(HistoryBuffer, 'update')``: not a statistic."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return getattr, (HistoryBuffer, 'update')


def test_getattr_stand_in_refuses_other_attributes(tmp_path):
    path = tmp_path / 'sneaky.pth'
    torch.save({'x': _SneakyGetattr()}, path)
    with pytest.raises(CheckpointError, match='only HistoryBuffer statistics'):
        load_checkpoint_file(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_bad_files_give_one_line_naming_the_file(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    text = tmp_path / 'notes.pth'
    text.write_text('hello, not a checkpoint\n')
    torch.save({'w': torch.ones(3)}, tmp_path / 'good.pth')
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes((tmp_path / 'good.pth').read_bytes()[:200])
    cases = {empty: 'empty file (0 bytes)', text: 'not a PyTorch checkpoint',
             truncated: 'corrupt checkpoint archive', tmp_path: 'not a file'}
    for path, fragment in cases.items():
        for load in (load_checkpoint_file, lambda p: _load_checkpoint(str(p))):
            with pytest.raises(CheckpointError) as info:
                load(path)
            message = str(info.value)
            assert message.startswith(str(path)) and fragment in message, message
            assert '\n' not in message
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'):
        load_checkpoint_file(tmp_path / 'missing.pth')


def test_missing_pretrained_checkpoint_says_how_to_get_it(tmp_path):
    """``init_cfg=dict(type='Pretrained')`` on a missing file names the three ways out."""
    from mmengine.model import BaseModule

    class Backbone(BaseModule):
        def __init__(self):
            super().__init__(init_cfg=dict(type='Pretrained',
                                           checkpoint=str(tmp_path / 'bb.pth')))
            self.linear = nn.Linear(2, 2)

    with pytest.raises(FileNotFoundError) as info:
        Backbone().init_weights()
    message = str(info.value)
    for fragment in ('convert_official.py', "prefix=backbone.", 'init_cfg=None',
                     str(tmp_path / 'bb.pth')):
        assert fragment in message, message
    # anywhere else, a missing file is just that
    with pytest.raises(FileNotFoundError) as info:
        load_checkpoint_file(tmp_path / 'bb.pth')
    assert 'convert_official' not in str(info.value)


def test_every_mmengine_scheme_reads_through_mmparc():
    """Each scheme mmengine registers is replaced by one that fetches the file the same
    way and reads it with load_checkpoint_file (mmengine's own call torch.load)."""
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
    for url in ('x.pth', 'https://example.com/x.pth', 'http://example.com/x.pth',
                'open-mmlab://x', 'openmmlab://x', 'torchvision://resnet50',
                'modelzoo://resnet50', 'mmcls://x', 's3://bucket/x.pth', 'pavi://x'):
        loader = CheckpointLoader._get_checkpoint_loader(url)
        assert loader.__module__ == 'mmparc.checkpoint.schemes', (url, loader)
    assert all(getattr(loader, '_mmparc_loader', False)
               for loader in CheckpointLoader._schemes.values())
    assert load_from_local.__module__ == 'mmengine.runner.checkpoint'


def test_legacy_format_and_file_objects_load(tmp_path):
    """Old (non-zip) torch files and open file objects go through the same stand-ins."""
    import io

    import numpy as np
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub('legacy_format_hub')
    hub.update_scalar('loss', 2.0)
    hub.update_info('seed', np.int64(3))
    checkpoint = {'message_hub': hub.state_dict(), 'state_dict': {'w': torch.ones(2)}}
    path = tmp_path / 'legacy.pth'
    torch.save(checkpoint, path, _use_new_zipfile_serialization=False)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    for source in (path, buffer):
        loaded = load_checkpoint_file(source)['message_hub']
        assert type(loaded['log_scalars']['loss']) is HistoryBuffer
        assert loaded['log_scalars']['loss'].mean() == 2.0
        assert type(loaded['runtime_info']['seed']) is np.int64
