#!/usr/bin/env python
"""Parameters and MACs of the models in mmparc configs.

    python tools/analysis_tools/analyze.py configs/imagenet_parcnetv2_*.py
    python tools/analysis_tools/analyze.py configs/upernet_parcnetv2_t.py --shape 512 2048

Classifiers are measured at 224x224, segmentors at 512x2048 (as Table 6 of
the paper) and detectors at 800x1280 unless ``--shape H W`` is given.
Oversized convolutions are counted as the convolutions they are (see
:func:`mmparc.analysis.complexity`).
"""
import argparse
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmparc.analysis import complexity
from mmparc.cli import run_tool

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


def analyze(config: str, shape: Optional[Sequence[int]] = None) -> dict:
    model, scope = build(config)
    hw = tuple(shape) if shape else DEFAULT_SHAPES.get(scope, (224, 224))
    result = complexity(_TensorForward(model, scope, hw), (3, *hw))
    result.update(config=config, shape=hw)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'))
    args = parser.parse_args()
    print(f'| {"config":<40} | {"input":>10} | {"params (M)":>10} | {"MACs (G)":>9} |')
    print(f'|{"-" * 42}|{"-" * 12}|{"-" * 12}|{"-" * 11}|')
    for config in args.configs:
        r = analyze(config, args.shape)
        shape = f'{r["shape"][0]}x{r["shape"][1]}'
        print(f'| {config:<40} | {shape:>10} | {r["params"] / 1e6:>10.2f} | '
              f'{r["macs"] / 1e9:>9.2f} |', flush=True)


if __name__ == '__main__':
    run_tool(main)
