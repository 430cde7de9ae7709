"""What one checkpoint load may allocate, and the count kept against it.

A checkpoint is charged for every byte it makes the process hold: the
declared size of each archive record (tensor data, after decompression), the
pickle's strings and byte arrays, and a fixed cost per container, item and
object the pickle builds.  The bound is ``BUDGET_FACTOR`` times the file's
size plus ``BUDGET_SLACK`` bytes: a ``torch.save`` file holds its tensors
uncompressed, so its data fits in the first term, and the second covers the
Python objects around them (a Runner checkpoint's message hub and optimizer
state).  ``MMPARC_CHECKPOINT_BUDGET`` (bytes, or with a ``K``/``M``/``G``
suffix) replaces the bound, e.g. for an official checkpoint whose records
were recompressed; so does ``load_checkpoint_file(..., budget=...)``.

The count is per load and lives in the loading thread: nothing is shared
between threads or loads.
"""
import os
import re
import threading
from typing import Optional

from .errors import refuse

__all__ = ['Budget', 'BUDGET_FACTOR', 'BUDGET_SLACK', 'MAX_RECORDS', 'default_budget',
           'charge', 'active']

BUDGET_FACTOR = 2
BUDGET_SLACK = 64 << 20
#: Archive records a checkpoint may have (one per tensor storage, plus a few).
MAX_RECORDS = 20000
#: Cost charged for each object, container or container item the pickle builds.
OBJECT_COST = 64
ITEM_COST = 16
ENV = 'MMPARC_CHECKPOINT_BUDGET'


def _parse_size(text: str) -> int:
    match = re.fullmatch(r'\s*(\d{1,15})\s*([KMG]?)i?B?\s*', text, re.IGNORECASE)
    if not match:
        raise ValueError(f'{ENV}={text!r}: expected a number of bytes, e.g. 8G or 500M')
    scale = {'': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}[match.group(2).upper()]
    return int(match.group(1)) * scale


def default_budget(file_size: int) -> int:
    """The bound for a file of ``file_size`` bytes (``MMPARC_CHECKPOINT_BUDGET`` if set)."""
    override = os.environ.get(ENV)
    if override:
        return _parse_size(override)
    return BUDGET_FACTOR * file_size + BUDGET_SLACK


class Budget:
    """Bytes left for one load; :meth:`charge` refuses the load once they are spent."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, size: int, what: str) -> None:
        self.used += max(int(size), 0)
        if self.used > self.limit:
            refuse(f'{what} would take the load past its memory budget of '
                   f'{self.limit} bytes (set {ENV} to allow more for a trusted, huge file)')


_local = threading.local()


def active() -> Optional[Budget]:
    """The budget of the load running in this thread, if any."""
    return getattr(_local, 'budget', None)


def set_active(budget: Optional[Budget]) -> Optional[Budget]:
    previous = active()
    _local.budget = budget
    return previous


def charge(size: int, what: str) -> None:
    """Charge the load running in this thread (nothing outside a load)."""
    budget = active()
    if budget is not None:
        budget.charge(size, what)
