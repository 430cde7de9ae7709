"""Whether a checkpoint's weights fit a model, key for key and shape for shape.

The inferencers and ``load_state_dict(strict=False)`` load whatever keys
match and leave the rest as they were; the tools use these checks to refuse
such a checkpoint in one line instead.
"""
from typing import Any, Callable, Dict, List, Mapping, Tuple

import torch

from .errors import CheckpointError

__all__ = ['state_dict_of', 'check_fits', 'fit_problems', 'shapes_of']


def state_dict_of(checkpoint: Any, name: str) -> Dict[str, torch.Tensor]:
    """The weights in a loaded checkpoint (its ``state_dict``, or the dict itself),
    without DDP's ``module.`` prefix."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) \
        else checkpoint
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f'{name}: holds no state dict of tensors (looked at the top '
                              "level and under 'state_dict')")
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def _examples(keys: List[str], limit: int = 3) -> str:
    # keys come from the file: each is cut short, so the message stays one short line
    shown = ', '.join(k if len(k) <= 120 else k[:120] + '...' for k in keys[:limit])
    return shown + (f' and {len(keys) - limit} more' if len(keys) > limit else '')


def check_fits(expected: Mapping[str, Tuple[int, ...]], state: Mapping[str, torch.Tensor],
               name: str, what: str, optional: Callable[[str], bool] = lambda key: False,
               allow_unexpected: bool = False) -> None:
    """Refuse ``state`` unless it has every key of ``expected`` with its shape.

    Args:
        expected: Key -> shape of the model the weights are for.
        state: The checkpoint's weights.
        name: The file, for the message.
        what: The model, for the message (e.g. ``'the model of configs/x.py'``).
        optional: Keys of ``expected`` the checkpoint may lack.
        allow_unexpected: Whether keys the model does not have are fine.
    """
    if not any(k in state for k in expected):
        raise CheckpointError(
            f'{name}: does not fit {what}: none of its {len(state)} keys are the model\'s '
            f'(its keys look like {_examples(sorted(state))}; the model\'s like '
            f'{_examples(sorted(expected))})')
    _, problems = fit_problems(expected, state, optional=optional,
                               allow_unexpected=allow_unexpected)
    if problems:
        raise CheckpointError(f'{name}: does not fit {what}: ' + '; '.join(problems))


def fit_problems(expected: Mapping[str, Tuple[int, ...]], state: Mapping[str, torch.Tensor],
                 same_shape: Callable[[str, Tuple[int, ...], Tuple[int, ...]], bool] = (
                     lambda key, got, want: got == want),
                 optional: Callable[[str], bool] = lambda key: False,
                 allow_unexpected: bool = False) -> Tuple[int, List[str]]:
    """How ``state`` differs from ``expected``: the number of differing keys, and
    one phrase each for keys of another shape, missing and unexpected ones."""
    missing = sorted(k for k in expected if k not in state and not optional(k))
    unexpected = [] if allow_unexpected else sorted(k for k in state if k not in expected)
    reshaped = [f'{k} {tuple(state[k].shape)} instead of {tuple(expected[k])}'
                for k in expected
                if k in state and not same_shape(k, tuple(state[k].shape), tuple(expected[k]))]
    problems = []
    if reshaped:
        problems.append(f'{len(reshaped)} of another shape ({_examples(reshaped, 2)})')
    if missing:
        problems.append(f'{len(missing)} missing ({_examples(missing)})')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected ({_examples(unexpected)})')
    return len(reshaped) + len(missing) + len(unexpected), problems


def shapes_of(model: torch.nn.Module) -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of ``model``'s state dict."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
