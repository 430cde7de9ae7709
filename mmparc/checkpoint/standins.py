"""Validating stand-ins for what a Runner checkpoint names besides tensors.

mmengine's ``message_hub`` holds ``HistoryBuffer`` objects backed by numpy
arrays, numpy scalars, and the buffer's statistics methods (pickled as
``getattr(HistoryBuffer, 'mean')``).  The real classes would hand a file
their ``__setstate__`` (numpy's dtype ``__setstate__`` forges object fields
over raw bytes: a segfault on use; HistoryBuffer's merges file content into
class-level state), so the restricted unpickler resolves those names to these
stand-ins instead, which validate what they are given:

* ``numpy.dtype``: plain bool / int / uint / float dtypes by their type code,
  with no fields, subarrays, offsets or metadata;
* ``numpy.ndarray`` / ``_reconstruct``: arrays of such dtypes from raw bytes
  of exactly the right length (charged to the load's budget);
* ``numpy...scalar``: scalars of such dtypes;
* ``HistoryBuffer``: a genuine ``HistoryBuffer`` built from validated numeric
  history, without calling its ``__setstate__``, so nothing in a file
  reaches the class-level ``_statistics_methods``;
* ``getattr``: only ``HistoryBuffer``'s four built-in statistics, by a fixed
  list of names.

Stand-ins stay placeholders until the load has finished; then
:func:`mmparc.checkpoint.loading.finalize` swaps them for the real objects
and refuses anything left incomplete.
"""
from typing import Any, Callable, List, Tuple

import numpy as np

from .budget import charge
from .errors import describe, refuse

__all__ = ['Pending', 'STATISTICS', 'PLAIN_DTYPE_CODES', 'stand_ins']

#: HistoryBuffer statistics a checkpoint may name (mmengine's built-ins).
STATISTICS = ('min', 'max', 'current', 'mean')
#: numpy type codes of the dtypes a checkpoint may contain.
PLAIN_DTYPE_CODES = ('b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f2', 'f4', 'f8')
_MAX_NDIM = 32


class Pending:
    """A placeholder the unpickler builds; :func:`_finalize` swaps in ``result``."""

    __hash__ = None  # type: ignore[assignment]  # never a dict key or set member
    what = 'object'

    def __new__(cls, *args: Any) -> 'Pending':
        if args:
            refuse(f'{cls.what} created with arguments {describe(args)}')
        self = object.__new__(cls)
        self.result = None
        self.built = False
        return self

    def __init__(self, *args: Any) -> None:  # arguments were checked by __new__
        pass

    def __setstate__(self, state: Any) -> None:
        if self.built:
            refuse(f'{self.what} given its state twice')
        self.result = self._build(state)
        self.built = True

    def _build(self, state: Any) -> Any:
        raise NotImplementedError


def _exact_int(value: Any) -> bool:
    return type(value) is int


class _Dtype(Pending):
    """``numpy.dtype``: plain numeric dtypes only."""

    what = 'numpy dtype'

    def __new__(cls, code: Any = None, align: Any = False, copy: Any = True,
                *rest: Any) -> '_Dtype':
        if rest or type(code) is not str or align is not False or copy is not True:
            refuse(f'numpy dtype{describe((code, align, copy, *rest))}: only plain '
                   'numeric dtypes load from checkpoints')
        if code not in PLAIN_DTYPE_CODES:
            refuse(f'numpy dtype {describe(code)}: only plain bool/int/uint/float dtypes '
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
            refuse(f'numpy dtype {self.code!r} with state {describe(state)}: fields, '
                   'subarrays, offsets and metadata are refused; only plain numeric '
                   'dtypes load from checkpoints')
        return np.dtype(self.code if single_byte else state[1] + self.code)


def _built_dtype(value: Any, where: str) -> np.dtype:
    if type(value) is not _Dtype or not value.built:
        refuse(f'{where} needs a numpy dtype, got {describe(value)}')
    return value.result


class _Array(Pending):
    """``numpy.ndarray`` (and ``_reconstruct``'s result): numeric arrays from raw bytes."""

    what = 'numpy array'

    def _build(self, state: Any) -> np.ndarray:
        if type(state) is not tuple or len(state) != 5:
            refuse(f'numpy array state {describe(state)}: expected '
                   '(1, shape, dtype, fortran, bytes)')
        version, shape, dtype, fortran, data = state
        if version != 1 or not _exact_int(version):
            refuse(f'numpy array state version {describe(version)}: expected 1')
        if (type(shape) is not tuple or len(shape) > _MAX_NDIM
                or not all(_exact_int(n) and n >= 0 for n in shape)):
            refuse(f'numpy array shape {describe(shape)}: expected a tuple of at most '
                   f'{_MAX_NDIM} non-negative ints')
        dtype = _built_dtype(dtype, 'a numpy array')
        if type(fortran) is not bool:
            refuse(f'numpy array order flag {describe(fortran)}: expected a bool')
        if type(data) is not bytes:
            refuse(f'numpy array data of type {type(data).__name__}: only raw bytes of '
                   'numeric values load from checkpoints')
        size = 1
        for n in shape:
            size *= n
        if size * dtype.itemsize != len(data):
            refuse(f'numpy array of shape {describe(shape)} and dtype {dtype} needs '
                   f'{size * dtype.itemsize} bytes, the file gives {len(data)}')
        charge(len(data), 'a numpy array')
        flat = np.frombuffer(data, dtype=dtype) if size else np.empty(0, dtype=dtype)
        return flat.reshape(shape, order='F' if fortran else 'C').copy(order='K')


def _ndarray_reconstruct(cls: Any = None, shape: Any = None, typecode: Any = None,
                         *rest: Any) -> _Array:
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')``, as numpy pickles arrays."""
    if rest or cls is not _Array or shape != (0,) or type(shape) is not tuple \
            or typecode != b'b' or type(typecode) is not bytes:
        refuse(f'numpy _reconstruct{describe((cls, shape, typecode, *rest))}: only plain '
               'numpy arrays load from checkpoints')
    return _Array()


def _numpy_scalar(dtype: Any = None, data: Any = None, *rest: Any) -> np.generic:
    """``numpy.core.multiarray.scalar(dtype, bytes)``: numeric scalars only."""
    dtype = _built_dtype(dtype, 'a numpy scalar')
    if rest or type(data) is not bytes or len(data) != dtype.itemsize:
        refuse(f'numpy scalar of dtype {dtype} from {describe((data, *rest))}: expected '
               f'{dtype.itemsize} raw bytes')
    return np.frombuffer(data, dtype=dtype)[0]


def _history_buffer_class() -> type:
    from mmengine.logging import HistoryBuffer
    return HistoryBuffer


class _HistoryBuffer(Pending):
    """``HistoryBuffer``: a real one from validated numeric history."""

    what = 'HistoryBuffer'
    _KEYS = ('max_length', '_log_history', '_count_history')

    def _build(self, state: Any) -> Any:
        if type(state) is not dict:
            refuse(f'HistoryBuffer state of type {type(state).__name__}: expected a dict')
        keys = set(state)
        if not set(self._KEYS) <= keys <= {*self._KEYS, 'statistics_methods'}:
            refuse(f'HistoryBuffer state with keys {describe(list(keys))}: expected '
                   f'{list(self._KEYS)} and optionally statistics_methods')
        max_length = state['max_length']
        if not _exact_int(max_length) or max_length <= 0:
            refuse(f'HistoryBuffer max_length {describe(max_length)}: expected a positive int')
        histories = []
        for key in ('_log_history', '_count_history'):
            value = state[key]
            if type(value) is not _Array or not value.built or value.result.ndim != 1:
                refuse(f'HistoryBuffer {key} {describe(value)}: expected a 1-D numeric '
                       'numpy array')
            histories.append(value.result)
        log_history, count_history = histories
        if len(log_history) != len(count_history) or len(log_history) > max_length:
            refuse(f'HistoryBuffer histories of lengths {len(log_history)} and '
                   f'{len(count_history)} (max_length {max_length}): expected equal '
                   'lengths within max_length')
        cls = _history_buffer_class()
        methods = state.get('statistics_methods', {})
        if type(methods) is not dict or any(
                type(name) is not str or name not in STATISTICS
                or method is not getattr(cls, name) for name, method in methods.items()):
            refuse(f'HistoryBuffer statistics_methods {describe(methods)}: only '
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
        refuse(f'getattr{describe((owner, name, *rest))}: only HistoryBuffer statistics '
               f'({", ".join(STATISTICS)}) are allowed')
    return getattr(_history_buffer_class(), name)


def stand_ins() -> List[Tuple[Any, str]]:
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
