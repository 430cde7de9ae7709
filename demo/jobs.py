"""The demo's training jobs: their configs, and running them side by side.

Each job is one quickstart config trained by mmengine's Runner in a child
process of its own (one per core, all output to the job's ``console.log``);
the parent turns the logger's lines into short progress lines.
"""
import json
import math
import multiprocessing
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from demo.datasets import DataInfo

REPO = Path(__file__).resolve().parents[1]
DET_CONFIG = REPO / 'configs' / 'quickstart' / 'mask_rcnn_parcnetv2_toy.py'
SEG_CONFIG = REPO / 'configs' / 'quickstart' / 'upernet_parcnetv2_toy.py'
#: (Runner metric key as logged, summary name, factor to a fraction).
Metric = Tuple[str, str, float]
DET_METRICS: Tuple[Metric, ...] = (('coco/bbox_mAP_50', 'box mAP@0.5', 1.0),
                                   ('coco/segm_mAP_50', 'mask mAP@0.5', 1.0))
SEG_METRICS: Tuple[Metric, ...] = (('mIoU', 'mIoU', 0.01),)
#: What a job writes beside the Runner's files: its CPU seconds.
CPU_SECONDS_FILE = 'cpu_seconds.json'


@dataclass
class Job:
    """One training run, handed to a child process (so it must pickle)."""
    name: str
    tag: str
    config: str
    work_dir: str
    options: Dict[str, Any]
    max_iters: Optional[int]
    val_interval: Optional[int]
    threads: int
    seed: int
    metrics: Tuple[Metric, ...]
    log_interval: Optional[int] = None

    @property
    def log_file(self) -> Path:
        return Path(self.work_dir) / 'console.log'

    @property
    def saved_config(self) -> Path:
        """The config the run trained with (classes, heads, data roots included),
        which is what its checkpoints fit."""
        return Path(self.work_dir) / 'config.py'


def quickstart_jobs(data: DataInfo, out: Path, det_iters: Optional[int],
                    seg_iters: Optional[int], val_interval: Optional[int], threads: int,
                    seed: int, user_data: bool, quick: bool) -> Tuple[Job, Job]:
    """Mask R-CNN and UperNet on ``data``: the quickstart configs pointed at
    its folders, classes and palettes (the configs name the toy sets')."""
    det_ann = str(data.coco_root / 'annotations' / 'instances_val2017.json')
    # mmdet's visualizer takes a colour as a tuple (a list reads as a list of colours).
    det_meta = dict(classes=list(data.coco_classes),
                    palette=[tuple(c) for c in data.coco_palette])
    det_options: Dict[str, Any] = {
        'train_dataloader.dataset.data_root': str(data.coco_root) + '/',
        'train_dataloader.dataset.metainfo': det_meta,
        'val_dataloader.dataset.data_root': str(data.coco_root) + '/',
        'val_dataloader.dataset.metainfo': det_meta,
        'test_dataloader.dataset.data_root': str(data.coco_root) + '/',
        'test_dataloader.dataset.metainfo': det_meta,
        'val_evaluator.ann_file': det_ann,
        'test_evaluator.ann_file': det_ann,
        'model.roi_head.bbox_head.num_classes': len(data.coco_classes),
        'model.roi_head.mask_head.num_classes': len(data.coco_classes),
    }
    seg_meta = dict(classes=list(data.seg_classes), palette=data.seg_palette)
    seg_options: Dict[str, Any] = {
        'train_dataloader.dataset.data_root': str(data.seg_root),
        'train_dataloader.dataset.metainfo': seg_meta,
        'val_dataloader.dataset.data_root': str(data.seg_root),
        'val_dataloader.dataset.metainfo': seg_meta,
        'test_dataloader.dataset.data_root': str(data.seg_root),
        'test_dataloader.dataset.metainfo': seg_meta,
        'model.decode_head.num_classes': len(data.seg_classes),
        'model.auxiliary_head.num_classes': len(data.seg_classes),
    }
    if user_data:  # images of different sizes: mmseg tests them one by one
        seg_options['val_dataloader.batch_size'] = 1
    if quick:
        for options in (det_options, seg_options):
            options['train_dataloader.batch_size'] = 2
    log_interval = 1 if quick else None
    return (Job('Mask R-CNN', 'det', str(DET_CONFIG), str(out / 'detection'), det_options,
                det_iters, val_interval, threads, seed, DET_METRICS, log_interval),
            Job('UperNet', 'seg', str(SEG_CONFIG), str(out / 'segmentation'), seg_options,
                seg_iters, val_interval, threads, seed, SEG_METRICS, log_interval))


def apply_iters(cfg, max_iters: Optional[int], val_interval: Optional[int]) -> None:
    """Change the schedule length, moving everything that ended at the old end."""
    old = cfg.train_cfg.max_iters
    if max_iters is not None and max_iters != old:
        cfg.train_cfg.max_iters = max_iters
        for scheduler in cfg.param_scheduler:
            if scheduler.get('end') == old:
                scheduler['end'] = max_iters
            scheduler['end'] = min(scheduler['end'], max_iters)
            scheduler['begin'] = min(scheduler.get('begin', 0), max(scheduler['end'] - 1, 0))
        cfg.default_hooks.checkpoint.interval = max_iters
    if val_interval is not None:
        cfg.train_cfg.val_interval = val_interval
    cfg.train_cfg.val_interval = min(cfg.train_cfg.val_interval, cfg.train_cfg.max_iters)


def build_config(job: Job):
    """The job's mmengine Config: the quickstart config plus the demo's changes."""
    from mmengine.config import Config
    cfg = Config.fromfile(job.config)
    cfg.merge_from_dict(job.options)
    cfg.work_dir = job.work_dir
    cfg.randomness = dict(seed=job.seed)
    apply_iters(cfg, job.max_iters, job.val_interval)
    if job.log_interval is not None:
        cfg.default_hooks.logger.interval = job.log_interval
    # Log at every validation iteration too, so that the progress shown
    # names the iteration each validation belongs to.
    cfg.default_hooks.logger.interval = math.gcd(
        cfg.default_hooks.logger.interval, cfg.train_cfg.val_interval, cfg.train_cfg.max_iters)
    return cfg


def train_job(job: Job) -> None:
    """Child process: train (and validate) one model; all output to its log."""
    Path(job.work_dir).mkdir(parents=True, exist_ok=True)
    log = open(job.log_file, 'w', buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout.reconfigure(line_buffering=True)
    import torch
    torch.set_num_threads(job.threads)
    import mmparc  # noqa: F401  (registers ParCNetV2)
    from mmengine.runner import Runner
    cfg = build_config(job)
    cfg.dump(str(job.saved_config))
    runner = Runner.from_cfg(cfg)
    runner.train()
    # CPU seconds (this process and its data loader workers, which count once
    # shut down and joined): on a shared machine they tell what the wall time
    # would be on free cores.
    import gc
    import resource
    del runner
    gc.collect()
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() + workers.ru_utime + workers.ru_stime
    (Path(job.work_dir) / CPU_SECONDS_FILE).write_text(json.dumps({'cpu_seconds': cpu}))


def format_duration(seconds: float) -> str:
    """``75.0`` -> ``'1m15s'``: the demo's runs take minutes."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f'{minutes}m{secs:02d}s'


_ITER = re.compile(r'Iter\((train|val|test)\)\s*\[\s*(\d+)/(\d+)\]')
_PAIR = re.compile(r'([\w./@-]+): (\d+ days?, [\d:]+|\d+:\d\d:\d\d|-?[\d.]+(?:e[-+]?\d+)?)')


def progress_line(line: str, job: Job, state: Dict[str, int]) -> Optional[str]:
    """A compact progress line for one line of a run's log, or None to hide it.

    mmengine's logger lines are kept for training progress (iterations done
    / total, ETA, loss), validation progress and validation metrics; errors
    pass through unchanged, everything else stays in the log file.
    """
    match = _ITER.search(line)
    if match is None:
        if ' - ERROR - ' in line or line.startswith('Traceback'):
            return line.rstrip()
        return None
    mode, done, total = match.group(1), int(match.group(2)), int(match.group(3))
    pairs = dict(_PAIR.findall(line[match.end():]))
    if mode == 'train':
        state['iter'] = done
        text = f'train {done:>{len(str(total))}}/{total}'
        if 'loss' in pairs:
            text += f"  loss {float(pairs['loss']):.3f}"
        if 'eta' in pairs:
            text += f"  eta {pairs['eta']}"
        if 'time' in pairs:
            text += f"  {float(pairs['time']):.2f} s/it"
        return text
    found = [(label, float(pairs[key]) * scale) for key, label, scale in job.metrics
             if key in pairs]
    if found:
        return f"val @ iter {state.get('iter', 0)}: " + '  '.join(
            f'{label} {value:.3f}' for label, value in found)
    text = f'{mode} {done}/{total}'
    if 'eta' in pairs:
        text += f"  eta {pairs['eta']}"
    return text


def run_jobs(jobs: Sequence[Job], parallel: int) -> Dict[str, float]:
    """Run the jobs in child processes, ``parallel`` at a time, relaying
    progress; returns each job's wall time.  A failing job stops the rest."""
    ctx = multiprocessing.get_context('spawn')
    pending = list(jobs)
    running: Dict[str, Tuple[Job, Any, float]] = {}
    offsets: Dict[str, int] = {}
    states: Dict[str, Dict[str, int]] = {job.tag: {} for job in jobs}
    durations: Dict[str, float] = {}
    width = max(len(job.tag) for job in jobs)

    def relay(job: Job) -> None:
        if not job.log_file.is_file():
            return
        with open(job.log_file, 'rb') as f:
            f.seek(offsets.get(job.tag, 0))
            chunk = f.read()
        end = chunk.rfind(b'\n') + 1
        offsets[job.tag] = offsets.get(job.tag, 0) + end
        for raw in chunk[:end].decode('utf-8', 'replace').splitlines():
            text = progress_line(raw, job, states[job.tag])
            if text:
                print(f'  [{job.tag:<{width}}] {text}', flush=True)

    try:
        while pending or running:
            while pending and len(running) < parallel:
                job = pending.pop(0)
                Path(job.work_dir).mkdir(parents=True, exist_ok=True)
                job.log_file.write_text('')
                offsets[job.tag] = 0
                proc = ctx.Process(target=train_job, args=(job,), name=f'demo-{job.tag}')
                proc.start()
                running[job.tag] = (job, proc, time.time())
                print(f'  [{job.tag:<{width}}] training {job.name} ({job.threads} thread(s)), '
                      f'log: {job.log_file}', flush=True)
            time.sleep(0.5)
            for tag, (job, proc, start) in list(running.items()):
                relay(job)
                if proc.is_alive():
                    continue
                proc.join()
                relay(job)
                del running[tag]
                durations[tag] = time.time() - start
                if proc.exitcode != 0:
                    tail = job.log_file.read_text(errors='replace').splitlines()[-40:]
                    print('\n'.join(['', f'{job.name} failed (exit code {proc.exitcode}); '
                                     f'last lines of {job.log_file}:'] + tail), flush=True)
                    raise SystemExit(1)
                print(f'  [{job.tag:<{width}}] done in {format_duration(durations[tag])}',
                      flush=True)
    finally:
        for _, proc, _ in running.values():
            if proc.is_alive():
                proc.terminate()
                proc.join()
    return durations


def last_checkpoint(work_dir: Path) -> Path:
    """The checkpoint a Runner saved last (its ``last_checkpoint`` file)."""
    pointer = work_dir / 'last_checkpoint'
    if not pointer.is_file():
        raise FileNotFoundError(f'no checkpoint in {work_dir}')
    return Path(pointer.read_text().strip())


def cpu_seconds(work_dir: Path) -> float:
    """The CPU seconds :func:`train_job` recorded for the run in ``work_dir``."""
    return float(json.loads((work_dir / CPU_SECONDS_FILE).read_text())['cpu_seconds'])
