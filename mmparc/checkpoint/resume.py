"""Check a checkpoint against the run that resumes from it, before any of it is applied.

mmengine's ``Runner.resume`` sets the loop's epoch and iteration, the seed,
the message hub, the optimizer and the schedulers straight from the file:
an ``iter`` of 10**18 or an epoch given as a string fail deep inside
mmengine, a shortened ``param_schedulers`` list resumes only some
schedulers, and an optimizer state of the wrong shapes or an ``lr`` of 1e30
trains on silently.  When mmparc's loader runs under ``Runner.resume`` it
finds that runner (the caller's frame) and checks, against the runner's
own, already built, loop, optimizer and schedulers:

* ``meta``: ``epoch``/``iter`` ints within the run's ``max_epochs``/``max_iters``;
* ``message_hub``: the three dicts ``MessageHub.load_state_dict`` reads;
* ``optimizer``: as many groups and parameters per group as the run's, every
  hyperparameter the run has of the same kind and finite, ``lr`` at most
  ``LR_FACTOR`` times the run's, state tensors finite and of their
  parameter's shape;
* ``param_schedulers``: one state per scheduler of the run (by name for a
  dict), each with the scheduler's own keys, of the same kinds.

A mismatch is one :class:`CheckpointError` line naming the file and the field.
"""
import math
import sys
from typing import Any, Dict, Optional

import torch

from .errors import CheckpointError, describe

__all__ = ['resuming_runner', 'validate_resume', 'LR_FACTOR']

#: How far above the run's own learning rate a resumed one may be.
LR_FACTOR = 100.0
_INT_RANGE = 1 << 31


class _Mismatch(Exception):
    pass


def resuming_runner() -> Optional[Any]:
    """The mmengine ``Runner`` whose ``resume`` is on the calling stack, if any."""
    runner_module = sys.modules.get('mmengine.runner.runner')
    if runner_module is None:
        return None
    code = runner_module.Runner.resume.__code__
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            return frame.f_locals.get('self')
        frame = frame.f_back
    return None


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _same_kind(saved: Any, current: Any, field: str) -> None:
    """``saved`` is what ``current`` is: a finite number, a bool, a string, None, or a
    sequence of such of the same length."""
    if type(current) is bool or current is None or type(current) is str:
        if type(saved) is not type(current) and not (current is None and saved is None):
            raise _Mismatch(f'{field} is {describe(saved)}, this run has {describe(current)}')
    elif type(current) in (int, float):
        if not _number(saved):
            raise _Mismatch(f'{field} is {describe(saved)}: expected a finite number')
    elif type(current) in (list, tuple):
        if type(saved) not in (list, tuple) or len(saved) != len(current):
            raise _Mismatch(f'{field} is {describe(saved)}, this run has {len(current)} '
                            'values')
        for i, (s, c) in enumerate(zip(saved, current)):
            _same_kind(s, c, f'{field}[{i}]')
    elif isinstance(current, torch.Tensor):
        if not isinstance(saved, torch.Tensor) or saved.shape != current.shape:
            raise _Mismatch(f'{field} is {describe(saved)}, this run has a tensor of shape '
                            f'{tuple(current.shape)}')


def _check_meta(meta: Any, runner: Any) -> None:
    if not isinstance(meta, dict):
        raise _Mismatch(f'meta is {describe(meta)}, not a dict')
    loop = getattr(runner, '_train_loop', None)
    limits = {'epoch': getattr(loop, 'max_epochs', None), 'iter': getattr(loop, 'max_iters', None)}
    for field, limit in limits.items():
        if field not in meta:
            raise _Mismatch(f'meta has no {field!r}')
        value = meta[field]
        if type(value) is not int or not 0 <= value < _INT_RANGE:
            raise _Mismatch(f'meta[{field!r}] is {describe(value)}: expected an int >= 0')
        if type(limit) is int and value > limit:
            raise _Mismatch(f'meta[{field!r}] is {value}, past this run\'s max_{field}s '
                            f'({limit})')


def _check_hub(hub: Any) -> None:
    if not isinstance(hub, dict):
        raise _Mismatch(f'message_hub is {describe(hub)}, not a dict')
    from mmengine.logging import HistoryBuffer
    for key in ('log_scalars', 'runtime_info', 'resumed_keys'):
        if not isinstance(hub.get(key), dict):
            raise _Mismatch(f'message_hub[{key!r}] is {describe(hub.get(key))}, not a dict')
    for key, value in hub['log_scalars'].items():
        if type(key) is not str or type(value) is not HistoryBuffer:
            raise _Mismatch(f'message_hub log scalar {describe(key)} is {describe(value)}')
    if not all(type(k) is str and type(v) is bool for k, v in hub['resumed_keys'].items()):
        raise _Mismatch('message_hub resumed_keys: expected names -> bools')


def _check_one_optimizer(saved: Any, optimizer: torch.optim.Optimizer, field: str) -> None:
    current = optimizer.state_dict()
    if not isinstance(saved, dict) or not isinstance(saved.get('state'), dict) \
            or not isinstance(saved.get('param_groups'), list):
        raise _Mismatch(f'{field} is {describe(saved)}: expected state and param_groups')
    groups = saved['param_groups']
    if len(groups) != len(current['param_groups']):
        raise _Mismatch(f'{field} has {len(groups)} param groups, this run\'s optimizer has '
                        f'{len(current["param_groups"])}')
    shapes: Dict[int, torch.Size] = {}
    for i, (group, now, live) in enumerate(zip(groups, current['param_groups'],
                                               optimizer.param_groups)):
        where = f'{field} param group {i}'
        if not isinstance(group, dict) or type(group.get('params')) is not list:
            raise _Mismatch(f'{where} is {describe(group)}: expected a dict with params')
        if len(group['params']) != len(now['params']) or not all(
                type(p) is int for p in group['params']):
            raise _Mismatch(f'{where} has {len(group["params"])} parameters, this run has '
                            f'{len(now["params"])}')
        for index, param in zip(group['params'], live['params']):
            shapes[index] = param.shape
        for key, value in now.items():
            if key in ('params', 'param_names') or key not in group:
                continue
            _same_kind(group[key], value, f'{where} {key}')
        reference = max(float(now.get('lr', 0) or 0), float(now.get('initial_lr', 0) or 0))
        lr = group.get('lr')
        if lr is not None and (not _number(lr) or lr < 0
                               or (reference > 0 and lr > LR_FACTOR * reference)):
            raise _Mismatch(f'{where} lr is {describe(lr)}: this run\'s is {reference:g} '
                            f'(at most {LR_FACTOR:g} times that resumes)')
    if len(shapes) != sum(len(g['params']) for g in groups):
        raise _Mismatch(f'{field} param groups repeat a parameter index')
    for index, state in saved['state'].items():
        where = f'{field} state {describe(index)}'
        if index not in shapes or not isinstance(state, dict):
            raise _Mismatch(f'{where}: no such parameter in its param groups')
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    raise _Mismatch(f'{where} {describe(key)} is not finite')
                if value.ndim and value.shape != shapes[index]:
                    raise _Mismatch(f'{where} {describe(key)} has shape {tuple(value.shape)}, '
                                    f'its parameter {tuple(shapes[index])}')
            elif not (_number(value) or type(value) is bool or value is None):
                raise _Mismatch(f'{where} {describe(key)} is {describe(value)}')


def _check_optimizer(saved: Any, wrapper: Any) -> None:
    if not hasattr(wrapper, 'state_dict'):
        return  # not built yet: mmengine builds it from the config after loading
    wrappers = getattr(wrapper, 'optim_wrappers', None)
    if wrappers is None:
        _check_one_optimizer(saved, wrapper.optimizer, 'optimizer')
        return
    if not isinstance(saved, dict) or set(saved) != set(wrappers):
        held = list(saved) if isinstance(saved, dict) else saved
        raise _Mismatch(f'optimizer holds {describe(held)}, this run has optimizers '
                        f'{sorted(wrappers)}')
    for name, inner in wrappers.items():
        _check_one_optimizer(saved[name], inner.optimizer, f'optimizer[{name!r}]')


def _check_schedulers(saved: Any, current: Any, field: str = 'param_schedulers') -> None:
    if isinstance(current, dict):
        if not isinstance(saved, dict) or set(saved) != set(current):
            raise _Mismatch(f'{field} is {describe(saved)}, this run has schedulers for '
                            f'{sorted(current)}')
        for name in current:
            _check_schedulers(saved[name], current[name], f'{field}[{name!r}]')
        return
    if not isinstance(current, list) or not all(hasattr(s, 'state_dict') for s in current):
        return  # not built yet
    if not isinstance(saved, list) or len(saved) != len(current):
        count = len(saved) if isinstance(saved, list) else describe(saved)
        raise _Mismatch(f'{field} holds {count} scheduler states, this run has '
                        f'{len(current)} schedulers')
    for i, (state, scheduler) in enumerate(zip(saved, current)):
        where = f'{field}[{i}] ({type(scheduler).__name__})'
        now = scheduler.state_dict()
        if not isinstance(state, dict) or set(state) != set(now):
            keys = list(state) if isinstance(state, dict) else state
            raise _Mismatch(f'{where} has keys {describe(keys)}, the scheduler has '
                            f'{sorted(now)}')
        for key in ('by_epoch', 'param_name'):
            if key in now and state[key] != now[key]:
                raise _Mismatch(f'{where} {key} is {describe(state[key])}, this run has '
                                f'{describe(now[key])}')
        for key, value in now.items():
            _same_kind(state[key], value, f'{where} {key}')
        step = state.get('last_step')
        if step is not None and (type(step) is not int or not -1 <= step < _INT_RANGE):
            raise _Mismatch(f'{where} last_step is {describe(step)}')


def validate_resume(checkpoint: Any, runner: Any, name: str) -> None:
    """Refuse ``checkpoint`` unless ``runner`` can resume from it as the module says."""
    try:
        if not isinstance(checkpoint, dict):
            raise _Mismatch(f'the checkpoint is {describe(checkpoint)}, not a dict')
        _check_meta(checkpoint.get('meta'), runner)
        if 'message_hub' not in checkpoint:
            raise _Mismatch('it has no message_hub')
        _check_hub(checkpoint['message_hub'])
        if 'optimizer' in checkpoint:
            _check_optimizer(checkpoint['optimizer'], getattr(runner, 'optim_wrapper', None))
        if 'param_schedulers' in checkpoint and getattr(runner, 'param_schedulers', None):
            _check_schedulers(checkpoint['param_schedulers'], runner.param_schedulers)
    except _Mismatch as err:
        raise CheckpointError(f'{name}: cannot resume this run from it: {err}') from None
