"""Load Runner checkpoints with torch's ``weights_only=True``, and nothing more.

A checkpoint is untrusted input.  Since torch 2.6 ``torch.load`` defaults to
``weights_only=True``, which refuses what a Runner checkpoint's
``message_hub`` holds: mmengine ``HistoryBuffer`` objects backed by numpy
arrays, numpy scalars, and the buffer's statistics methods (pickled as
``getattr(HistoryBuffer, 'mean')``).  Allow-listing the real classes would
hand a file the classes' ``__setstate__`` (numpy's dtype ``__setstate__``
forges object fields over raw bytes: a segfault on use; HistoryBuffer's
merges file content into class-level state) and, process-wide, would widen
every other ``torch.load`` in the process.

Instead, only while :func:`load_checkpoint_file` (and, through the schemes
:func:`register_checkpoint_loader` installs, every mmengine checkpoint load:
``--resume``, ``load_from``, ``mim test --checkpoint``, ``init_cfg`` of type
``Pretrained``) runs ``torch.load``, the weights-only allow-list is exactly
this module's stand-ins, which validate what they are given:

* ``numpy.dtype``: plain bool / int / uint / float dtypes by their type code,
  with no fields, subarrays, offsets or metadata;
* ``numpy.ndarray`` / ``_reconstruct``: arrays of such dtypes from raw bytes
  of exactly the right length;
* ``numpy...scalar``: scalars of such dtypes;
* ``HistoryBuffer``: a genuine ``HistoryBuffer`` built from validated numeric
  history, without calling its ``__setstate__``, so nothing in a file
  reaches the class-level ``_statistics_methods``;
* ``getattr``: only ``HistoryBuffer``'s four built-in statistics, by a fixed
  list of names.

Stand-ins stay placeholders until the load has finished; then they are
swapped for the real objects and anything left incomplete is refused.  The
allow-list that was in effect before (other code's ``add_safe_globals``) is
set aside for the load and restored exactly afterwards.
"""
import os
import pickle
import pickletools
import re
import sys
import threading
from contextlib import contextmanager
from typing import (IO, Any, Callable, Dict, Iterator, List, Mapping, Sequence,
                    Tuple, Union)

import numpy as np
import torch

__all__ = ['CheckpointError', 'load_checkpoint_file', 'runner_checkpoint_scope',
           'register_checkpoint_loader', 'state_dict_of', 'check_fits', 'shapes_of', 'STATISTICS',
           'PLAIN_DTYPE_CODES']

#: HistoryBuffer statistics a checkpoint may name (mmengine's built-ins).
STATISTICS = ('min', 'max', 'current', 'mean')
#: numpy type codes of the dtypes a checkpoint may contain.
PLAIN_DTYPE_CODES = ('b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2', 'f4', 'f8')
_MAX_NDIM = 32
_MAX_DEPTH = 100
_PathLike = Union[str, 'os.PathLike[str]']


class CheckpointError(pickle.UnpicklingError):
    """A checkpoint file that cannot or may not be loaded; the message names the file."""


class _Refused(pickle.UnpicklingError):
    """Raised by the stand-ins while torch unpickles; becomes a CheckpointError."""


_local = threading.local()


def _refuse(message: str) -> None:
    # torch re-raises UnpicklingErrors with its own long text; remember ours.
    _local.refusal = message
    raise _Refused(message)


# --------------------------------------------------------------- stand-ins
class _Pending:
    """A placeholder the unpickler builds; :func:`_finalize` swaps in ``result``."""

    __hash__ = None  # type: ignore[assignment]  # never a dict key or set member
    what = 'object'

    def __new__(cls, *args: Any) -> '_Pending':
        if args:
            _refuse(f'{cls.what} created with arguments {_short(args)}')
        self = object.__new__(cls)
        self.result = None
        self.built = False
        return self

    def __init__(self, *args: Any) -> None:  # arguments were checked by __new__
        pass

    def __setstate__(self, state: Any) -> None:
        if self.built:
            _refuse(f'{self.what} given its state twice')
        self.result = self._build(state)
        self.built = True

    def _build(self, state: Any) -> Any:
        raise NotImplementedError


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


def _exact_int(value: Any) -> bool:
    return type(value) is int


class _Dtype(_Pending):
    """``numpy.dtype``: plain numeric dtypes only."""

    what = 'numpy dtype'

    def __new__(cls, code: Any = None, align: Any = False, copy: Any = True,
                *rest: Any) -> '_Dtype':
        if rest or type(code) is not str or align is not False or copy is not True:
            _refuse(f'numpy dtype{_short((code, align, copy, *rest))}: only plain '
                    'numeric dtypes load from checkpoints')
        if code not in PLAIN_DTYPE_CODES:
            _refuse(f'numpy dtype {code!r}: only plain bool/int/uint/float dtypes '
                    f'({", ".join(PLAIN_DTYPE_CODES)}) load from checkpoints; no object, '
                    'structured, union or subarray dtypes')
        self = super().__new__(cls)
        self.code = code
        return self

    def _build(self, state: Any) -> np.dtype:
        # numpy pickles a plain dtype's state as (3, order, None, None, None, -1, -1, 0);
        # anything else adds subarrays, fields (names, offsets) or metadata.
        single_byte = np.dtype(self.code).itemsize == 1
        orders = ('|',) if single_byte else ('<', '>')
        if (type(state) is not tuple or len(state) != 8
                or not all(type(v) in (int, str, type(None)) for v in state)
                or state[1] not in orders
                or state[:1] + state[2:] != (3, None, None, None, -1, -1, 0)):
            _refuse(f'numpy dtype {self.code!r} with state {_short(state)}: fields, '
                    'subarrays, offsets and metadata are refused; only plain numeric '
                    'dtypes load from checkpoints')
        return np.dtype(self.code if single_byte else state[1] + self.code)


def _built_dtype(value: Any, where: str) -> np.dtype:
    if type(value) is not _Dtype or not value.built:
        _refuse(f'{where} needs a numpy dtype, got {_short(value)}')
    return value.result


class _Array(_Pending):
    """``numpy.ndarray`` (and ``_reconstruct``'s result): numeric arrays from raw bytes."""

    what = 'numpy array'

    def _build(self, state: Any) -> np.ndarray:
        if type(state) is not tuple or len(state) != 5:
            _refuse(f'numpy array state {_short(state)}: expected '
                    '(1, shape, dtype, fortran, bytes)')
        version, shape, dtype, fortran, data = state
        if version != 1 or not _exact_int(version):
            _refuse(f'numpy array state version {_short(version)}: expected 1')
        if (type(shape) is not tuple or len(shape) > _MAX_NDIM
                or not all(_exact_int(n) and n >= 0 for n in shape)):
            _refuse(f'numpy array shape {_short(shape)}: expected a tuple of at most '
                    f'{_MAX_NDIM} non-negative ints')
        dtype = _built_dtype(dtype, 'a numpy array')
        if type(fortran) is not bool:
            _refuse(f'numpy array order flag {_short(fortran)}: expected a bool')
        if type(data) is not bytes:
            _refuse(f'numpy array data of type {type(data).__name__}: only raw bytes of '
                    'numeric values load from checkpoints')
        size = 1
        for n in shape:
            size *= n
        if size * dtype.itemsize != len(data):
            _refuse(f'numpy array of shape {shape} and dtype {dtype} needs '
                    f'{size * dtype.itemsize} bytes, the file gives {len(data)}')
        flat = np.frombuffer(data, dtype=dtype) if size else np.empty(0, dtype=dtype)
        return flat.reshape(shape, order='F' if fortran else 'C').copy(order='K')


def _ndarray_reconstruct(cls: Any = None, shape: Any = None, typecode: Any = None,
                         *rest: Any) -> _Array:
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')``, as numpy pickles arrays."""
    if rest or cls is not _Array or shape != (0,) or type(shape) is not tuple \
            or typecode != b'b' or type(typecode) is not bytes:
        _refuse(f'numpy _reconstruct{_short((cls, shape, typecode, *rest))}: only plain '
                'numpy arrays load from checkpoints')
    return _Array()


def _numpy_scalar(dtype: Any = None, data: Any = None, *rest: Any) -> np.generic:
    """``numpy.core.multiarray.scalar(dtype, bytes)``: numeric scalars only."""
    dtype = _built_dtype(dtype, 'a numpy scalar')
    if rest or type(data) is not bytes or len(data) != dtype.itemsize:
        _refuse(f'numpy scalar of dtype {dtype} from {_short((data, *rest))}: expected '
                f'{dtype.itemsize} raw bytes')
    return np.frombuffer(data, dtype=dtype)[0]


def _history_buffer_class() -> type:
    from mmengine.logging import HistoryBuffer
    return HistoryBuffer


class _HistoryBuffer(_Pending):
    """``HistoryBuffer``: a real one from validated numeric history."""

    what = 'HistoryBuffer'
    _KEYS = ('max_length', '_log_history', '_count_history')

    def _build(self, state: Any) -> Any:
        if type(state) is not dict:
            _refuse(f'HistoryBuffer state of type {type(state).__name__}: expected a dict')
        keys = set(state)
        if not set(self._KEYS) <= keys <= {*self._KEYS, 'statistics_methods'}:
            _refuse(f'HistoryBuffer state with keys {sorted(map(str, keys))}: expected '
                    f'{list(self._KEYS)} and optionally statistics_methods')
        max_length = state['max_length']
        if not _exact_int(max_length) or max_length <= 0:
            _refuse(f'HistoryBuffer max_length {_short(max_length)}: expected a positive int')
        histories = []
        for key in ('_log_history', '_count_history'):
            value = state[key]
            if type(value) is not _Array or not value.built or value.result.ndim != 1:
                _refuse(f'HistoryBuffer {key} {_short(value)}: expected a 1-D numeric '
                        'numpy array')
            histories.append(value.result)
        log_history, count_history = histories
        if len(log_history) != len(count_history) or len(log_history) > max_length:
            _refuse(f'HistoryBuffer histories of lengths {len(log_history)} and '
                    f'{len(count_history)} (max_length {max_length}): expected equal '
                    'lengths within max_length')
        cls = _history_buffer_class()
        methods = state.get('statistics_methods', {})
        if type(methods) is not dict or any(
                type(name) is not str or name not in STATISTICS
                or method is not getattr(cls, name) for name, method in methods.items()):
            _refuse(f'HistoryBuffer statistics_methods {_short(methods)}: only '
                    f'{", ".join(STATISTICS)} are accepted (and never merged into the class)')
        buffer = object.__new__(cls)
        # mmengine's own defaults (min, max, current, mean): what any HistoryBuffer
        # construction registers; nothing from the file goes into the class.
        cls._set_default_statistics(buffer)
        buffer.__dict__.update(max_length=max_length, _log_history=log_history,
                               _count_history=count_history)
        return buffer


def _restricted_getattr(owner: Any = None, name: Any = None, *rest: Any) -> Callable:
    """``getattr``, for ``HistoryBuffer``'s statistics methods by a fixed list of names."""
    if rest or owner is not _HistoryBuffer or type(name) is not str or name not in STATISTICS:
        _refuse(f'getattr{_short((owner, name, *rest))}: only HistoryBuffer statistics '
                f'({", ".join(STATISTICS)}) are allowed')
    return getattr(_history_buffer_class(), name)


def _allow_list() -> List[Tuple[Any, str]]:
    """What a Runner checkpoint may name, each mapped to its validating stand-in."""
    entries: List[Tuple[Any, str]] = [
        (_restricted_getattr, 'builtins.getattr'),
        (_HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (_Dtype, 'numpy.dtype'),
        (_Array, 'numpy.ndarray'),
    ]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):  # numpy 1.x, 2.x
        entries += [(_ndarray_reconstruct, f'{module}._reconstruct'),
                    (_numpy_scalar, f'{module}.scalar')]
    return entries


_SCOPE_LOCK = threading.RLock()


def _global_name(entry: Any) -> str:
    """The name an allow-list entry answers to, as torch computes it."""
    if isinstance(entry, tuple):
        return str(entry[1])
    return f'{getattr(entry, "__module__", "")}.{getattr(entry, "__qualname__", "")}'


@contextmanager
def runner_checkpoint_scope(extra_globals: Sequence[Any] = ()) -> Iterator[None]:
    """Make the weights-only allow-list exactly the stand-ins, for the ``with`` body.

    torch's own registrations stay; entries other code added
    (``add_safe_globals``) are set aside, and the allow-list is restored
    exactly on exit, so neither side can remove or shadow the other's.  Use
    :func:`load_checkpoint_file` rather than this directly: the objects
    ``torch.load`` returns inside still hold placeholders.  ``extra_globals``
    are allowed as well (e.g. ``argparse.Namespace`` in timm checkpoints).
    """
    serialization = torch.serialization
    with _SCOPE_LOCK:
        saved = serialization.get_safe_globals()
        ours = _allow_list()
        names = {name for _, name in ours}
        # torch registers a few of its own (nested tensors, device meshes):
        # those are what plain torch accepts; keep them, unless shadowed.
        torch_own = [g for g in saved if _global_name(g).startswith('torch.')
                     and _global_name(g) not in names]
        serialization.clear_safe_globals()
        serialization.add_safe_globals(torch_own + ours + list(extra_globals))
        try:
            yield
        finally:
            serialization.clear_safe_globals()
            serialization.add_safe_globals(saved)


# ------------------------------------------------------------ finalisation
def _finalize(obj: Any) -> Any:
    """Swap built placeholders for real objects; refuse unbuilt ones and cycles."""
    done: Dict[int, Any] = {}
    active: set = set()

    def visit(value: Any, depth: int) -> Any:
        if isinstance(value, _Pending):
            if not value.built:
                _refuse(f'{value.what} without its state')
            return value.result
        kind = type(value)
        if kind not in (dict, list, tuple) and not isinstance(value, (dict, torch.Tensor)):
            return value
        key = id(value)
        if key in done:
            return done[key]
        if key in active:
            if kind is tuple:
                _refuse('a tuple that contains itself')
            return value  # a list or dict: fixed in place where it was first met
        if depth > _MAX_DEPTH:
            _refuse(f'containers nested deeper than {_MAX_DEPTH} levels')
        active.add(key)
        result = value
        if isinstance(value, dict):
            for k, v in list(value.items()):
                new = visit(v, depth + 1)
                if new is not v:
                    value[k] = new
            extra = getattr(value, '__dict__', None)  # e.g. OrderedDict._metadata
            if extra:
                visit(extra, depth + 1)
        elif kind is list:
            for i, v in enumerate(value):
                new = visit(v, depth + 1)
                if new is not v:
                    value[i] = new
        elif kind is tuple:
            items = [visit(v, depth + 1) for v in value]
            if any(new is not old for new, old in zip(items, value)):
                result = tuple(items)
        elif isinstance(value, torch.Tensor) and value.__dict__:
            visit(value.__dict__, depth + 1)
        active.discard(key)
        done[key] = result
        return result

    return visit(obj, 0)


# ------------------------------------------------------------------ loading
_OPCODE_NAMES = {op.code: op.name for op in pickletools.opcodes}
_PRETRAINED_HINT = (
    "; it is the ImageNet checkpoint the backbone's init_cfg=dict(type='Pretrained') "
    'loads. Either convert the official weights (python '
    'tools/model_converters/convert_official.py parcnetv2_<arch>.pth.tar {path} '
    "--target backbone), or point the config at an mmpretrain-trained classifier with "
    "--cfg-options model.backbone.init_cfg.checkpoint=CLS.pth "
    "model.backbone.init_cfg.prefix=backbone., or train from scratch with "
    '--cfg-options model.backbone.init_cfg=None')


def _explain_torch_refusal(message: str) -> str:
    """One line from torch's multi-paragraph weights-only error message."""
    if getattr(_local, 'refusal', None):
        return _local.refusal
    match = re.search(r'GLOBAL (\S+) was not an allowed global', message)
    if match:
        return (f'it references {match.group(1)}, which a Runner checkpoint never contains '
                '(only tensors, numeric numpy values and HistoryBuffer load)')
    match = re.search(r'GLOBAL (\S+) whose module (\S+) is blocked', message)
    if match:
        return f'it references {match.group(1)} (module {match.group(2)} is never loaded)'
    match = re.search(r'Unsupported operand (\d+)', message)
    if match:
        code = chr(int(match.group(1)))
        name = _OPCODE_NAMES.get(code, '?')
        return f'it uses the pickle opcode {name} ({code!r}), which checkpoints never need'
    inner = message.split('WeightsUnpickler error:')[-1].strip()
    lines = [line.strip() for line in inner.splitlines() if line.strip()]
    return lines[0] if lines else message.strip()


def _pretrained_init_frame() -> bool:
    """Whether mmengine's ``PretrainedInit`` is the caller (for the missing-file hint)."""
    try:
        from mmengine.model.weight_init import PretrainedInit
    except ImportError:  # pragma: no cover
        return False
    code = PretrainedInit.__call__.__code__
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        hint = _PRETRAINED_HINT.format(path=path) if _pretrained_init_frame() else ''
        raise FileNotFoundError(f'{path}: checkpoint file not found{hint}')
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: not a file (a checkpoint is a .pth file)')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'{path}: empty file (0 bytes), not a checkpoint')


def _scoped_load(load: Callable[[], Any], name: str, extra_globals: Sequence[Any] = ()) -> Any:
    """Run ``load`` (which calls ``torch.load``) inside the scope, then finalise."""
    _local.refusal = None
    try:
        with runner_checkpoint_scope(extra_globals):
            checkpoint = load()
        return _finalize(checkpoint)
    except _Refused as err:
        raise CheckpointError(f'{name}: refused: {err}') from None
    except pickle.UnpicklingError as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f'{name}: refused: {_explain_torch_refusal(str(err))}') from None
    finally:
        _local.refusal = None


def _head(source: Any, size: int = 8) -> bytes:
    """The first bytes of a file (path or seekable file object), for error messages."""
    try:
        if isinstance(source, str):
            with open(source, 'rb') as file:
                return file.read(size)
        position = source.tell()
        source.seek(0)
        head = source.read(size)
        source.seek(position)
        return head if isinstance(head, bytes) else b''
    except (OSError, AttributeError, ValueError):
        return b''


def load_checkpoint_file(filename: Union[_PathLike, IO[bytes]], map_location: Any = 'cpu',
                         extra_globals: Sequence[Any] = ()) -> Any:
    """``torch.load(filename, weights_only=True)`` that also reads Runner checkpoints.

    ``extra_globals``: further classes the file may hold, allowed for this load only.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: Not a checkpoint, or a file the validating stand-ins
            refuse; the one-line message starts with the file name.
    """
    is_path = isinstance(filename, (str, os.PathLike))
    name = os.path.expanduser(os.fspath(filename)) if is_path else \
        str(getattr(filename, 'name', '<file object>'))
    if is_path:
        _check_file(name)
    source = name if is_path else filename

    def load() -> Any:
        try:
            return torch.load(source, map_location=map_location, weights_only=True)
        except (pickle.UnpicklingError, FileNotFoundError, MemoryError):
            raise
        except EOFError:
            raise CheckpointError(f'{name}: truncated file, not a complete checkpoint') \
                from None
        except Exception as err:  # torch's errors for files that are no checkpoint at all
            text = (str(err).strip().splitlines() or [''])[0].split('. ')[0][:160]
            detail = f'{type(err).__name__}: {text}' if text else type(err).__name__
            if 'TorchScript' in text:
                raise CheckpointError(f'{name}: a TorchScript archive, not a checkpoint '
                                      '(load it with torch.jit.load)') from None
            head = _head(source)
            if head.startswith(b'PK\x03\x04'):
                raise CheckpointError(f'{name}: corrupt checkpoint archive ({detail})') \
                    from None
            if not head.startswith(b'\x80'):  # neither a zip nor a (legacy) pickle
                raise CheckpointError(f'{name}: not a PyTorch checkpoint (neither a zip '
                                      f'archive nor a pickle; it starts with {head!r})') \
                    from None
            raise CheckpointError(f'{name}: not a PyTorch checkpoint ({detail})') from None

    return _scoped_load(load, name, extra_globals)


# ------------------------------------------------------- mmengine's loaders
def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file scheme, through :func:`load_checkpoint_file`."""
    return load_checkpoint_file(filename, map_location)


def _scoped_scheme(loader: Callable) -> Callable:
    """An mmengine scheme loader that runs ``torch.load`` inside the scope."""
    import functools

    @functools.wraps(loader)
    def scoped(filename: str, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        # forwarded as given (e.g. ``progress``): the wrapped loader checks them
        return _scoped_load(lambda: loader(filename, map_location, *args, **kwargs),
                            str(filename))

    scoped._mmparc_scoped = True  # type: ignore[attr-defined]
    return scoped


def register_checkpoint_loader() -> None:
    """Route mmengine's checkpoint loading through the scoped, validating allow-list.

    The local-file scheme becomes :func:`load_from_local` (one-line errors for
    missing, empty and non-checkpoint files); the other schemes mmengine has
    (http, openmmlab, ...) keep their loaders, run inside the scope.  Nothing
    is added to torch's process-wide allow-list.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    schemes = dict(getattr(CheckpointLoader, '_schemes', {}))
    for prefix, loader in schemes.items():
        if prefix and not getattr(loader, '_mmparc_scoped', False):
            CheckpointLoader.register_scheme(prefixes=prefix, loader=_scoped_scheme(loader),
                                             force=True)
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


# ------------------------------------------------------------ fit checks
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
    shown = ', '.join(keys[:limit])
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
