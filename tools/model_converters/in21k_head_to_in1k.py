#!/usr/bin/env python
"""Reduce an ImageNet-21K classifier checkpoint's head to the ImageNet-1K classes.

    python tools/model_converters/in21k_head_to_in1k.py in21k.pth in1k_head.pth \\
        --source-classes data/imagenet21k/meta/classes.txt \\
        --target-classes data/imagenet/meta/classes.txt

Class files list one class per line (its first word, e.g. the WordNet id
``n01440764``), in the order of the checkpoint's head (source) and of the 1K
labels (target).  The output is the same checkpoint with ``head.fc`` keeping
the rows of the 1K classes in 1K order: a 1K classifier of the 21K
pre-training, evaluated without fine-tuning
(``configs/imagenet_parcnetv2_b.py``), or a head to start 1K fine-tuning
from (``configs/imagenet21k/parcnetv2_b_in21k_ft_in1k_224.py`` starts a fresh
one, as ConvNeXt's recipe does).
"""
import argparse

import mmparc  # noqa: F401

from mmparc.fileio import run_tool  # noqa: E402
from mmparc.convert import convert_head_file  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='ImageNet-21K classifier checkpoint')
    parser.add_argument('dst', help='output checkpoint (written only if all succeeds)')
    parser.add_argument('--source-classes', required=True, help="the head's classes, in order")
    parser.add_argument('--target-classes', required=True, help='the classes to keep, in order')
    parser.add_argument('--prefix', default='head.fc.', help="the head's key prefix")
    args = parser.parse_args()
    state = convert_head_file(args.src, args.dst, args.source_classes, args.target_classes,
                              args.prefix)
    print(f'wrote {args.dst}: head of {state[args.prefix + "weight"].shape[0]} classes')
    return 0


if __name__ == '__main__':
    run_tool(main)
