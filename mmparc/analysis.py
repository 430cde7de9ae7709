"""Parameter and multiply-accumulate counts, as the paper reports them."""
from typing import Dict, Sequence

import torch
import torch.nn as nn


def complexity(model: nn.Module, input_shape: Sequence[int]) -> Dict[str, float]:
    """``{'params', 'macs'}`` of ``model`` for one ``(C, H, W)`` input.

    MACs are counted by mmengine's jit-trace analyser (fvcore's rules:
    convolutions and matrix products; element-wise work is free), the
    counter of mmdet/mmseg/mmpretrain's ``get_flops.py``.  A trace records
    each op's reference formula (:mod:`mmparc.ops.dispatch`), so oversized
    convolutions count as the convolutions they are, as in the paper.
    """
    from mmengine.analysis import FlopAnalyzer
    was_training = model.training
    model.eval()
    inputs = (torch.randn(1, *input_shape),)
    try:
        with torch.no_grad():
            analyzer = FlopAnalyzer(model, inputs)
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            macs = float(analyzer.total())
    finally:
        model.train(was_training)
    params = float(sum(p.numel() for p in model.parameters()))
    return {'params': params, 'macs': macs}
