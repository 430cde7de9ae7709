#!/usr/bin/env python
"""Run a trained ParCNetV2 detector or segmentor on images and draw the results.

Examples::

    python tools/infer.py demo.jpg --config configs/quickstart/mask_rcnn_parcnetv2_toy.py \\
        --checkpoint outputs/demo/detection/iter_1200.pth --out outputs/infer
    python tools/infer.py images/*.jpg --config configs/quickstart/upernet_parcnetv2_toy.py \\
        --checkpoint outputs/demo/segmentation/iter_600.pth

The work is :func:`mmparc.apis.infer` (what it writes, and what it checks
before the first prediction, is described there); this is its command line.
"""
import argparse
import time
import warnings
from typing import Optional, Sequence

# Notices from building a model for training, which say nothing about inference.
for _message in ('pkg_resources is deprecated', '``build_loss`` would be deprecated',
                 'Default ``avg_non_ignore`` is False', 'Failed to add <class'):
    warnings.filterwarnings('ignore', message=_message)

import mmparc  # noqa: F401,E402  (registers ParCNetV2)

from mmparc.apis import TASKS, expand_images, infer  # noqa: E402
from mmparc.fileio import run_tool  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('images', nargs='+', help='image files or folders of images')
    parser.add_argument('--config', required=True, help='mmdet or mmseg config')
    parser.add_argument('--checkpoint', required=True, help='trained checkpoint (.pth)')
    parser.add_argument('--out', default='outputs/infer', help='output folder')
    parser.add_argument('--task', choices=TASKS, default=None,
                        help="default: from the config's default_scope")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: lowest score drawn')
    parser.add_argument('--opacity', type=float, default=0.6,
                        help='segmentation: overlay opacity')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    images = expand_images(args.images)
    start = time.time()
    vis_dir = infer(images, args.config, args.checkpoint, args.out, task=args.task,
                    device=args.device, score_thr=args.score_thr, opacity=args.opacity)
    print(f'{len(images)} image(s) in {time.time() - start:.1f}s; pictures in {vis_dir}/')
    return 0


if __name__ == '__main__':
    run_tool(main)
