"""Parameter and multiply-accumulate counts, as the paper reports them."""
import contextlib
from typing import Dict, Iterator, Sequence

import torch
import torch.nn as nn

from .models.oversized_conv import OversizedConv2d


@contextlib.contextmanager
def direct_oversized_conv(model: nn.Module) -> Iterator[None]:
    """Evaluate oversized convolutions directly while counting.

    The fast Toeplitz path does more nominal MACs than the convolution it
    computes; the paper (and the official tools) count the convolution.
    """
    convs = [m for m in model.modules() if isinstance(m, OversizedConv2d)]
    saved = [m.impl for m in convs]
    try:
        for m in convs:
            m.impl = 'direct'
        yield
    finally:
        for m, impl in zip(convs, saved):
            m.impl = impl


def complexity(model: nn.Module, input_shape: Sequence[int]) -> Dict[str, float]:
    """``{'params', 'macs'}`` of ``model`` for one ``(C, H, W)`` input.

    MACs are counted by mmengine's jit-trace analyser (fvcore's rules:
    convolutions and matrix products; element-wise work is free).
    """
    from mmengine.analysis import FlopAnalyzer
    was_training = model.training
    model.eval()
    inputs = (torch.randn(1, *input_shape),)
    try:
        with torch.no_grad(), direct_oversized_conv(model):
            analyzer = FlopAnalyzer(model, inputs)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            macs = float(analyzer.total())
    finally:
        model.train(was_training)
    params = float(sum(p.numel() for p in model.parameters()))
    return {'params': params, 'macs': macs}
