"""Let torch's ``weights_only`` loader read checkpoints mmengine's Runner writes.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``, and a Runner
checkpoint's ``message_hub`` holds mmengine ``HistoryBuffer`` objects backed
by numpy arrays, so ``--checkpoint`` and ``--resume`` fail.  We allow-list
exactly the classes such a checkpoint contains, never disabling the check.

One more entry is needed: ``HistoryBuffer.__getstate__`` stores its
statistics methods, which pickle as ``getattr(HistoryBuffer, 'mean')``.
Allowing the builtin ``getattr`` would let a checkpoint reach any attribute
of any allowed class, so ``builtins.getattr`` is mapped to a stand-in that
only returns HistoryBuffer's registered statistics methods.
"""
import pickle
from typing import Callable, List

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


def _history_buffer_method(owner: type, name: str) -> Callable:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods."""
    from mmengine.logging import HistoryBuffer
    if owner is HistoryBuffer and (name in HistoryBuffer._statistics_methods
                                   or name in ('min', 'max', 'current', 'mean')):
        return getattr(owner, name)
    raise pickle.UnpicklingError(f'refusing getattr({owner!r}, {name!r}) while loading a '
                                 'checkpoint: only HistoryBuffer statistics are allowed')


def allow_runner_checkpoints() -> None:
    """Allow-list :func:`runner_checkpoint_globals` for ``torch.load``."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch < 2.4 has no weights_only default to satisfy
        add_safe_globals(runner_checkpoint_globals()
                         + [(_history_buffer_method, 'builtins.getattr')])
