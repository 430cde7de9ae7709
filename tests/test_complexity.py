"""Parameters and MACs of the four classifiers at 224x224, against the paper.

The paper prints ParCNetV2-XT 7.4M / 1.6G, T 25M / 4.3G, S 39M / 7.8G and
B 56M / 12.5G (parameters / multiply-accumulates at 224x224; XT and B are
also in the supplementary material's Tables 2-4).  A printed figure only
says the true one rounds to it, so each is checked to half a unit of its
last printed digit.  Beside it stand our exact counts, so that any change
to the architecture or to the counting shows.

Two counters are checked:

* ``mmparc.analysis.complexity``: mmengine's ``FlopAnalyzer`` with the
  oversized convolutions evaluated directly (what the paper counts);
* ``mmengine.analysis.get_model_complexity_info`` on the model as
  mmpretrain's ``tools/analysis_tools/get_flops.py`` hands it over (eval
  mode, ``forward = extract_feat``), i.e. what users of the OpenMMLab tools
  see.  Its parameter count is the whole model's; its MACs leave out the
  head (``extract_feat``), which is under 0.04% of the total.
"""
from decimal import Decimal

import pytest
import torch
from mmengine.analysis import get_model_complexity_info, parameter_count
from mmengine.config import Config

import mmparc  # noqa: F401  (registers ParCNetV2)
from mmparc.analysis import complexity

from helpers import MACS, PARAMS

INPUT = (3, 224, 224)
# The paper's figures as printed: (parameters in M, MACs in G).
PAPER = {'xt': ('7.4', '1.6'), 't': ('25', '4.3'), 's': ('39', '7.8'), 'b': ('56', '12.5')}
ARCHS = list(PAPER)


def classifier(arch: str) -> torch.nn.Module:
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(f'configs/imagenet_parcnetv2_{arch}.py')
    return MODELS.build(cfg.model).eval()


def assert_rounds_to(value: float, printed: str, unit: float) -> None:
    """``value`` (in units of ``unit``) is within half a unit of the last
    digit of ``printed``, i.e. a correct rounding could print it."""
    half = Decimal(5).scaleb(Decimal(printed).as_tuple().exponent - 1)
    assert abs(Decimal(value / unit) - Decimal(printed)) <= half, (value / unit, printed)


@pytest.mark.parametrize('arch', ARCHS)
def test_classifier_complexity_matches_paper(arch):
    model = classifier(arch)
    measured = complexity(model, INPUT)
    params, macs = PAPER[arch]
    assert_rounds_to(measured['params'], params, 1e6)
    assert_rounds_to(measured['macs'], macs, 1e9)
    assert (measured['params'], measured['macs']) == (PARAMS[arch], MACS[arch])
    # mmengine's own parameter count (what get_flops.py reports) is the same.
    assert parameter_count(model)[''] == PARAMS[arch]


@pytest.mark.parametrize('arch', ARCHS)
def test_upstream_counter_matches_paper(arch):
    """``get_model_complexity_info`` as mmpretrain's get_flops.py calls it."""
    model = classifier(arch)
    model.forward = model.extract_feat
    info = get_model_complexity_info(model, input_shape=INPUT, show_table=False,
                                     show_arch=False)
    assert info['params'] == PARAMS[arch]
    assert_rounds_to(info['flops'], PAPER[arch][1], 1e9)
    # Within 1% of our count (which leaves nothing of the model out).
    assert abs(info['flops'] - MACS[arch]) <= 0.01 * MACS[arch], (info['flops'], MACS[arch])
