"""Entry script of ``tests/test_distributed.py``: mmengine's Runner on CPU.

Two ways to run it:

* ``python -m torch.distributed.run --nproc-per-node 2 tests/dist_train.py
  {det,seg} DATA_ROOT WORK_DIR`` -- the quickstart Mask R-CNN (``det``) or
  UperNet (``seg``) trained for a few iterations by mmengine's Runner with
  ``launcher='pytorch'`` on the gloo backend, wrapped in the real
  ``MMDistributedDataParallel``, optimised through the layer-decay
  constructor; then one controlled step that checks gradient
  synchronisation.  Rank 0 writes ``WORK_DIR/report.json``.
* ``python tests/dist_train.py resume OUT_DIR KIND:DATA_ROOT:CHECKPOINT ...``
  -- one process (``launcher='none'``) resumes each checkpoint that rank 0
  wrote and trains one more iteration; writes ``OUT_DIR/resume.json``.

CPU shims, all confined to this script (the package is not patched):

1. ``torch.cuda.set_device`` is a no-op while the Runner initialises the
   process group: mmengine 0.10.7's ``_init_dist_pytorch`` calls
   ``torch.cuda.set_device(LOCAL_RANK)`` before ``init_process_group``,
   which fails without an NVIDIA driver.  On a GPU it binds each process to
   its GPU; here there is nothing to bind.
2. ``model_wrapper_cfg = dict(type='MMDistributedDataParallel',
   device_ids=None, broadcast_buffers=False, find_unused_parameters=False)``
   (a config key, not a patch): it replaces the wrapper that
   ``Runner.wrap_model`` builds by default, which is the same class with the
   same ``broadcast_buffers`` / ``find_unused_parameters`` but
   ``device_ids=[LOCAL_RANK]``, a CUDA device index; DDP of a CPU module
   needs ``device_ids=None``.  ``find_unused_parameters=False`` is also what
   the configs train with on GPUs, so DDP raises on any parameter that gets
   no gradient.
3. ``env_cfg.dist_cfg.backend = 'gloo'`` (config): nccl needs GPUs.
4. UperNet's heads: ``norm_cfg.type = 'BN'`` in the training runs (config).
   torch's ``SyncBatchNorm`` refuses CPU tensors in training once a process
   group exists (``ValueError: SyncBatchNorm expected input tensor to be on
   GPU ...``); the script records that error with the unmodified config
   first.
"""
import copy
import json
import random
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from unittest import mock

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {'det': ROOT / 'configs/quickstart/mask_rcnn_parcnetv2_toy.py',
           'seg': ROOT / 'configs/quickstart/upernet_parcnetv2_toy.py'}
TRAIN_ITERS = 2  # DDP without find_unused_parameters raises from the 2nd forward on
# Images per process.  UperNet's heads need two: with plain BN (shim 4) the
# pyramid pooling's 1x1 map of one image has one value per channel, which
# BatchNorm refuses in training (SyncBN on GPUs pools over all processes).
PER_RANK = {'det': 1, 'seg': 2}


def seed_all(seed: int) -> None:
    """The same RNG state for the same image, in any process."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_cfg(kind: str, data_root: str, work_dir: Path, distributed: bool,
             kernel_mode: str = 'fixed', frozen_stages: int = 0, sync_bn: bool = False) -> Any:
    """The quickstart config with only the run length, loaders and CPU settings changed."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(CONFIGS[kind]))
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'pytorch' if distributed else 'none'
    cfg.randomness = dict(seed=0)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.env_cfg.mp_cfg = dict(mp_start_method='fork', opencv_num_threads=0)
    if distributed:
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                     broadcast_buffers=False, find_unused_parameters=False)
    backbone = cfg.model.backbone
    backbone.kernel_mode = kernel_mode
    if kernel_mode == 'global':
        # Stored kernels as if pretrained at half the size, so that 'global'
        # really resamples them to the 2H-1 x 2W-1 of each map.
        backbone.kernel_sizes = [2 * (96 // s) - 1 for s in (4, 8, 16, 32)]
    backbone.frozen_stages = frozen_stages
    assert backbone.drop_path_rate == 0.0  # the quickstart's: drop path off
    cfg.train_dataloader.dataset.data_root = data_root
    if kind == 'seg':
        for head in (cfg.model.decode_head, cfg.model.auxiliary_head):
            assert head.norm_cfg.type == 'SyncBN'
            if not sync_bn:
                head.norm_cfg = dict(type='BN', requires_grad=True)
            head.dropout_ratio = 0.0
    # The real configs' layer decay (0.9-0.95) rather than the quickstart's
    # 1.0, so that every layer's group has its own lr under the DDP wrapper.
    cfg.optim_wrapper.paramwise_cfg.decay_rate = 0.9
    cfg.train_dataloader.batch_size = PER_RANK[kind]
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=TRAIN_ITERS, val_interval=10**6)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=TRAIN_ITERS)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False, window_size=1)
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    return cfg


def build_runner(cfg: Any) -> Any:
    """A Runner whose process-group set-up skips ``torch.cuda.set_device`` (shim 1)."""
    from mmengine.runner import Runner
    with mock.patch('torch.cuda.set_device', lambda device: None):
        return Runner.from_cfg(cfg)


def frozen_snapshot(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Copies of the parameters that do not train (the frozen stages')."""
    return {n: p.detach().clone() for n, p in module.named_parameters() if not p.requires_grad}


def train_run(kind: str, data_root: str, work_dir: Path, kernel_mode: str,
              frozen_stages: int) -> Tuple[Any, Dict[str, Any]]:
    """Train TRAIN_ITERS iterations; report wrapper, frozen stages, losses, checkpoint."""
    from mmengine.hooks import Hook
    cfg = make_cfg(kind, data_root, work_dir, True, kernel_mode, frozen_stages)
    runner = build_runner(cfg)

    class Watch(Hook):
        priority = 'LOWEST'

        def __init__(self) -> None:
            self.frozen: Dict[str, torch.Tensor] = {}
            self.losses: List[float] = []

        def before_train(self, runner) -> None:  # after init_weights
            self.frozen = frozen_snapshot(runner.model.module)

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            self.losses.append(float(outputs['loss']))

    watch = Watch()
    runner.register_hook(watch)
    runner.train()
    module = runner.model.module
    frozen_now = frozen_snapshot(module)
    moved = [n for n, p in watch.frozen.items() if not torch.equal(p, frozen_now[n])]
    from mmengine.model import MMDistributedDataParallel
    groups = runner.optim_wrapper.optimizer.param_groups
    report = dict(
        wrapper=type(runner.model).__name__,
        is_mmddp=isinstance(runner.model, MMDistributedDataParallel),
        device_ids=runner.model.device_ids,
        find_unused_parameters=runner.model.find_unused_parameters,
        world_size=torch.distributed.get_world_size(),
        backend=str(torch.distributed.get_backend()),
        iters=runner.iter,
        losses=watch.losses,
        frozen_params=len(watch.frozen),
        frozen_stage0_params=sum(n.startswith('backbone.stages.0.') for n in watch.frozen),
        frozen_moved=moved,
        constructor=cfg.optim_wrapper.constructor,
        lr_scales=sorted({round(g.get('lr_scale', 1.0), 6) for g in groups}),
        syncbn_layers=sum(isinstance(m, torch.nn.SyncBatchNorm) for m in module.modules()),
        checkpoint=str(work_dir / f'iter_{TRAIN_ITERS}.pth'),
        checkpoint_exists=(work_dir / f'iter_{TRAIN_ITERS}.pth').is_file(),
        rank_params_equal=params_equal_across_ranks(module),
    )
    return runner, report


def params_equal_across_ranks(module: torch.nn.Module) -> bool:
    """Every rank holds bit-identical parameters (what DDP must keep true)."""
    flat = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


def fixed_batches(runner: Any, per_rank: int, world_size: int) -> List[Dict[str, Any]]:
    """One batch per rank from the first training items, identical in every process."""
    from mmengine.dataset import pseudo_collate
    dataset = runner.train_dataloader.dataset
    seed_all(1234)
    items = [dataset[i] for i in range(per_rank * world_size)]
    return [pseudo_collate(items[r * per_rank:(r + 1) * per_rank]) for r in range(world_size)]


def loss_of(model: torch.nn.Module, data: Dict[str, Any]) -> torch.Tensor:
    """The forward half of ``train_step``: preprocess, loss mode, parse losses."""
    module = getattr(model, 'module', model)
    data = module.data_preprocessor(data, True)
    losses = model(**data, mode='loss')
    loss, _ = module.parse_losses(losses)
    return loss


def grads_of(module: torch.nn.Module) -> Dict[str, Optional[torch.Tensor]]:
    """Copies of the trainable parameters' gradients (None: no gradient arrived)."""
    return {n: (None if p.grad is None else p.grad.detach().clone())
            for n, p in module.named_parameters() if p.requires_grad}


def max_diff(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> float:
    """Largest elementwise difference over all tensors of ``a``."""
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def sync_step(runner: Any, cfg: Any, per_rank: int) -> Dict[str, Any]:
    """One step, rank r on batch r, against one process accumulating all batches.

    DDP averages the ranks' gradients, so its step must equal one process
    that averages the gradients of batch 0 and batch 1 (each forward seeded
    as the rank that owns it) and steps once, with an optimizer built by the
    same constructor from the same parameters.  Rank 0 also keeps the
    gradient of its own batch alone: what an unsynchronised step would use.
    """
    from mmengine.optim import build_optim_wrapper
    rank = torch.distributed.get_rank()
    items = fixed_batches(runner, per_rank, torch.distributed.get_world_size())
    ddp = runner.model
    ddp.train()
    before = copy.deepcopy(ddp.module)  # identical on every rank (checked by the caller)
    optim_wrapper = build_optim_wrapper(ddp, copy.deepcopy(cfg.optim_wrapper))
    optim_wrapper.zero_grad()
    seed_all(rank)
    loss = loss_of(ddp, items[rank])
    optim_wrapper.backward(loss)
    ddp_grads = grads_of(ddp.module)
    no_grad = sorted(n for n, g in ddp_grads.items() if g is None)
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    after_ddp = {n: p.detach().clone() for n, p in ddp.module.named_parameters()}
    report: Dict[str, Any] = dict(
        params_without_grad=no_grad,
        rank_params_equal_after_step=params_equal_across_ranks(ddp.module))
    if rank != 0:
        return report
    reference = before
    ref_wrapper = build_optim_wrapper(reference, copy.deepcopy(cfg.optim_wrapper))
    ref_wrapper.zero_grad()
    own_image: Dict[str, torch.Tensor] = {}
    for index, data in enumerate(items):
        seed_all(index)
        (loss_of(reference, data) / len(items)).backward()
        if index == 0:
            own_image = {n: g * len(items) for n, g in grads_of(reference).items()}
    ref_grads = grads_of(reference)
    ref_wrapper.step()
    after_ref = {n: p.detach().clone() for n, p in reference.named_parameters()}
    trainable = [n for n, g in ddp_grads.items() if g is not None]
    lr = max(g['lr'] for g in optim_wrapper.optimizer.param_groups)
    report.update(
        lr=lr,
        grad_scale=max(float(ref_grads[n].abs().max()) for n in trainable),
        grad_diff_vs_both_images=max_diff({n: ddp_grads[n] for n in trainable},
                                          {n: ref_grads[n] for n in trainable}),
        grad_diff_vs_own_image_only=max_diff({n: ddp_grads[n] for n in trainable},
                                             {n: own_image[n] for n in trainable}),
        param_diff_vs_both_images=max_diff(after_ddp, after_ref),
    )
    return report


def syncbn_under_gloo(data_root: str, work_dir: Path) -> Optional[str]:
    """Train-mode loss of the UperNet config as it is (SyncBN heads) inside the gloo group.

    Returns torch's error message, or None if SyncBN trained on CPU tensors.
    """
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import MODELS, init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg = make_cfg('seg', data_root, work_dir / 'syncbn', True, sync_bn=True)
    model = MODELS.build(cfg.model)
    model.train()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    try:
        loss_of(model, pseudo_collate([dataset[0], dataset[1]]))
    except ValueError as error:
        return str(error)
    return None


def distributed_main(kind: str, data_root: str, work_dir: Path) -> None:
    """Three trainings (the configs' mode, 'global' kernels, frozen stages), the
    synchronisation step after the first, and for UperNet the SyncBN probe."""
    report: Dict[str, Any] = {'runs': {}}
    runs = [('fixed', 'fixed', 0), ('global', 'global', 0), ('frozen', 'fixed', 2)]
    for name, kernel_mode, frozen_stages in runs:
        runner, run_report = train_run(kind, data_root, work_dir / name, kernel_mode,
                                       frozen_stages)
        report['runs'][name] = run_report
        if name == 'fixed':
            report['sync_step'] = sync_step(runner, runner.cfg, PER_RANK[kind])
    if kind == 'seg':
        report['syncbn_error'] = syncbn_under_gloo(data_root, work_dir)
    if torch.distributed.get_rank() == 0:
        (work_dir / 'report.json').write_text(json.dumps(report, indent=1))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def resume_main(kind: str, data_root: str, checkpoint: Path, work_dir: Path) -> Dict[str, Any]:
    """One process resumes rank 0's checkpoint with the unmodified heads (SyncBN)."""
    from mmengine.hooks import Hook
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    DefaultScope._instance_dict.clear()  # the next kind's Runner sets its own scope
    cfg = make_cfg(kind, data_root, work_dir, False, sync_bn=True)
    cfg.resume = True
    cfg.load_from = str(checkpoint)
    cfg.train_cfg.max_iters = TRAIN_ITERS + 1
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']

    class Watch(Hook):
        def __init__(self) -> None:
            self.start_iter = -1
            self.loaded_equal = False

        def before_train(self, runner) -> None:  # after load_or_resume
            self.start_iter = runner.iter
            own = runner.model.state_dict()
            self.loaded_equal = (own.keys() == state.keys()
                                 and all(torch.equal(own[k], state[k]) for k in state))

    runner = Runner.from_cfg(cfg)
    watch = Watch()
    runner.register_hook(watch)
    runner.train()
    model = runner.model
    batch_norms = [m for m in model.modules()
                   if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    return dict(
        distributed=runner.distributed,
        wrapper=type(model).__name__,
        start_iter=watch.start_iter,
        end_iter=runner.iter,
        loaded_equal=watch.loaded_equal,
        batch_norm_types=sorted({type(m).__name__ for m in batch_norms}),
        finite=all(torch.isfinite(p).all().item() for p in model.parameters()),
    )


if __name__ == '__main__':
    torch.set_num_threads(1)
    if sys.argv[1] == 'resume':  # resume OUT_DIR KIND:DATA_ROOT:CHECKPOINT ...
        out = Path(sys.argv[2])
        results = {}
        for arg in sys.argv[3:]:
            kind, data_root, checkpoint = arg.split(':')
            results[kind] = resume_main(kind, data_root, Path(checkpoint), out / kind)
        (out / 'resume.json').write_text(json.dumps(results, indent=1))
    else:
        distributed_main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
