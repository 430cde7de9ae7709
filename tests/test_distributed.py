"""Multi-process training on CPU: torch.distributed.run, gloo, 2 processes.

The quickstart Mask R-CNN and UperNet train for two iterations through
mmengine's Runner with ``launcher='pytorch'``, the real
``MMDistributedDataParallel`` and the layer-decay constructor, on tiny
generated data (``mmparc.testing.toy_data``).  ``tests/dist_train.py`` is the
entry script; its docstring lists the CPU shims (all in that script: a no-op
``torch.cuda.set_device`` during process-group set-up, ``device_ids=None``
through ``model_wrapper_cfg``, gloo, BN instead of SyncBN in UperNet's heads
for the gloo runs).

SyncBN on CPU, as tested here: in one process mmengine's Runner converts
every ``SyncBatchNorm`` to BatchNorm (``revert_sync_batchnorm``, mmengine's
``_BatchNormXd``); in a gloo process group torch's ``SyncBatchNorm`` refuses
CPU tensors in training (``ValueError``), so CPU multi-process runs of the
SyncBN configs need ``norm_cfg.type='BN'`` in the heads.

One torchrun launch per model runs three trainings (``fixed`` kernels as the
configs; ``global`` kernels; ``fixed`` with two frozen stages) and one
controlled step for gradient synchronisation; one further process resumes
both checkpoints.  About 1.5-2 minutes on 2 cores.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from mmparc.testing import toy_data

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'tests' / 'dist_train.py'
KINDS = ('det', 'seg')

pytestmark = pytest.mark.slow


def _env() -> Dict[str, str]:
    # One 1x1 product backend in every process: each would otherwise choose one by
    # timing, and the ranks and the one-process reference would round differently
    # (an Adam step turns sign flips of near-zero gradients into lr-sized moves).
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT),
               MMPARC_LINEAR_BACKEND='onednn')
    env.pop('PYTEST_XDIST_WORKER', None)
    return env


def _run(args, log: Path) -> None:
    with open(log, 'w') as out:
        proc = subprocess.run(args, cwd=ROOT, env=_env(), stdout=out,
                              stderr=subprocess.STDOUT, timeout=400)
    if proc.returncode != 0:
        tail = log.read_text()[-6000:]
        pytest.fail(f'{args[2:5]} exited with {proc.returncode}:\n{tail}')


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Dict[str, str]:
    root = tmp_path_factory.mktemp('dist_data')
    # Non-square images: the 'global' run's resampled kernels then differ
    # from the 'fixed' ones in both directions.
    toy_data.make_coco_instances(root / 'coco', 4, 1, (96, 128), seed=0, max_objects=3,
                                 crowd_prob=0.0)
    toy_data.make_ade20k(root / 'ade', 4, 1, (96, 128), seed=0)
    return {'det': str(root / 'coco') + '/', 'seg': str(root / 'ade')}


@pytest.fixture(scope='module')
def reports(data, tmp_path_factory) -> Dict[str, Dict[str, Any]]:
    """Rank 0's report of each 2-process launch."""
    out = {}
    for kind in KINDS:
        work = tmp_path_factory.mktemp(f'dist_{kind}')
        _run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
              '--nproc-per-node', '2', str(SCRIPT), kind, data[kind], str(work)],
             work / 'log.txt')
        out[kind] = json.loads((work / 'report.json').read_text())
    return out


@pytest.fixture(scope='module')
def resumed(reports, data, tmp_path_factory) -> Dict[str, Dict[str, Any]]:
    work = tmp_path_factory.mktemp('resume')
    jobs = [f"{kind}:{data[kind]}:{reports[kind]['runs']['fixed']['checkpoint']}"
            for kind in KINDS]
    _run([sys.executable, str(SCRIPT), 'resume', str(work), *jobs], work / 'log.txt')
    return json.loads((work / 'resume.json').read_text())


@pytest.mark.parametrize('kind', KINDS)
def test_runner_trains_with_mmddp_on_gloo(reports, kind):
    """Every run is 2 gloo processes, the real wrapper, the layer-decay groups."""
    for name, run in reports[kind]['runs'].items():
        assert run['world_size'] == 2 and run['backend'] == 'gloo', name
        assert run['wrapper'] == 'MMDistributedDataParallel' and run['is_mmddp'], name
        assert run['device_ids'] is None, name
        assert run['constructor'] == 'mmparc.LayerDecayOptimWrapperConstructor'
        # decay 0.9: one lr scale per layer id in use (ids 0..3 at least; the
        # frozen stem and stages take theirs out)
        least = 3 if name == 'frozen' else 4
        assert len(run['lr_scales']) >= least and max(run['lr_scales']) == 1.0, run['lr_scales']
        assert run['iters'] == 2 and len(run['losses']) == 2, name
        assert all(0 < loss < 100 for loss in run['losses']), run['losses']
        assert run['rank_params_equal'], f'{name}: ranks diverged'
    # 'global' resampled the kernels (stored for a half-size input): another model
    assert reports[kind]['runs']['global']['losses'] != reports[kind]['runs']['fixed']['losses']


@pytest.mark.parametrize('kind', KINDS)
def test_no_parameter_goes_unused(reports, kind):
    """``find_unused_parameters=False`` (as on GPUs): DDP raises in the second
    iteration if any trainable parameter got no gradient in the first, so
    two finished iterations per mode are the proof; the controlled step also
    lists parameters without a gradient directly."""
    runs = reports[kind]['runs']
    assert set(runs) == {'fixed', 'global', 'frozen'}
    for name, run in runs.items():
        assert run['find_unused_parameters'] is False and run['iters'] == 2, name
    assert reports[kind]['sync_step']['params_without_grad'] == []


@pytest.mark.parametrize('kind', KINDS)
def test_gradients_are_synchronised(reports, kind):
    """Rank r on batch r ends the step where one process averaging both
    batches' gradients ends it (drop path and dropout off, same seeds), and
    far from where rank 0's own batch alone would have taken it."""
    step = reports[kind]['sync_step']
    print(f"{kind}: max |grad difference| vs one process on both batches "
          f"{step['grad_diff_vs_both_images']:.3g}, vs rank 0's batch alone "
          f"{step['grad_diff_vs_own_image_only']:.3g} (largest gradient "
          f"{step['grad_scale']:.3g}); max |parameter difference| after the step "
          f"{step['param_diff_vs_both_images']:.3g} (lr {step['lr']:.3g})")
    tol = 1e-5 * step['grad_scale']
    assert step['grad_diff_vs_both_images'] <= tol, step
    assert step['grad_diff_vs_own_image_only'] > 1000 * tol, step
    assert step['param_diff_vs_both_images'] <= 1e-3 * step['lr'], step
    assert step['rank_params_equal_after_step'], step


@pytest.mark.parametrize('kind', KINDS)
def test_frozen_stages_stay_frozen(reports, kind):
    run = reports[kind]['runs']['frozen']
    assert run['frozen_stage0_params'] > 0 and run['frozen_params'] > run['frozen_stage0_params']
    assert run['frozen_moved'] == [], run['frozen_moved']
    assert reports[kind]['runs']['fixed']['frozen_params'] == 0


def test_syncbn_on_cpu(reports, resumed):
    """Gloo group: torch's SyncBatchNorm refuses CPU tensors (the unmodified
    UperNet config, one training forward).  One process: the Runner turns
    SyncBN into BatchNorm and the config trains unchanged."""
    assert 'SyncBatchNorm expected input tensor to be on GPU' in reports['seg']['syncbn_error']
    assert resumed['seg']['batch_norm_types'] == ['_BatchNormXd']
    assert resumed['seg']['distributed'] is False


@pytest.mark.parametrize('kind', KINDS)
def test_rank0_checkpoint_resumes_on_one_process(reports, resumed, kind):
    assert reports[kind]['runs']['fixed']['checkpoint_exists']
    run = resumed[kind]
    assert run['distributed'] is False and run['wrapper'] != 'MMDistributedDataParallel'
    assert run['loaded_equal'], 'resumed weights differ from the checkpoint'
    assert (run['start_iter'], run['end_iter']) == (2, 3)
    assert run['finite']
