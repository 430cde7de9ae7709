#!/usr/bin/env python
"""The oversized kernels of one ParCNetV2 block (supplement Sec. I, Fig. 3 and 4).

    python tools/visualization/vis_kernels.py CHECKPOINT --out-dir docs/kernels
    python tools/visualization/vis_kernels.py CHECKPOINT --stage 2 --block -1 \\
        --kernel-mode global --input-size 512 512 --out-dir kernels_global

Writes two PNGs for the block (default: the last block of stage 3, i.e.
``--stage 2 --block -1``, as the paper's figures):

* ``kernels_1d_s{stage}_b{block}.png``: the vertical kernels of 16 random
  channels, one column per channel, and their horizontal kernels, one row per
  channel (Fig. 3), with the same kernels as 1-D curves;
* ``kernels_2d_s{stage}_b{block}.png``: 32 random channels' kernels as the
  2-D kernels they equal, ``k_h k_w^T`` (Fig. 4).

``--kernel-mode fixed`` (default) shows the kernels as stored (their length
at 224 pretraining); ``global`` shows what the block applies to the stage's
maps for an ``--input-size`` image (resampled to ``2h - 1`` x ``2w - 1``).
Any checkpoint with a ParCNetV2 backbone works: classifiers, detectors,
segmentors (keys under ``backbone.``) or a bare backbone; Runner files or
state dicts.  Channels are drawn with ``--seed``.
"""
import argparse
import re
from pathlib import Path

import mmparc  # noqa: F401

from mmparc.checkpoint import load_checkpoint_file, state_dict_of  # noqa: E402
from mmparc.fileio import ToolError, run_tool, staged_output_dir  # noqa: E402
from mmparc.visualization import (kernels_at, oversized_kernels, plot_kernel_products,  # noqa
                                  plot_kernel_profiles, random_channels, stage_map_size)

_KEY = re.compile(r'^(.*)stages\.(\d+)\.(\d+)\.token_mixer\.dwconv1\.conv_h\.weight$')


def find_blocks(state: dict, name: str):
    """The backbone prefix and the block indices of each stage that have oversized kernels."""
    blocks = {}
    prefixes = set()
    for key in state:
        match = _KEY.match(key)
        if match:
            prefixes.add(match.group(1))
            blocks.setdefault(int(match.group(2)), []).append(int(match.group(3)))
    if not blocks:
        raise ToolError(f'{name}: has no ParCNetV2 oversized kernels '
                        '(no keys like stages.N.M.token_mixer.dwconv1.conv_h.weight)')
    if len(prefixes) > 1:
        raise ToolError(f'{name}: holds more than one backbone ({sorted(prefixes)})')
    return prefixes.pop(), {stage: sorted(b) for stage, b in blocks.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint')
    parser.add_argument('--stage', type=int, default=2, help='0-based stage (default 2)')
    parser.add_argument('--block', type=int, default=-1,
                        help='block in the stage; negative counts from the end (default -1)')
    parser.add_argument('--kernel-mode', choices=('fixed', 'global'), default='fixed')
    parser.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                        help="input image size, needed by --kernel-mode global")
    parser.add_argument('--channels-1d', type=int, default=16)
    parser.add_argument('--channels-2d', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out-dir', default='kernels')
    args = parser.parse_args()
    if args.kernel_mode == 'global' and args.input_size is None:
        raise ToolError('--kernel-mode global needs --input-size H W')
    if args.input_size is not None and min(args.input_size) < 32:
        raise ToolError(f'--input-size must be at least 32x32, got {args.input_size}')
    for option in ('channels_1d', 'channels_2d'):
        if getattr(args, option) < 1:
            raise ToolError(f'--{option.replace("_", "-")} must be positive')

    state = state_dict_of(load_checkpoint_file(args.checkpoint), args.checkpoint)
    prefix, blocks = find_blocks(state, args.checkpoint)
    if args.stage not in blocks:
        raise ToolError(f'--stage {args.stage}: {args.checkpoint} has stages '
                        f'{sorted(blocks)} with oversized kernels')
    stage_blocks = blocks[args.stage]
    if not -len(stage_blocks) <= args.block < len(stage_blocks):
        raise ToolError(f'--block {args.block}: stage {args.stage} has {len(stage_blocks)} '
                        'blocks')
    block = stage_blocks[args.block]
    kernel_h, kernel_w = oversized_kernels(state, args.stage, block, prefix)
    where = f'stage {args.stage + 1}, block {block + 1} (last of {len(stage_blocks)})' \
        if block == stage_blocks[-1] else f'stage {args.stage + 1}, block {block + 1}'
    if args.kernel_mode == 'global':
        map_size = stage_map_size(tuple(args.input_size), args.stage)
        kernel_h, kernel_w = kernels_at(kernel_h, kernel_w, 'global', map_size)
        where += (f', global mode at {args.input_size[0]}x{args.input_size[1]} '
                  f'({map_size[0]}x{map_size[1]} maps)')
    num = kernel_h.shape[0]
    with staged_output_dir(args.out_dir) as stage_dir:
        name = f's{args.stage}_b{block}'
        plot_kernel_profiles(kernel_h, kernel_w, random_channels(num, args.channels_1d,
                                                                 args.seed),
                             stage_dir / f'kernels_1d_{name}.png',
                             title=f'Oversized kernels, {where}')
        plot_kernel_products(kernel_h, kernel_w, random_channels(num, args.channels_2d,
                                                                 args.seed),
                             stage_dir / f'kernels_2d_{name}.png',
                             title=f'Oversized kernels as 2-D kernels, {where}')
    for kind in ('1d', '2d'):
        print(f'wrote {Path(args.out_dir) / f"kernels_{kind}_{name}.png"}')


if __name__ == '__main__':
    run_tool(main)
