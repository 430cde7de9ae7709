"""Checkpoints are data: mmparc's loader, which mmengine uses after ``import mmparc``.

A checkpoint is untrusted input.  Nothing read from it is executed, what it
may allocate is bounded before it is built, and content that would change
training without a word is refused or normalised.  The jobs, one module each:

* :mod:`.unpickler`: a restricted unpickler of mmparc's own, given to
  ``torch.load`` per call (thread-scoped; torch's process-wide allow-list is
  never touched), with validating stand-ins (:mod:`.standins`) for the numpy
  values and ``HistoryBuffer`` objects of a Runner checkpoint;
* :mod:`.budget`: the allocation bound of one load;
* :mod:`.loading`: :func:`load_checkpoint_file`: file and archive checks,
  then the load, then content rules (config text: :mod:`.config_text`);
* :mod:`.schemes`: mmengine's ``CheckpointLoader`` schemes routed through it;
* :mod:`.resume`: a checkpoint checked against the run resuming from it;
* :mod:`.fit`: whether weights fit a model, for the tools.
"""
from .budget import BUDGET_FACTOR, BUDGET_SLACK, MAX_RECORDS, default_budget
from .errors import CheckpointError, describe
from .fit import check_fits, fit_problems, shapes_of, state_dict_of
from .loading import load_checkpoint_file
from .schemes import register_checkpoint_loader
from .standins import PLAIN_DTYPE_CODES, STATISTICS

__all__ = ['CheckpointError', 'load_checkpoint_file', 'register_checkpoint_loader',
           'state_dict_of', 'check_fits', 'fit_problems', 'shapes_of', 'describe',
           'default_budget', 'BUDGET_FACTOR', 'BUDGET_SLACK', 'MAX_RECORDS', 'STATISTICS',
           'PLAIN_DTYPE_CODES']
