"""Let torch's ``weights_only`` loader read checkpoints mmengine's Runner writes.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``, and a Runner
checkpoint's ``message_hub`` holds mmengine ``HistoryBuffer`` objects backed
by numpy arrays, so ``--checkpoint`` and ``--resume`` fail.  We allow-list
exactly the classes such a checkpoint contains, never disabling the check.
"""
from typing import List

import numpy as np
import torch


def runner_checkpoint_globals() -> List[object]:
    """The classes and reconstructors a Runner checkpoint pickles."""
    from mmengine.logging import HistoryBuffer
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(name)) for name in
                     ('float64', 'float32', 'float16', 'int64', 'int32', 'int16',
                      'int8', 'uint8', 'bool')]
    return [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def allow_runner_checkpoints() -> None:
    """Allow-list :func:`runner_checkpoint_globals` for ``torch.load``."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch < 2.4 has no weights_only default to satisfy
        add_safe_globals(runner_checkpoint_globals())
