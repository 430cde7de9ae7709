"""What ``tools/check_gpu.sh`` runs on a GPU, and how its tools behave without one.

On a CUDA machine (``pytest -k cuda``, which check_gpu.sh runs):

* the backbone under CUDA autocast (fp16, bf16) against the CPU's fp32
  reference, forward and gradients, both kernel modes;
* one AMP training step of the quickstart Mask R-CNN through the Runner and
  ``mmparc.FallbackAmpOptimWrapper`` (an ``AmpOptimWrapper`` there).

Everywhere: check_gpu.sh refuses a machine without CUDA in one line, and
the benchmark's GPU options (``--device``, ``--dtypes``, the GPU
configurations) work on the CPU or say why not.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmparc.testing import official as ref
from mmparc.testing import toy_data
from mmparc.ops import matmul

ROOT = Path(__file__).resolve().parents[1]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')


# ----------------------------------------------------------------- on a GPU
@CUDA
@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
@pytest.mark.parametrize('dtype,tolerance', [(torch.float16, 0.01), (torch.bfloat16, 0.05)])
def test_cuda_autocast_backbone_against_cpu_fp32(kernel_mode, dtype, tolerance):
    # The model of the CPU parity tests (tests/test_model_paths.py): random
    # weights in the official layout, so that every layer's scale is realistic.
    from mmparc.models import ParCNetV2
    model = ParCNetV2('xt', kernel_mode=kernel_mode, out_indices=(0, 1, 2, 3),
                      gap_before_final_norm=False)
    model.load_state_dict(ref.random_official_state_dict('xt', dense_prefix='', seed=4))
    x = torch.randn(2, 3, 64, 96)
    expected = model(x)
    sum(o.square().mean() for o in expected).backward()
    cpu_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.cuda()
    with torch.autocast('cuda', dtype=dtype):
        outs = model(x.cuda())
    sum(o.float().square().mean() for o in outs).backward()
    for out, want in zip(outs, expected):
        diff = (out.float().cpu() - want.detach()).abs().max().item()
        assert diff <= tolerance * want.abs().max().item(), diff
    for name, param in model.named_parameters():
        assert param.grad.dtype == torch.float32 and torch.isfinite(param.grad).all(), name
        scale = cpu_grads[name].abs().max().item()
        diff = (param.grad.cpu() - cpu_grads[name]).abs().max().item()
        assert diff <= 4 * tolerance * scale + 1e-8, name


@CUDA
def test_cuda_amp_training_step_mask_rcnn_quickstart(tmp_path):
    from mmengine.config import Config
    from mmengine.optim import AmpOptimWrapper
    from mmengine.runner import Runner
    toy_data.make_coco_instances(tmp_path / 'coco', 2, 1, (96, 128), seed=0, max_objects=3,
                                 crowd_prob=0.0)
    cfg = Config.fromfile(str(ROOT / 'configs/quickstart/mask_rcnn_parcnetv2_toy.py'))
    assert cfg.optim_wrapper.type == 'mmparc.FallbackAmpOptimWrapper'
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.dataset.data_root = f'{tmp_path}/coco/'
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=10)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10)
    from mmengine.hooks import Hook
    runner = Runner.from_cfg(cfg)
    losses = []

    class Catch(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            losses.append(float(outputs['loss']))

    runner.register_hook(Catch())
    runner.train()
    assert isinstance(runner.optim_wrapper, AmpOptimWrapper)
    assert next(runner.model.parameters()).is_cuda
    assert len(losses) == 1 and torch.isfinite(torch.tensor(losses)).all(), losses
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


# ----------------------------------------------------------------- anywhere
@NO_CUDA
def test_check_gpu_refuses_a_machine_without_gpu():
    proc = subprocess.run(['bash', str(ROOT / 'tools/check_gpu.sh'), '/nonexistent/out'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        'check_gpu: torch sees no CUDA device here; run this on a GPU machine']
    assert not Path('/nonexistent/out').exists()


def _benchmark(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / 'tools/analysis_tools/benchmark.py'),
                           '--out', str(tmp_path), '--threads', '1', *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def test_benchmark_dtype_rows(tmp_path):
    """``--dtypes fp32 bf16``: one table with a row per dtype (autocast on the CPU here)."""
    proc = _benchmark(['--configs', '224 b1', '--models', 'convnext', 'fixed',
                       '--modes', 'forward', '--dtypes', 'fp32', 'bf16',
                       '--repeat-scale', '0.1', '--no-memory'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / 'benchmark.json').read_text())
    rows = [(r['config'], r['dtype'], r['mode']) for r in summary['results']]
    assert rows == [('224 b1', 'fp32', 'forward'), ('224 b1 bf16', 'bf16', 'forward')]
    lines = summary['table'].splitlines()
    assert any(line.startswith('224 b1 bf16') for line in lines), summary['table']
    assert summary['device'] == 'cpu'


def test_benchmark_convnext_on_the_same_products(tmp_path):
    """``convnext-onednn``: ConvNeXt-T with its Linear layers on mmparc.ops.linear, a column
    and a ``fixed/CNXd`` ratio of its own; no memory probe (its training is ConvNeXt's)."""
    proc = _benchmark(['--configs', '224 b1', '--models', 'convnext', 'convnext-onednn',
                       'fixed', '--modes', 'forward', '--repeat-scale', '0.1'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / 'benchmark.json').read_text())
    assert set(summary['results'][0]['timings']) == {'convnext', 'convnext-onednn', 'fixed'}
    head, _, row = summary['table'].splitlines()[:3]
    assert 'ConvNeXt-oneDNN ms' in head and 'fixed/CNXd' in head
    assert row.split()[-3].endswith('x')  # fixed/CNXd filled in, official ratios '-'


def test_benchmark_products(tmp_path):
    """``--products``: every 1x1 layer's op of the backbone, on oneDNN and on BLAS."""
    proc = _benchmark(['--products'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    products = json.loads((tmp_path / 'products.json').read_text())['products']
    layers = {(p['config'], p['layer']) for p in products}
    assert len(products) == len(layers) == 2 * 4 * 4  # 2 sizes, 4 stages, 4 layers
    assert {p['onednn'] for p in products} == {matmul.ONEDNN}
    stage0 = {p['layer']: (p['rows'], p['in'], p['out']) for p in products
              if p['config'] == '224 b1' and p['layer'].startswith('stage 0')}
    assert stage0 == {'stage 0 pwconv1': (3136, 64, 128), 'stage 0 pwconv2': (3136, 64, 64),
                      'stage 0 fc1': (3136, 64, 320), 'stage 0 fc2': (3136, 160, 64)}
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith('oneDNN ran' if matmul.ONEDNN else 'oneDNN did NOT run'), last
    assert not list(tmp_path.glob('*.part'))


@pytest.mark.parametrize('args,message', [
    (['--device', 'cuda'], 'benchmark.py: --device cuda, but torch sees no CUDA device'),
    (['--configs', '224 b3'], "benchmark.py: unknown --configs ['224 b3']"),
], ids=['no-gpu', 'unknown-config'])  # ids without 'cuda': check_gpu.sh selects -k cuda
def test_benchmark_bad_options(args, message, tmp_path):
    if args[0] == '--device' and torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    proc = _benchmark(args, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr[-2000:]
    assert not (tmp_path / 'benchmark.json').exists()


# ------------------------------------------- tools/setup_env.sh: the mmcv plan
def _setup_dry_run(tmp_path, **env_vars):
    """``MMPARC_SETUP_DRY_RUN=1 tools/setup_env.sh``: the mmcv decision, nothing built."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('FORCE_CUDA', 'CUDA_HOME', 'TORCH_CUDA_ARCH_LIST')}
    env.update(MMPARC_SETUP_DRY_RUN='1', MMPARC_VENV=str(Path(sys.executable).parents[1]),
               MMPARC_CACHE=str(tmp_path / 'cache'), **env_vars)
    proc = subprocess.run(['bash', str(ROOT / 'tools/setup_env.sh')], capture_output=True,
                          text=True, timeout=120, env=env)
    assert not (tmp_path / 'cache').exists()  # a dry run creates nothing
    return proc


def _cpu_key(tmp_path) -> str:
    tag = torch.__version__.replace('+', '_')
    abi = f'cp{sys.version_info[0]}{sys.version_info[1]}'
    return f'{tmp_path}/cache/wheels/mmcv-2.1.0-torch{tag}-{abi}'


@NO_CUDA
def test_setup_env_without_gpu_keeps_the_cpu_build(tmp_path):
    """No GPU: CPU ops under the key the CPU wheel always had, toolkit or not."""
    proc = _setup_dry_run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ['[setup dry-run] mmcv 2.1.0 ops: cpu',
                                        f'[setup dry-run] mmcv wheel cache: {_cpu_key(tmp_path)}']


def _fake_nvcc(tmp_path, release: str) -> str:
    home = tmp_path / f'cuda-{release}'
    (home / 'bin').mkdir(parents=True)
    nvcc = home / 'bin' / 'nvcc'
    nvcc.write_text(f'#!/bin/sh\necho "Cuda compilation tools, release {release}, V{release}.1"\n')
    nvcc.chmod(0o755)
    return str(home)


@pytest.mark.skipif(not torch.version.cuda, reason='a CPU-only torch build')
def test_setup_env_forced_gpu_build_has_its_own_key(tmp_path):
    """FORCE_CUDA=1 with the toolkit torch was built with: a CUDA build, cached
    apart from the CPU wheel, under the toolkit release (and arch list)."""
    release = torch.version.cuda
    home = _fake_nvcc(tmp_path, release)
    proc = _setup_dry_run(tmp_path, FORCE_CUDA='1', CUDA_HOME=home,
                          TORCH_CUDA_ARCH_LIST='8.0 9.0+PTX')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f'[setup dry-run] mmcv 2.1.0 ops: cuda (CUDA {release}, FORCE_CUDA=1)',
        f'[setup dry-run] mmcv wheel cache: {_cpu_key(tmp_path)}-cuda{release}-arch8.0_9.0+PTX']
    proc = _setup_dry_run(tmp_path, FORCE_CUDA='0', CUDA_HOME=home)
    assert proc.stdout.splitlines()[0] == '[setup dry-run] mmcv 2.1.0 ops: cpu'


def test_setup_env_refuses_a_gpu_build_it_cannot_make(tmp_path):
    mismatched = _fake_nvcc(tmp_path, '11.8')
    cases = [
        (dict(FORCE_CUDA='1', CUDA_HOME=mismatched),
         'is CUDA 11.8 but torch was built with CUDA' if torch.version.cuda
         else 'is a CPU-only build'),
        (dict(FORCE_CUDA='1', CUDA_HOME=str(tmp_path / 'none'), PATH='/usr/bin:/bin'),
         'FORCE_CUDA=1 needs a CUDA toolkit'),
        (dict(FORCE_CUDA='yes'), "FORCE_CUDA must be 0 or 1 (or unset), got 'yes'"),
    ]
    for env_vars, message in cases:
        proc = _setup_dry_run(tmp_path, **env_vars)
        assert proc.returncode == 1 and proc.stdout == '', env_vars
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (env_vars, proc.stderr)
