#!/usr/bin/env python
"""Parameters and MACs of the models in mmparc configs.

    python tools/analysis_tools/analyze.py configs/imagenet_parcnetv2_*.py
    python tools/analysis_tools/analyze.py configs/upernet_parcnetv2_t.py --shape 512 2048

Classifiers are measured at 224x224, segmentors at 512x2048 (as Table 6 of
the paper) and detectors at 800x1280 unless ``--shape H W`` is given.
Oversized convolutions are counted as the convolutions they are (see
:func:`mmparc.analysis.complexity`).

``--paper`` prints ours beside the figures the paper prints for the model,
read from the config's ``paper`` list (the ablation configs of the
supplement's Tables 1-4 have one):

    python tools/analysis_tools/analyze.py configs/ablations/*.py \
        configs/imagenet21k/parcnetv2_b_in21k_ft_in1k_224.py --paper
"""
import argparse
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

from mmparc.analysis import complexity
from mmparc.fileio import ToolError, run_tool

DEFAULT_SHAPES = {'mmpretrain': (224, 224), 'mmseg': (512, 2048), 'mmdet': (800, 1280)}


class _TensorForward(nn.Module):
    """Calls an MMLab model in ``mode='tensor'``, with the data samples detectors need."""

    def __init__(self, model: nn.Module, scope: str, shape: Tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.samples = None
        if scope == 'mmdet':
            from mmdet.structures import DetDataSample
            sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape,
                                                 pad_shape=shape, scale_factor=(1.0, 1.0)))
            self.samples = [sample]

    def forward(self, x: torch.Tensor):
        if self.samples is None:
            return self.model(x, mode='tensor')
        return self.model(x, self.samples, mode='tensor')


def build(config: str, overrides: Optional[dict] = None) -> Tuple[nn.Module, str]:
    """The model of a config (built in its default scope) and that scope."""
    cfg = Config.fromfile(config)
    if overrides:
        cfg.merge_from_dict(overrides)
    scope = cfg.get('default_scope', 'mmengine')
    init_default_scope(scope)
    from mmengine.registry import MODELS
    cfg.model.get('backbone', {}).pop('init_cfg', None)
    return MODELS.build(cfg.model), scope


PAPER_KEYS = ('table', 'row', 'params', 'macs', 'top1')


def paper_rows(config: str) -> List[dict]:
    """The paper's printed figures for a config's model (its ``paper`` list)."""
    rows = Config.fromfile(config).get('paper')
    if rows is None:
        raise ToolError(f'{config}: has no `paper` figures; --paper needs configs that '
                        'state them (configs/ablations/, configs/imagenet21k/)')
    if not isinstance(rows, (list, tuple)) or not all(
            isinstance(row, dict) and set(row) == set(PAPER_KEYS) for row in rows):
        raise ToolError(f'{config}: `paper` must be a list of dicts with the keys '
                        f'{PAPER_KEYS}, got {rows!r}')
    return list(rows)


def analyze(config: str, shape: Optional[Sequence[int]] = None,
            overrides: Optional[dict] = None) -> dict:
    model, scope = build(config, overrides)
    hw = tuple(shape) if shape else DEFAULT_SHAPES.get(scope, (224, 224))
    result = complexity(_TensorForward(model, scope, hw), (3, *hw))
    result.update(config=config, shape=hw)
    return result


def print_paper_table(configs: Sequence[str], shape: Optional[Sequence[int]],
                      overrides: Optional[dict] = None) -> None:
    """One line per table row: the paper's params/MACs/top-1 and ours."""
    rows = [(config, paper_rows(config)) for config in configs]  # all checked before work
    print('| table | row | config | paper params (M) | ours (M) | paper MACs (G) | ours (G) '
          '| paper top-1 (%) |')
    print('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |')
    for config, paper in rows:
        r = analyze(config, shape, overrides)
        for row in paper:
            print(f'| {row["table"]} | {row["row"]} | `{config}` | {row["params"]} | '
                  f'{r["params"] / 1e6:.2f} | {row["macs"]} | {r["macs"] / 1e9:.2f} | '
                  f'{row["top1"]} |', flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'))
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries (key=value), e.g. to measure a variant')
    parser.add_argument('--paper', action='store_true',
                        help="print the paper's figures (the config's `paper` list) beside ours")
    args = parser.parse_args()
    if args.paper:
        print_paper_table(args.configs, args.shape, args.cfg_options)
        return
    print(f'| {"config":<40} | {"input":>10} | {"params (M)":>10} | {"MACs (G)":>9} |')
    print(f'|{"-" * 42}|{"-" * 12}|{"-" * 12}|{"-" * 11}|')
    for config in args.configs:
        r = analyze(config, args.shape, args.cfg_options)
        shape = f'{r["shape"][0]}x{r["shape"][1]}'
        print(f'| {config:<40} | {shape:>10} | {r["params"] / 1e6:>10.2f} | '
              f'{r["macs"] / 1e9:>9.2f} |', flush=True)


if __name__ == '__main__':
    run_tool(main)
