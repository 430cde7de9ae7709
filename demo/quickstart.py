#!/usr/bin/env python
"""`make demo`: watch ParCNetV2 learn detection and segmentation on a CPU.

1. Data (``demo/datasets.py``): writes two small deterministic datasets with
   ``mmparc.testing.toy_data`` (what ``tools/misc/make_toy_dataset.py`` writes):
   COCO-style instance segmentation and ADE20K-style semantic segmentation;
   or takes your COCO dataset and makes semantic maps of its instance masks.
2. Training (``demo/jobs.py``): trains Mask R-CNN and UperNet with
   ParCNetV2 backbones from scratch through mmengine's Runner
   (``configs/quickstart/*.py``), the two runs side by side, one per core,
   and evaluates them on the val splits with COCO box/mask mAP and mIoU.
3. Pictures (``demo/pictures.py``): draws predictions on val images with
   :func:`mmparc.apis.infer` and the config each run saved, segmentation overlays, training curves and one block's
   learned oversized kernels (``mmparc.visualization``).
4. Summary (``demo/report.py``): prints a table of the metrics against the
   targets and where everything is, and writes ``summary.json``.

Usage, from the checkout's root (``make demo`` runs the first)::

    python -m demo.quickstart                # generated data (run time: docs/get_started.md)
    python -m demo.quickstart /path/to/coco  # your COCO-format dataset
    python -m demo.quickstart --quick        # a few iterations, to check the flow

Outputs go to ``outputs/demo`` (``outputs/demo_quick`` with ``--quick``) or ``--out``.

A user dataset needs COCO's layout: ``train2017/``, ``val2017/`` and
``annotations/instances_{train,val}2017.json``.  Mask R-CNN trains on it as
is; UperNet trains on semantic maps made from its instance masks.
"""
import argparse
import json
import os
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Optional, Sequence

# setuptools' notice about mmengine's use of pkg_resources says nothing to a
# demo user (it stays in the training logs).
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: its siblings are not importable as the demo package
    raise SystemExit('run the demo from the checkout root as a module: '
                     'python -m demo.quickstart [--quick] [/path/to/coco]')

from demo.datasets import make_toy_data, user_data  # noqa: E402
from demo.jobs import (DET_CONFIG, SEG_CONFIG, last_checkpoint, quickstart_jobs,  # noqa: E402
                       run_jobs)
from demo.pictures import draw_pictures  # noqa: E402
from demo.report import (TARGETS, final_metrics, print_report, summary_row,  # noqa: E402
                         targets_met)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    parser.add_argument('data', nargs='?', type=Path, default=None,
                        help='a COCO-format dataset to use instead of the generated one')
    parser.add_argument('--out', type=Path, default=None,
                        help='output folder (default: outputs/demo, with --quick '
                             'outputs/demo_quick)')
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
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = REPO / 'outputs' / ('demo_quick' if args.quick else 'demo')
    if args.quick:
        args.num_train, args.num_val = 8, 4
        args.det_iters = args.det_iters or 2
        args.seg_iters = args.seg_iters or 2
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
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
        data = make_toy_data(out, args.num_train, args.num_val, args.seed,
                             DET_CONFIG, SEG_CONFIG)
    times['data'] = time.time() - t0

    jobs = quickstart_jobs(data, out, args.det_iters, args.seg_iters, args.val_interval,
                           threads, args.seed, user_data=args.data is not None,
                           quick=args.quick)
    det, seg = jobs
    print(f'== 2/4 training both models from scratch ({parallel} at a time, '
          f'{threads} thread(s) each)', flush=True)
    t0 = time.time()
    durations = run_jobs(jobs, parallel)
    times['training'] = time.time() - t0

    print('== 3/4 pictures', flush=True)
    t0 = time.time()
    import torch
    torch.set_num_threads(cores)
    det_dir, seg_dir = Path(det.work_dir), Path(seg.work_dir)
    det_ckpt, seg_ckpt = last_checkpoint(det_dir), last_checkpoint(seg_dir)
    det_metrics, det_records = final_metrics(det_dir, det.metrics)
    seg_metrics, seg_records = final_metrics(seg_dir, seg.metrics)
    pictures = draw_pictures(data, (det.saved_config, det_ckpt), (seg.saved_config, seg_ckpt),
                             {det.name: det_records, seg.name: seg_records},
                             {det.name: det.metrics, seg.name: seg.metrics}, out)
    times['pictures'] = time.time() - t0
    times['total'] = time.time() - start

    rows = [
        summary_row('detection', 'Mask R-CNN + ParCNetV2', data.description['detection'],
                    det_dir, durations[det.tag], det_metrics, det_records),
        summary_row('segmentation', 'UperNet + ParCNetV2', data.description['segmentation'],
                    seg_dir, durations[seg.tag], seg_metrics, seg_records),
    ]
    toy = args.data is None and not args.quick
    outputs = {
        'summary': out / 'summary.json',
        'pictures: detection predictions': pictures.detection,
        'pictures: segmentation overlays': pictures.segmentation,
        'pictures: training curves': pictures.curves,
        'pictures: oversized kernels': pictures.kernels,
        'drawn val images': pictures.drawn,
        'detection checkpoint': det_ckpt,
        'segmentation checkpoint': seg_ckpt,
        'training logs': out / '{detection,segmentation}/console.log',
        'datasets': out / 'data' if args.data is None else data.seg_root,
    }
    summary = dict(
        rows=rows, targets=TARGETS, targets_met=targets_met(rows) if toy else None,
        seconds=times, cpu_cores=cores, parallel_runs=parallel, threads_per_run=threads,
        quick=args.quick, user_data=str(args.data) if args.data else None,
        jobs=[asdict(job) for job in jobs],
        outputs={k: str(v) for k, v in outputs.items()})
    (out / 'summary.json').write_text(json.dumps(summary, indent=2, default=str))
    print_report(rows, times, toy, args.quick, outputs)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
