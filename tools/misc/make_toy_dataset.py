#!/usr/bin/env python
"""Write a tiny synthetic dataset in COCO, ADE20K or ImageNet format.

Examples::

    python tools/misc/make_toy_dataset.py --kind coco --out data/coco \\
        --num-train 400 --num-val 50 --size 320 320 --seed 0
    python tools/misc/make_toy_dataset.py --kind ade --out data/ade/ADEChallengeData2016 \\
        --num-train 400 --num-val 50 --size 256 256
    python tools/misc/make_toy_dataset.py --kind imagenet --out data/imagenet \\
        --num-train 800 --num-val 200 --size 64 64

The output is deterministic for a given seed; see :mod:`mmparc.testing.toy_data`
(the generator the quickstart demo uses).
"""
import argparse
import time
from pathlib import Path
from typing import Optional, Sequence

from mmparc.testing import toy_data


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--kind', required=True, choices=('coco', 'ade', 'imagenet'))
    parser.add_argument('--out', required=True, type=Path, help='dataset root to write')
    parser.add_argument('--num-train', type=int, default=100)
    parser.add_argument('--num-val', type=int, default=20)
    parser.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'), default=None,
                        help='image size (default: 256 320 for coco/ade, 64 64 for imagenet)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--mask-format', choices=('polygon', 'rle'), default='polygon',
                        help='coco only: instance mask encoding')
    parser.add_argument('--max-objects', type=int, default=None,
                        help='coco/ade only: most objects per image')
    parser.add_argument('--num-classes', type=int, default=4,
                        help=f'imagenet only: classes (1..{len(toy_data.IMAGENET_CLASSES)})')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    kwargs = {}
    if args.size is not None:
        kwargs['image_size'] = tuple(args.size)
    if args.kind in ('coco', 'ade') and args.max_objects is not None:
        kwargs['max_objects'] = args.max_objects
    start = time.time()
    if args.kind == 'coco':
        info = toy_data.make_coco_instances(args.out, args.num_train, args.num_val,
                                            seed=args.seed, mask_format=args.mask_format,
                                            **kwargs)
    elif args.kind == 'ade':
        info = toy_data.make_ade20k(args.out, args.num_train, args.num_val, seed=args.seed,
                                    **kwargs)
    else:
        info = toy_data.make_imagenet(args.out, args.num_train, args.num_val, seed=args.seed,
                                      num_classes=args.num_classes, **kwargs)
    print(f'wrote {info.kind} toy dataset to {info.root} '
          f'({info.num_train} train, {info.num_val} val, classes {list(info.classes)}) '
          f'in {time.time() - start:.1f}s')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
