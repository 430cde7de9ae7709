#!/usr/bin/env python
"""Convert an official ParCNetV2 checkpoint for mmpretrain / mmdet / mmseg.

Examples::

    # ImageNet weights -> mmpretrain classifier (configs/imagenet_parcnetv2_t.py)
    python tools/model_converters/convert_official.py parcnetv2_tiny.pth.tar cls_t.pth --target classifier
    # ImageNet weights -> backbone for init_cfg=dict(type='Pretrained', checkpoint=...)
    python tools/model_converters/convert_official.py parcnetv2_tiny.pth.tar backbone_t.pth --target backbone
    # official mmdet-2.x / mmseg-0.x checkpoint -> one our det/seg configs load
    python tools/model_converters/convert_official.py cascade_t_official.pth cascade_t.pth
"""
import argparse
from typing import Optional, Sequence

import mmparc  # noqa: F401

from mmparc.fileio import run_tool
from mmparc.convert import TARGETS, convert_file


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output checkpoint (written only if the conversion '
                                    'succeeds)')
    parser.add_argument('--target', choices=TARGETS, default=None,
                        help='classifier / backbone for ImageNet checkpoints; model (default '
                             'for det/seg checkpoints) or backbone for det/seg ones')
    parser.add_argument('--arch', choices=('xt', 't', 's', 'b'), default=None,
                        help='ParCNetV2 arch the checkpoint must be (default: the one whose '
                             'depths and widths it has)')
    args = parser.parse_args(argv)
    state = convert_file(args.src, args.dst, args.target, args.arch)
    print(f'wrote {len(state)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    run_tool(main)
