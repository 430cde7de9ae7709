#!/usr/bin/env python
"""Export a ParCNetV2 model with mmdeploy to ONNX Runtime and check it against PyTorch.

    python tools/deployment/mmdeploy_export.py \\
        configs/mmdeploy/mmdet/instance-seg_onnxruntime_static-800x1216.py \\
        configs/mask_rcnn_parcnetv2_t.py det_t.pth demo/demo.jpg --work-dir work_dirs/det_t_ort

What it runs is mmdeploy's own ``torch2onnx`` (its rewriters, its NMS and
RoIAlign symbolics) with the deploy config, then mmdeploy's ONNX Runtime
model and the PyTorch model (as built, before re-parameterisation) on the
same image, and prints how far apart they are
(:mod:`mmparc.deployment.parity`, which also says what must agree for the
check to pass).  ``end2end.onnx`` appears in ``--work-dir`` only when the
export and the check succeed.

On torch newer than 2.1, mmdeploy 1.3.1 needs two export-time changes
(:mod:`mmparc.deployment.mmdeploy_compat`); the deploy configs in
``configs/mmdeploy/`` import them, and so does this tool for any other
deploy config.
"""
import argparse
import importlib.util
import math
import os
import sys
import time
from typing import Dict, Optional, Sequence

from mmparc.fileio import ToolError, run_tool, staged_output_dir


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('deploy_cfg', help='mmdeploy config, e.g. from configs/mmdeploy/')
    parser.add_argument('model_cfg', help='model config, e.g. configs/mask_rcnn_parcnetv2_t.py')
    parser.add_argument('checkpoint', help="the model's checkpoint ('none': its initial weights)")
    parser.add_argument('img', help='image used for export (static shapes) and the check')
    parser.add_argument('--work-dir', required=True, help='where end2end.onnx is written')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detections compared above this score (detectors only)')
    parser.add_argument('--skip-check', action='store_true',
                        help='export only; do not run ONNX Runtime against PyTorch')
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> Optional[str]:
    """Refuse missing inputs before any work; the checkpoint path, or None."""
    for name in ('deploy_cfg', 'model_cfg', 'img'):
        if not os.path.isfile(getattr(args, name)):
            raise ToolError(f'{getattr(args, name)}: {name} file not found')
    if not math.isfinite(args.score_thr) or not 0 <= args.score_thr <= 1:
        raise ToolError(f'--score-thr {args.score_thr}: must be in [0, 1]')
    if args.checkpoint == 'none':
        return None
    if not os.path.isfile(args.checkpoint):
        raise ToolError(f'{args.checkpoint}: checkpoint file not found')
    return args.checkpoint


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    checkpoint = check_args(args)
    if importlib.util.find_spec('mmdeploy') is None:
        raise ToolError('mmdeploy is not installed; install it as tools/setup_env.sh does: '
                        '`pip install --no-deps -r requirements/deploy.txt` '
                        '(see docs/deployment.md)')
    from mmparc.deployment import parity
    with staged_output_dir(args.work_dir) as stage:
        start = time.perf_counter()
        onnx_file = parity.export(args.deploy_cfg, args.model_cfg, checkpoint, args.img,
                                  str(stage))
        size = os.path.getsize(onnx_file) / 2**20
        print(f'exported {os.path.join(args.work_dir, os.path.basename(onnx_file))} '
              f'({size:.1f} MiB) in {time.perf_counter() - start:.1f} s')
        if args.skip_check:
            return {}
        report = parity.compare(args.deploy_cfg, args.model_cfg, checkpoint, args.img,
                                onnx_file, args.score_thr)
        print('ONNX Runtime vs PyTorch (before re-parameterisation) on '
              f'{args.img}:')
        for name, value in report.items():
            print(f'  {name}: {value:.4g}')
        failures = parity.failures(report)
        if failures:
            raise SystemExit(f'error: ONNX Runtime does not match PyTorch ({"; ".join(failures)}); '
                             f'nothing written to {args.work_dir}')
    return report


def _cli() -> int:
    main(sys.argv[1:])
    return 0


if __name__ == '__main__':
    run_tool(_cli)
