#!/usr/bin/env python
"""`make demo`: watch ParCNetV2 learn detection and segmentation on a CPU.

1. Writes two small deterministic datasets with ``mmparc.toy_data`` (what
   ``tools/misc/make_toy_dataset.py`` writes): COCO-style instance segmentation
   and ADE20K-style semantic segmentation.
2. Trains Mask R-CNN and UperNet with ParCNetV2 backbones from scratch
   through mmengine's Runner (``configs/quickstart_*.py``), the two runs side
   by side, one per core, and evaluates them on the val splits with COCO
   box/mask mAP and mIoU.
3. Draws predictions on val images with ``tools/infer.py``, segmentation
   overlays, training curves and one block's learned oversized kernels, and
   prints a summary table and where everything is.

Usage::

    python tools/demo.py                     # toy data, about 7 minutes on 2 free cores
    python tools/demo.py /path/to/coco       # your COCO-format dataset
    python tools/demo.py --quick             # a few iterations, to check the flow

A user dataset needs COCO's layout: ``train2017/``, ``val2017/`` and
``annotations/instances_{train,val}2017.json``.  Mask R-CNN trains on it as
is; UperNet trains on semantic maps made from its instance masks.
"""
import argparse
import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

# setuptools' notice about mmengine's use of pkg_resources says nothing to a
# demo user (it stays in the training logs).
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))
TOOLS = Path(__file__).resolve().parent
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

DET_CONFIG = REPO / 'configs' / 'quickstart' / 'mask_rcnn_parcnetv2_toy.py'
SEG_CONFIG = REPO / 'configs' / 'quickstart' / 'upernet_parcnetv2_toy.py'
#: Targets on the generated val splits (fractions, IoU 0.5 for the mAPs).
TARGETS = {'box mAP@0.5': 0.5, 'mask mAP@0.5': 0.4, 'mIoU': 0.6}
#: Runner metric keys (as logged) -> summary names and the factor to a fraction.
DET_METRICS = (('coco/bbox_mAP_50', 'box mAP@0.5', 1.0),
               ('coco/segm_mAP_50', 'mask mAP@0.5', 1.0))
SEG_METRICS = (('mIoU', 'mIoU', 0.01),)
NUM_PICTURES = 8


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
    metrics: Tuple[Tuple[str, str, float], ...]
    log_interval: Optional[int] = None

    @property
    def log_file(self) -> Path:
        return Path(self.work_dir) / 'console.log'


@dataclass
class DataInfo:
    """Where the demo's two datasets are and what they hold."""
    coco_root: Path
    coco_classes: Tuple[str, ...]
    coco_palette: List[List[int]]
    seg_root: Path
    seg_classes: Tuple[str, ...]
    seg_palette: List[List[int]]
    description: Dict[str, str]


# ---------------------------------------------------------------------- data
def _stamp_matches(root: Path, params: Dict[str, Any]) -> bool:
    stamp = root / '.demo_params.json'
    return stamp.is_file() and json.loads(stamp.read_text()) == params


def _write_stamp(root: Path, params: Dict[str, Any]) -> None:
    (root / '.demo_params.json').write_text(json.dumps(params, sort_keys=True))


def make_toy_data(out: Path, num_train: int, num_val: int, seed: int) -> DataInfo:
    """Generate (or reuse, if generated with the same parameters) both toy sets,
    at the quickstart configs' input size."""
    from mmparc import toy_data
    from mmengine.config import Config
    det_cfg, seg_cfg = Config.fromfile(str(DET_CONFIG)), Config.fromfile(str(SEG_CONFIG))
    image_size = det_cfg.image_size[0]
    coco_root, ade_root = out / 'data' / 'coco', out / 'data' / 'ade'
    # The generator's source is part of the key: a changed generator regenerates.
    source = hashlib.sha1(Path(toy_data.__file__).read_bytes()).hexdigest()
    params = dict(num_train=num_train, num_val=num_val, size=image_size, seed=seed,
                  generator=source)
    for root, writer in ((coco_root, toy_data.make_coco_instances),
                         (ade_root, toy_data.make_ade20k)):
        if _stamp_matches(root, params):
            print(f'  reusing {root} (same parameters)')
            continue
        if root.exists():
            shutil.rmtree(root)
        start = time.time()
        writer(root, num_train, num_val, image_size=(image_size, image_size), seed=seed)
        _write_stamp(root, params)
        print(f'  wrote {root}: {num_train} train + {num_val} val images, '
              f'{image_size}x{image_size}, seed {seed} ({time.time() - start:.1f}s)')
    text = f'toy, {num_train}+{num_val} imgs, {image_size}px'
    return DataInfo(coco_root, tuple(toy_data.COCO_CLASSES), [list(c) for c in det_cfg.palette],
                    ade_root, tuple(toy_data.ADE_CLASSES), [list(c) for c in seg_cfg.palette],
                    {'detection': text, 'segmentation': text})


def _coco_layout(root: Path) -> Dict[str, Path]:
    paths = {'train_ann': root / 'annotations' / 'instances_train2017.json',
             'val_ann': root / 'annotations' / 'instances_val2017.json',
             'train_img': root / 'train2017', 'val_img': root / 'val2017'}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise SystemExit(f'{root} is not a COCO-format dataset; missing: {missing}. '
                         'Expected train2017/, val2017/ and '
                         'annotations/instances_{train,val}2017.json.')
    return paths


def coco_to_semantic(coco_root: Path, out_root: Path) -> Tuple[str, ...]:
    """ADE20K-style semantic maps from a COCO instance dataset.

    PNG value 1 is "background", ``i + 2`` is category ``i`` (in id order),
    0 (ignored under ``reduce_zero_label``) marks crowd regions; later
    annotations paint over earlier ones.  Images are re-encoded as JPEG, as
    mmseg's ADE20K layout expects.  Returns the class names in label order.
    """
    import cv2
    import numpy as np
    from pycocotools.coco import COCO
    paths = _coco_layout(coco_root)
    names: Tuple[str, ...] = ()
    for split, folder in (('train', 'training'), ('val', 'validation')):
        coco = COCO(str(paths[f'{split}_ann']))
        cat_ids = sorted(coco.getCatIds())
        names = ('background',) + tuple(coco.loadCats(cat_ids)[i]['name']
                                        for i in range(len(cat_ids)))
        value = {cid: i + 2 for i, cid in enumerate(cat_ids)}
        img_dir, ann_dir = out_root / 'images' / folder, out_root / 'annotations' / folder
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for image in coco.loadImgs(sorted(coco.getImgIds())):
            label = np.ones((image['height'], image['width']), np.uint8)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=image['id'])):
                mask = coco.annToMask(ann).astype(bool)
                label[mask] = 0 if ann.get('iscrowd', 0) else min(value[ann['category_id']], 254)
            stem = Path(image['file_name']).stem
            bgr = cv2.imread(str(paths[f'{split}_img'] / image['file_name']), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SystemExit(f"cannot read {paths[f'{split}_img'] / image['file_name']}")
            cv2.imwrite(str(img_dir / f'{stem}.jpg'), bgr)
            cv2.imwrite(str(ann_dir / f'{stem}.png'), label)
    return names


def user_data(coco_root: Path, out: Path) -> DataInfo:
    """The user's COCO dataset for detection, its semantic version for UperNet."""
    from pycocotools.coco import COCO
    import numpy as np
    paths = _coco_layout(coco_root)
    coco = COCO(str(paths['train_ann']))
    cat_ids = sorted(coco.getCatIds())
    classes = tuple(c['name'] for c in coco.loadCats(cat_ids))
    seg_root = out / 'data' / f'{coco_root.name}_semantic'
    params = dict(source=str(coco_root.resolve()),
                  mtime=max(paths['train_ann'].stat().st_mtime,
                            paths['val_ann'].stat().st_mtime))
    if _stamp_matches(seg_root, params):
        seg_classes = ('background',) + classes
        print(f'  reusing {seg_root}')
    else:
        if seg_root.exists():
            shutil.rmtree(seg_root)
        start = time.time()
        seg_classes = coco_to_semantic(coco_root, seg_root)
        _write_stamp(seg_root, params)
        print(f'  wrote semantic maps of {coco_root} to {seg_root} '
              f'({time.time() - start:.1f}s)')
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (len(classes), 3)).tolist()
    num_train = len(coco.getImgIds())
    num_val = len(COCO(str(paths['val_ann'])).getImgIds())
    text = f'{coco_root.name}, {num_train}+{num_val} imgs'
    return DataInfo(coco_root, classes, palette, seg_root, seg_classes,
                    [[200, 200, 200]] + palette,
                    {'detection': text, 'segmentation': text + ' (semantic)'})


# ------------------------------------------------------------------ training
def _apply_iters(cfg, max_iters: Optional[int], val_interval: Optional[int]) -> None:
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
    _apply_iters(cfg, job.max_iters, job.val_interval)
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
    runner = Runner.from_cfg(build_config(job))
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
    (Path(job.work_dir) / 'cpu_seconds.json').write_text(json.dumps({'cpu_seconds': cpu}))


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
                print(f'  [{job.tag:<{width}}] done in {_fmt_time(durations[tag])}', flush=True)
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


def final_metrics(work_dir: Path, metrics: Sequence[Tuple[str, str, float]]
                  ) -> Tuple[Dict[str, float], Tuple[list, list]]:
    """The last validation's metrics (as fractions) and the run's records."""
    from mmparc.visualization import find_scalars, read_scalars
    train, val = read_scalars(find_scalars(work_dir))
    found: Dict[str, float] = {}
    for record in val:
        for key, label, scale in metrics:
            if key in record:
                found[label] = float(record[key]) * scale
    return found, (train, val)


# ------------------------------------------------------------------ pictures
@contextlib.contextmanager
def output_to(log_file: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors included) to
    ``log_file`` meanwhile: the inferencers' progress bars and warnings would
    bury the demo's own output.  On an error the log's tail is shown."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    failed = False
    try:
        with open(log_file, 'w') as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            except BaseException:
                failed = True
                raise
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        if failed:
            tail = Path(log_file).read_text(errors='replace').splitlines()[-30:]
            print('\n'.join([f'last lines of {log_file}:'] + tail), flush=True)


def _val_images(folder: Path, count: int) -> List[Path]:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in ('.jpg', '.jpeg', '.png'))
    return images[:count]


def detection_pictures(config: Path, checkpoint: Path, images: Sequence[Path],
                       infer_dir: Path, out: Path) -> Tuple[Path, Path]:
    """Predictions drawn by ``tools/infer.py``, and a grid of them."""
    from infer import infer
    from mmparc.visualization import read_rgb, tile_images, write_rgb
    vis_dir = infer([str(p) for p in images], str(config), str(checkpoint), str(infer_dir),
                    task='det', score_thr=0.5)
    drawn = [read_rgb(vis_dir / p.name) for p in images]
    grid = tile_images(drawn, columns=4, cell=384, labels=[p.name for p in images])
    return vis_dir, write_rgb(out / 'detection_predictions.jpg', grid)


def segmentation_pictures(config: Path, checkpoint: Path, images: Sequence[Path],
                          ann_dir: Path, palette: Sequence[Sequence[int]],
                          infer_dir: Path, out: Path) -> Tuple[Path, Path]:
    """Predictions by ``tools/infer.py``; a grid of image | ground truth | prediction."""
    import cv2
    import numpy as np
    from infer import infer
    from mmparc.visualization import overlay_labels, read_rgb, tile_images, write_rgb
    vis_dir = infer([str(p) for p in images], str(config), str(checkpoint), str(infer_dir),
                    task='seg')
    cells, labels = [], []
    for path in images:
        image = read_rgb(path)
        truth = cv2.imread(str(ann_dir / f'{path.stem}.png'), cv2.IMREAD_UNCHANGED)
        truth = np.where(truth == 0, 255, truth.astype(np.int64) - 1)  # reduce_zero_label
        pred = cv2.imread(str(infer_dir / 'pred' / f'{path.stem}.png'), cv2.IMREAD_UNCHANGED)
        if pred is None:
            raise FileNotFoundError(f'no prediction for {path.name} in {infer_dir}/pred')
        cells += [image, overlay_labels(image, truth, palette),
                  overlay_labels(image, pred, palette)]
        labels += [path.name, 'ground truth', 'ParCNetV2 + UperNet']
    grid = tile_images(cells, columns=6, cell=256, labels=labels)
    return vis_dir, write_rgb(out / 'segmentation_overlays.jpg', grid)


def legend_strip(classes: Sequence[str], palette: Sequence[Sequence[int]], width: int):
    """A row of colour swatches with class names, for the segmentation grid."""
    import cv2
    import numpy as np
    strip = np.full((28, width, 3), 255, np.uint8)
    x = 8
    for name, colour in zip(classes, palette):
        cv2.rectangle(strip, (x, 6), (x + 16, 22), tuple(int(c) for c in colour), -1)
        cv2.putText(strip, name, (x + 22, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1,
                    cv2.LINE_AA)
        x += 34 + 9 * len(name)
    return strip


def kernel_picture(checkpoint: Path, out: Path, stage: int = 1, block: int = 0) -> Path:
    """The learned oversized kernels of one backbone block."""
    import torch
    import mmparc  # noqa: F401  (allow-lists Runner checkpoints for weights_only)
    from mmparc.visualization import oversized_kernels, plot_oversized_kernels
    state = torch.load(str(checkpoint), map_location='cpu')['state_dict']
    kernel_h, kernel_w = oversized_kernels(state, stage, block)
    return plot_oversized_kernels(
        kernel_h, kernel_w, out / 'oversized_kernels.png',
        title=f'Learned oversized kernels, Mask R-CNN backbone stage {stage + 1} block '
              f'{block + 1} ({kernel_h.shape[1]} taps on a '
              f'{(kernel_h.shape[1] + 1) // 2}-high map)')


# ------------------------------------------------------------------- summary
def _fmt_time(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f'{minutes}m{secs:02d}s'


def summary_table(rows: Sequence[Dict[str, Any]]) -> str:
    """A plain-text table of the runs' metrics against the targets."""
    header = ('task', 'model', 'data', 'iters', 'train time', 'cpu time', 'metric', 'value',
              'target', 'met')
    lines = []
    for row in rows:
        first = True
        for metric, value in row['metrics'].items():
            target = row['targets'].get(metric)
            met = '' if target is None else ('yes' if value >= target else 'NO')
            cells = ((row['task'], row['model'], row['data'], str(row['iters']),
                      _fmt_time(row['train_seconds']), _fmt_time(row['cpu_seconds']))
                     if first else ('',) * 6)
            lines.append(cells + (metric, f'{value:.3f}',
                                  '' if target is None else f'{target:.2f}', met))
            first = False
    widths = [max(len(str(r[i])) for r in [header] + lines) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        return '  '.join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return '\n'.join([fmt(header), fmt(['-' * w for w in widths])] + [fmt(r) for r in lines])


# ---------------------------------------------------------------------- main
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    parser.add_argument('data', nargs='?', type=Path, default=None,
                        help='a COCO-format dataset to use instead of the generated one')
    parser.add_argument('--out', type=Path, default=REPO / 'outputs' / 'demo',
                        help='output folder (default: outputs/demo)')
    parser.add_argument('--num-train', type=int, default=400, help='toy train images')
    parser.add_argument('--num-val', type=int, default=60, help='toy val images')
    parser.add_argument('--seed', type=int, default=0, help='data and training seed')
    parser.add_argument('--det-iters', type=int, default=None,
                        help='Mask R-CNN iterations (default: the config)')
    parser.add_argument('--seg-iters', type=int, default=None,
                        help='UperNet iterations (default: the config)')
    parser.add_argument('--val-interval', type=int, default=None,
                        help='validate every N iterations (default: the configs)')
    parser.add_argument('--jobs', type=int, default=None,
                        help='runs trained at once (default: 2 with 2+ cores, else 1)')
    parser.add_argument('--quick', action='store_true',
                        help='check the flow in a minute or two: a handful of images '
                             'and iterations (targets are not expected to be met)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.num_train, args.num_val = 8, 4
        args.det_iters = args.det_iters or 2
        args.seg_iters = args.seg_iters or 2
    start = time.time()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    parallel = args.jobs or (2 if cores >= 2 else 1)
    threads = max(1, cores // parallel)
    times: Dict[str, float] = {}

    print(f'== 1/4 data ({"your COCO dataset" if args.data else "generated"})', flush=True)
    t0 = time.time()
    if args.data is not None:
        data = user_data(args.data.resolve(), out)
    else:
        data = make_toy_data(out, args.num_train, args.num_val, args.seed)
    times['data'] = time.time() - t0

    det_ann = str(data.coco_root / 'annotations' / 'instances_val2017.json')
    det_meta = dict(classes=list(data.coco_classes), palette=data.coco_palette)
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
    if args.data is not None:  # images of different sizes: mmseg tests them one by one
        seg_options['val_dataloader.batch_size'] = 1
    if args.quick:
        for options in (det_options, seg_options):
            options['train_dataloader.batch_size'] = 2
    log_interval = 1 if args.quick else None
    jobs = [
        Job('Mask R-CNN', 'det', str(DET_CONFIG), str(out / 'detection'), det_options,
            args.det_iters, args.val_interval, threads, args.seed, DET_METRICS, log_interval),
        Job('UperNet', 'seg', str(SEG_CONFIG), str(out / 'segmentation'), seg_options,
            args.seg_iters, args.val_interval, threads, args.seed, SEG_METRICS, log_interval),
    ]
    print(f'== 2/4 training both models from scratch ({parallel} at a time, '
          f'{threads} thread(s) each)', flush=True)
    t0 = time.time()
    durations = run_jobs(jobs, parallel)
    times['training'] = time.time() - t0

    print('== 3/4 pictures', flush=True)
    t0 = time.time()
    import torch
    torch.set_num_threads(cores)
    pictures = out / 'pictures'
    pictures.mkdir(parents=True, exist_ok=True)
    det_ckpt = last_checkpoint(out / 'detection')
    seg_ckpt = last_checkpoint(out / 'segmentation')
    det_metrics, det_records = final_metrics(out / 'detection', DET_METRICS)
    seg_metrics, seg_records = final_metrics(out / 'segmentation', SEG_METRICS)
    det_images = _val_images(data.coco_root / 'val2017', NUM_PICTURES)
    seg_images = _val_images(data.seg_root / 'images' / 'validation', 4)
    print(f'  drawing predictions on {len(det_images)} + {len(seg_images)} val images with '
          'tools/infer.py, curves and kernels', flush=True)
    with output_to(out / 'pictures.log'):
        det_vis, det_grid = detection_pictures(DET_CONFIG, det_ckpt, det_images,
                                               out / 'infer' / 'detection', pictures)
        seg_vis, seg_grid = segmentation_pictures(
            SEG_CONFIG, seg_ckpt, seg_images, data.seg_root / 'annotations' / 'validation',
            data.seg_palette, out / 'infer' / 'segmentation', pictures)
        _add_legend(seg_grid, data.seg_classes, data.seg_palette)
        from mmparc.visualization import plot_training_curves
        curves = plot_training_curves({'Mask R-CNN': det_records, 'UperNet': seg_records},
                                      {'Mask R-CNN': DET_METRICS, 'UperNet': SEG_METRICS},
                                      pictures / 'training_curves.png', targets=TARGETS)
        kernels = kernel_picture(det_ckpt, pictures)
    times['pictures'] = time.time() - t0
    times['total'] = time.time() - start

    rows = [
        dict(task='detection', model='Mask R-CNN + ParCNetV2', data=data.description['detection'],
             iters=_iters(det_records), train_seconds=durations['det'],
             cpu_seconds=_cpu_seconds(out / 'detection'), metrics=det_metrics, targets=TARGETS),
        dict(task='segmentation', model='UperNet + ParCNetV2',
             data=data.description['segmentation'], iters=_iters(seg_records),
             train_seconds=durations['seg'], cpu_seconds=_cpu_seconds(out / 'segmentation'),
             metrics=seg_metrics, targets=TARGETS),
    ]
    table = summary_table(rows)
    toy = args.data is None and not args.quick
    met = {name: value >= TARGETS[name] for row in rows for name, value in row['metrics'].items()}
    outputs = {
        'summary': out / 'summary.json',
        'pictures: detection predictions': det_grid,
        'pictures: segmentation overlays': seg_grid,
        'pictures: training curves': curves,
        'pictures: oversized kernels': kernels,
        'drawn val images (tools/infer.py)': det_vis.parent.parent,
        'detection checkpoint': det_ckpt,
        'segmentation checkpoint': seg_ckpt,
        'training logs': out / '{detection,segmentation}/console.log',
        'datasets': out / 'data' if args.data is None else data.seg_root,
    }
    summary = dict(
        rows=rows, targets=TARGETS, targets_met=met if toy else None,
        seconds=times, cpu_cores=cores, parallel_runs=parallel, threads_per_run=threads,
        quick=args.quick, user_data=str(args.data) if args.data else None,
        jobs=[asdict(job) for job in jobs],
        outputs={k: str(v) for k, v in outputs.items()})
    (out / 'summary.json').write_text(json.dumps(summary, indent=2, default=str))

    print(f'== 4/4 summary (total {_fmt_time(times["total"])}: data {_fmt_time(times["data"])}, '
          f'training {_fmt_time(times["training"])}, pictures {_fmt_time(times["pictures"])})')
    print()
    print(table)
    print()
    if toy:
        missed = [name for name, ok in met.items() if not ok]
        print('All targets met.' if not missed else f'Targets missed: {", ".join(missed)}.')
    elif args.quick:
        print('(--quick checks the flow only: a few iterations cannot reach the targets.)')
    width = max(len(k) for k in outputs)
    print('Outputs:')
    for key, path in outputs.items():
        print(f'  {key:<{width}}  {_rel(path)}')
    return 0


def _cpu_seconds(work_dir: Path) -> float:
    return float(json.loads((work_dir / 'cpu_seconds.json').read_text())['cpu_seconds'])


def _iters(records: Tuple[list, list]) -> int:
    train, _ = records
    return int(max((r['step'] for r in train), default=0))


def _rel(path: Path) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _add_legend(grid_file: Path, classes: Sequence[str],
                palette: Sequence[Sequence[int]]) -> None:
    import numpy as np
    from mmparc.visualization import read_rgb, write_rgb
    grid = read_rgb(grid_file)
    write_rgb(grid_file, np.concatenate([legend_strip(classes, palette, grid.shape[1]), grid]))


if __name__ == '__main__':
    sys.exit(main())
