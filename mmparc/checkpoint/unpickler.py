"""A restricted unpickler of mmparc's own, handed to ``torch.load`` per call.

torch's weights-only allow-list is one process-wide list: widening it for a
Runner checkpoint (numpy values, ``HistoryBuffer``) widens it for every
thread's ``torch.load`` while the load runs, and hides or loses other code's
registrations.  Instead, each load here builds its own pickle module (its
:class:`RestrictedUnpickler` bound to that load's allow-list, budget and
archive records) and passes it to ``torch.load(pickle_module=...)``, which
runs it in the calling thread only; torch's own allow-list is never read or
written, and nothing is locked.

What the unpickler accepts is a subset of torch's weights-only format:

* the opcodes torch's weights-only unpickler implements, nothing else;
* names: torch dtypes, storage types, ``torch.Size``/``torch.device``,
  ``OrderedDict``/``Counter``/``set``/``bytearray``/``complex``/
  ``_codecs.encode`` (protocol 2 bytes), the plain tensor and parameter
  rebuild functions, the stand-ins of :mod:`.standins`, and the classes a
  caller passes for its own load (``extra_globals``), nothing registered
  elsewhere (``add_safe_globals``);
* every callable checks its arguments before it runs: sizes and strides that
  fit their storage, empty backward hooks and object state, no allocation
  sized by the file (``bytearray(n)``, ``FloatTensor(n)``, storage types);
* storages (``BINPERSID``) name an archive record of at least their size,
  by a plain key, and are charged to the load's :class:`~.budget.Budget`,
  as are strings, containers and items;
* quantized, sparse, nested and wrapper-subclass tensors are refused
  (a checkpoint of these models never holds them).
"""
import _compat_pickle
import io
import pickle
import pickletools
import re
import types
from collections import Counter, OrderedDict
from struct import unpack
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from .budget import ITEM_COST, OBJECT_COST, Budget
from .budget import active
from .budget import charge as _charge
from .errors import describe, refuse
from .standins import Pending, stand_ins

__all__ = ['LoadContext', 'RestrictedUnpickler', 'pickle_module_for']

_OPCODE_NAMES = {op.code: op.name for op in pickletools.opcodes}
_MAX_NDIM = 64
_KEY = re.compile(r'^\w{1,64}$')
_REFUSED_KINDS = {
    '_rebuild_qtensor': 'quantized', '_rebuild_sparse_tensor': 'sparse',
    '_rebuild_sparse_csr': 'sparse', '_rebuild_nested_tensor': 'nested',
    '_rebuild_wrapper_subclass': 'wrapper-subclass',
}


class LoadContext:
    """What one load may name and allocate; one per ``load_checkpoint_file`` call.

    Args:
        budget: Bytes the load may allocate.
        records: Archive record name (relative to the archive's folder) ->
            declared size, or ``None`` for a legacy (non-zip) file.
        extra_globals: Further classes this load may build (``NEWOBJ`` and a
            ``__dict__`` state only).
    """

    def __init__(self, budget: Budget, records: Optional[Dict[str, int]],
                 extra_globals: Sequence[type] = ()) -> None:
        self.budget = budget
        self.records = records
        self.extra = {f'{c.__module__}.{c.__qualname__}': c for c in extra_globals}
        self.extra_classes = tuple(self.extra.values())
        self.storages: Dict[str, int] = {}


# ----------------------------------------------------------- checked calls
def _unwrap(value: Any) -> Any:
    if isinstance(value, Pending):
        if not value.built:
            refuse(f'{value.what} used before its state was given')
        return value.result
    return value


def _ints(value: Any, what: str, allow_none: bool = False) -> Optional[tuple]:
    if value is None and allow_none:
        return None
    if type(value) not in (tuple, list, torch.Size) or len(value) > _MAX_NDIM or not all(
            type(n) is int and 0 <= n < (1 << 62) for n in value):
        refuse(f'tensor {what} {describe(value)}: expected at most {_MAX_NDIM} '
               'non-negative ints')
    return tuple(value)


def _check_view(storage: Any, offset: Any, size: Any, stride: Any) -> None:
    """Refuse a tensor whose size, stride and offset reach past its storage."""
    if not isinstance(storage, torch.storage.TypedStorage):
        refuse(f'a tensor over {describe(storage)}: expected a storage from the archive')
    size = _ints(size, 'size')
    stride = _ints(stride, 'stride')
    if type(offset) is not int or not 0 <= offset < (1 << 62) or len(size) != len(stride):
        refuse(f'tensor offset {describe(offset)} with size {describe(size)} and stride '
               f'{describe(stride)}: inconsistent')
    element = torch._utils._element_size(storage.dtype)
    numel = 1
    for n in size:
        numel *= n
    limit = active()
    if limit is not None and numel * element > limit.limit:
        # a stride-0 view allocates nothing now, but every use of it would
        refuse(f'a tensor of size {describe(size)} ({numel * element} bytes) over a storage '
               f'of {storage._untyped_storage.nbytes()}: more than the load\'s budget')
    if all(size):
        end = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
        untyped = storage._untyped_storage
        if end * element > untyped.nbytes():
            refuse(f'a tensor of size {describe(size)}, stride {describe(stride)} at offset '
                   f'{offset} reaches past its storage of {storage.nbytes()} bytes')


def _check_hooks(hooks: Any) -> None:
    if type(hooks) not in (dict, OrderedDict) or hooks:
        refuse(f'tensor backward hooks {describe(hooks)}: a checkpoint holds none')


def _check_no_state(state: Any, what: str) -> None:
    if state is None or (type(state) in (dict, OrderedDict) and not state):
        return
    if type(state) is tuple and all(s is None or (type(s) is dict and not s) for s in state):
        return
    refuse(f'{what} with attributes {describe(state)}: a checkpoint holds plain tensors')


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if type(metadata) is not dict or not all(
            type(k) is str and type(v) is bool for k, v in metadata.items()):
        refuse(f'tensor metadata {describe(metadata)}: expected flags (str -> bool)')


def _check_flag(value: Any, what: str) -> None:
    if type(value) is not bool:
        refuse(f'{what} {describe(value)}: expected a bool')


def _dtype(value: Any) -> torch.dtype:
    if not isinstance(value, torch.dtype):
        refuse(f'dtype {describe(value)}: expected a torch dtype')
    return value


def _rebuild_tensor(storage, storage_offset, size, stride):  # noqa: ANN001,ANN202
    _check_view(storage, storage_offset, size, stride)
    return torch._utils._rebuild_tensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,  # noqa: ANN001
                       backward_hooks, metadata=None):  # noqa: ANN001,ANN202
    _check_view(storage, storage_offset, size, stride)
    _check_flag(requires_grad, 'requires_grad')
    _check_hooks(backward_hooks)
    _check_metadata(metadata)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, tuple(size), tuple(stride),
                                           requires_grad, OrderedDict(), metadata)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad,  # noqa: ANN001
                       backward_hooks, dtype, metadata=None):  # noqa: ANN001,ANN202
    _check_view(storage, storage_offset, size, stride)
    _check_flag(requires_grad, 'requires_grad')
    _check_hooks(backward_hooks)
    _check_metadata(metadata)
    return torch._utils._rebuild_tensor_v3(storage, storage_offset, tuple(size), tuple(stride),
                                           requires_grad, OrderedDict(), _dtype(dtype), metadata)


def _tensor(value: Any, what: str) -> torch.Tensor:
    value = _unwrap(value)
    if not isinstance(value, torch.Tensor):
        refuse(f'{what} {describe(value)}: expected a tensor')
    return value


def _rebuild_parameter(data, requires_grad, backward_hooks):  # noqa: ANN001,ANN202
    _check_flag(requires_grad, 'requires_grad')
    _check_hooks(backward_hooks)
    return torch.nn.Parameter(_tensor(data, 'parameter data'), requires_grad)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks,  # noqa: ANN001
                                  state):  # noqa: ANN001,ANN202
    _check_no_state(state, 'a parameter')
    return _rebuild_parameter(data, requires_grad, backward_hooks)


def _device(value: Any) -> Any:
    if type(value) is str and len(value) <= 64:
        return value
    if isinstance(value, torch.device):
        return value
    refuse(f'device {describe(value)}: expected a device name')


def _rebuild_device_tensor_from_numpy(data, dtype, device, requires_grad):  # noqa: ANN001,ANN202
    import numpy as np
    array = _unwrap(data)
    if type(array) is not np.ndarray:
        refuse(f'tensor data {describe(array)}: expected a numeric numpy array')
    _check_flag(requires_grad, 'requires_grad')
    return torch._utils._rebuild_device_tensor_from_numpy(array, _dtype(dtype), _device(device),
                                                          requires_grad)


def _rebuild_device_tensor_from_cpu_tensor(data, dtype, device,  # noqa: ANN001
                                           requires_grad):  # noqa: ANN001,ANN202
    _check_flag(requires_grad, 'requires_grad')
    return torch._utils._rebuild_device_tensor_from_cpu_tensor(
        _tensor(data, 'tensor data'), _dtype(dtype), _device(device), requires_grad)


def _rebuild_meta_tensor_no_storage(dtype, size, stride, requires_grad):  # noqa: ANN001,ANN202
    _check_flag(requires_grad, 'requires_grad')
    return torch._utils._rebuild_meta_tensor_no_storage(
        _dtype(dtype), _ints(size, 'size'), _ints(stride, 'stride'), requires_grad)


_REBUILDERS: Dict[str, Callable] = {}


def _rebuild_from_type_v2(func, new_type, args, state):  # noqa: ANN001,ANN202
    if not any(func is f for f in _REBUILDERS.values()):
        refuse(f'_rebuild_from_type_v2 of {describe(func)}: expected a tensor rebuild function')
    if new_type is not torch.Tensor and new_type is not torch.nn.Parameter:
        refuse(f'tensor of type {describe(new_type)}: only plain tensors and parameters load')
    if type(args) is not tuple:
        refuse(f'tensor rebuild arguments {describe(args)}: expected a tuple')
    _check_no_state(state, 'a tensor')
    result = func(*args)
    return result if type(result) is new_type else result.as_subclass(new_type)


def _size(*args: Any) -> torch.Size:
    if len(args) != 1:
        refuse(f'torch.Size{describe(args)}: expected one tuple of sizes')
    return torch.Size(_ints(args[0], 'size'))


def _torch_device(*args: Any) -> torch.device:
    if not 1 <= len(args) <= 2 or type(args[0]) is not str or len(args[0]) > 64 or (
            len(args) == 2 and (type(args[1]) is not int or not 0 <= args[1] < 1 << 16)):
        refuse(f'torch.device{describe(args)}: expected a device name and index')
    return torch.device(*args)


def _latin1(args: tuple, what: str) -> bytes:
    """Protocol 2 bytes: ``(text, 'latin1')``; charged by length."""
    if len(args) == 0:
        return b''
    if (len(args) != 2 or type(args[0]) is not str or args[1] not in ('latin1', 'latin-1')):
        refuse(f'{what}{describe(args)}: expected (text, "latin1"); nothing is sized or '
               'decoded by a checkpoint')
    return args[0].encode('latin1')


def _encode(*args: Any) -> bytes:
    data = _latin1(args, '_codecs.encode')
    _charge(len(data) + OBJECT_COST, 'bytes')
    return data


def _bytes(*args: Any) -> bytes:
    return _encode(*args)  # protocol 2 pickles b'' as bytes(); others as _codecs.encode


def _bytearray(*args: Any) -> bytearray:
    data = args[0] if len(args) == 1 and type(args[0]) is bytes else _latin1(args, 'bytearray')
    _charge(len(data) + OBJECT_COST, 'a bytearray')
    return bytearray(data)


def _complex(*args: Any) -> complex:
    if len(args) > 2 or not all(type(a) in (int, float) for a in args):
        refuse(f'complex{describe(args)}: expected two numbers')
    return complex(*args)


def _set(*args: Any) -> set:
    if len(args) > 1 or (args and type(args[0]) not in (list, tuple)):
        refuse(f'set{describe(args)}: expected a list of items')
    items = args[0] if args else ()
    _charge(OBJECT_COST + ITEM_COST * len(items), 'a set')
    return set(items)


def _counter(*args: Any) -> Counter:
    if len(args) > 1 or (args and type(args[0]) is not dict):
        refuse(f'Counter{describe(args)}: expected a dict of counts')
    return Counter(*args)


def _ordered_dict(*args: Any) -> OrderedDict:
    if args:
        refuse(f'OrderedDict{describe(args)}: items come after it, not as arguments')
    return OrderedDict()


def _refused_kind(kind: str) -> Callable:
    def refused(*args: Any) -> None:
        refuse(f'a {kind} tensor: checkpoints of these models hold plain (strided) tensors '
               'only')
    return refused


def _allowed_names() -> Dict[str, Any]:
    """Name -> object for every global a checkpoint may name (no caller's extras)."""
    if _ALLOWED:
        return _ALLOWED
    names: Dict[str, Any] = {}
    for attr in dir(torch):
        value = getattr(torch, attr, None)
        if isinstance(value, torch.dtype):
            names[f'torch.{attr}'] = value
    rebuilders = {
        '_rebuild_tensor': _rebuild_tensor, '_rebuild_tensor_v2': _rebuild_tensor_v2,
        '_rebuild_tensor_v3': _rebuild_tensor_v3, '_rebuild_parameter': _rebuild_parameter,
        '_rebuild_parameter_with_state': _rebuild_parameter_with_state,
        '_rebuild_device_tensor_from_numpy': _rebuild_device_tensor_from_numpy,
        '_rebuild_device_tensor_from_cpu_tensor': _rebuild_device_tensor_from_cpu_tensor,
        '_rebuild_meta_tensor_no_storage': _rebuild_meta_tensor_no_storage,
    }
    for attr, checked in rebuilders.items():
        if hasattr(torch._utils, attr):  # feature detection across torch versions
            names[f'torch._utils.{attr}'] = checked
            _REBUILDERS[attr] = checked
    for attr, kind in _REFUSED_KINDS.items():
        names[f'torch._utils.{attr}'] = _refused_kind(kind)
    names['torch._tensor._rebuild_from_type_v2'] = _rebuild_from_type_v2
    names.update({
        'torch.Size': _size, 'torch.device': _torch_device,
        'torch.Tensor': torch.Tensor, 'torch._tensor.Tensor': torch.Tensor,
        'torch.nn.parameter.Parameter': torch.nn.Parameter,
        'torch.UntypedStorage': torch.UntypedStorage,
        'torch.storage.UntypedStorage': torch.UntypedStorage,
        'collections.OrderedDict': _ordered_dict, 'collections.Counter': _counter,
        'builtins.set': _set, 'builtins.bytes': _bytes, 'builtins.bytearray': _bytearray,
        'builtins.complex': _complex,
        '_codecs.encode': _encode,
    })
    for standin, name in stand_ins():
        names[name] = standin
    _ALLOWED.update(names)
    return _ALLOWED


_ALLOWED: Dict[str, Any] = {}


def _callable_ids() -> set:
    """ids of the allowed objects a REDUCE may call: the checked functions and the
    stand-in classes (whose ``__new__`` checks), never a tensor or storage class."""
    if not _CALLABLES:
        _CALLABLES.update(id(v) for v in _allowed_names().values()
                          if isinstance(v, types.FunctionType)
                          or (isinstance(v, type) and issubclass(v, Pending)))
    return _CALLABLES


_CALLABLES: set = set()


# --------------------------------------------------------------- unpickler
class RestrictedUnpickler:
    """Pickle's opcode loop for the weights-only subset, bound to one :class:`LoadContext`.

    ``torch.load`` subclasses it (to map storage names) and sets
    ``persistent_load``; :func:`pickle_module_for` binds the context.
    """

    context: LoadContext  # set on the per-load subclass

    def __init__(self, file: io.BufferedIOBase, *, encoding: str = 'bytes') -> None:
        self.encoding = encoding
        self.read = file.read
        self.readline = file.readline
        self.memo: Dict[int, Any] = {}

    def persistent_load(self, pid: Any) -> Any:  # replaced by torch.load
        refuse('a storage outside a torch archive')

    def find_class(self, module: str, name: str) -> Any:
        """The allowed object ``module.name`` stands for; anything else is refused."""
        # protocol 2 writes Python 2 names (__builtin__.set): pickle's own mapping
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        full = f'{module}.{name}'
        allowed = _allowed_names()
        if full in allowed:
            return allowed[full]
        if full in self.context.extra:
            return self.context.extra[full]
        shown = full if len(full) <= 120 else full[:120] + '...'
        refuse(f'it references {shown}, which a Runner checkpoint never '
               'contains (only tensors, numeric numpy values and HistoryBuffer load)')

    # -- helpers
    def _charge(self, size: int, what: str = 'the pickled objects') -> None:
        self.context.budget.charge(size, what)

    def _pop_mark(self) -> list:
        if not self.metastack:
            refuse('a pickle that pops a mark it never set')
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def _top(self) -> Any:
        if not self.stack:
            refuse('a pickle that reads past the bottom of its stack')
        return self.stack[-1]

    def _pop(self) -> Any:
        self._top()
        return self.stack.pop()

    def _storage(self, pid: Any) -> Any:
        """Validate and charge a storage reference, then let torch load it."""
        if type(pid) is not tuple or len(pid) not in (5, 6):
            refuse(f'persistent id {describe(pid)}: expected a storage reference')
        kind = pid[0].decode('ascii', 'replace') if type(pid[0]) is bytes else pid[0]
        if kind != 'storage':
            refuse(f'persistent id of kind {describe(kind)}: only storages load')
        storage_type, key, location, numel = pid[1:5]
        if storage_type is torch.UntypedStorage:
            element = 1
        elif type(storage_type) is torch.serialization.StorageType:
            element = torch._utils._element_size(storage_type.dtype)
        else:
            refuse(f'storage of type {describe(storage_type)}: expected a torch storage type')
        if type(key) is not str or not _KEY.match(key):
            refuse(f'storage key {describe(key)}: expected a plain record name')
        if type(location) is not str or len(location) > 64:
            refuse(f'storage location {describe(location)}: expected a device name')
        if type(numel) is not int or not 0 <= numel < (1 << 62):
            refuse(f'storage size {describe(numel)}: expected a non-negative int')
        nbytes = numel * element
        if key not in self.context.storages:
            records = self.context.records
            if records is not None:
                record = records.get(f'data/{key}')
                if record is None:
                    refuse(f'storage {key} has no record data/{key} in the archive')
                if nbytes > record:
                    refuse(f'storage {key} of {nbytes} bytes is larger than its record '
                           f'data/{key} ({record} bytes)')
            else:
                self._charge(nbytes, f'storage {key} ({nbytes} bytes)')
            self.context.storages[key] = nbytes
        elif self.context.storages[key] != nbytes and self.context.records is not None:
            refuse(f'storage {key} referenced with two sizes')
        return self.persistent_load(pid)

    # -- the loop
    def load(self) -> Any:  # noqa: C901  (one branch per opcode, as pickle's own)
        """Read one pickle; refuse what the module docstring does not allow."""
        self.metastack: List[list] = []
        self.stack: List[Any] = []
        read, readline = self.read, self.readline
        callables = _callable_ids()
        new_objects = {id(_ordered_dict), id(_counter), id(_set)}
        extra = {id(c) for c in self.context.extra_classes}
        while True:
            key = read(1)
            if not key:
                raise EOFError
            op = key[0]
            if op == pickle.PROTO[0]:
                read(1)
            elif op == pickle.STOP[0]:
                return self._pop()
            elif op == pickle.GLOBAL[0]:
                module = readline()[:-1].decode('utf-8', 'replace')
                name = readline()[:-1].decode('utf-8', 'replace')
                self._charge(OBJECT_COST)
                self.stack.append(self.find_class(module, name))
            elif op == pickle.REDUCE[0]:
                args = self._pop()
                func = self._top()
                if type(args) is not tuple:
                    refuse(f'a call with arguments {describe(args)}')
                if id(func) not in callables:
                    refuse(f'a call of {describe(func)}, which a checkpoint may not make')
                self._charge(OBJECT_COST)
                self.stack[-1] = func(*args)
            elif op == pickle.NEWOBJ[0]:
                args = self._pop()
                cls = self._pop()
                self._charge(OBJECT_COST)
                if type(args) is not tuple:
                    refuse(f'an object created with {describe(args)}')
                if id(cls) in callables and isinstance(cls, type):  # a stand-in class
                    self.stack.append(cls.__new__(cls, *args))
                elif cls is torch.nn.Parameter:
                    if not 1 <= len(args) <= 2 or (len(args) == 2 and type(args[1]) is not bool):
                        refuse(f'a Parameter created with {describe(args)}')
                    self.stack.append(torch.nn.Parameter(_tensor(args[0], 'parameter data'),
                                                         *args[1:]))
                elif id(cls) in new_objects and not args:
                    self.stack.append(cls())
                elif id(cls) in extra and not args:
                    self.stack.append(cls.__new__(cls))
                else:
                    refuse(f'an object of {describe(cls)} created with {describe(args)}: '
                           'only the allowed classes, without arguments')
            elif op == pickle.BUILD[0]:
                state = self._pop()
                inst = self._top()
                if isinstance(inst, Pending):
                    inst.__setstate__(state)
                elif type(inst) is OrderedDict:
                    if type(state) is not dict or set(state) - {'_metadata'}:
                        refuse(f'OrderedDict attributes {describe(state)}: only _metadata')
                    inst.__dict__.update(state)
                elif id(type(inst)) in extra:
                    if type(state) is not dict or not all(type(k) is str for k in state):
                        refuse(f'{type(inst).__name__} state {describe(state)}: expected a '
                               'dict of attributes')
                    inst.__dict__.update(state)
                else:
                    refuse(f'state given to {describe(inst)}, which takes none from a file')
            elif op == pickle.APPEND[0]:
                item = self._pop()
                target = self._top()
                if type(target) is not list:
                    refuse(f'APPEND to {describe(target)}')
                self._charge(ITEM_COST)
                target.append(item)
            elif op == pickle.APPENDS[0]:
                items = self._pop_mark()
                target = self._top()
                if type(target) is not list:
                    refuse(f'APPENDS to {describe(target)}')
                self._charge(ITEM_COST * len(items))
                target.extend(items)
            elif op in (pickle.SETITEM[0], pickle.SETITEMS[0]):
                items = [self._pop(), self._pop()][::-1] if op == pickle.SETITEM[0] \
                    else self._pop_mark()
                target = self._top()
                if type(target) not in (dict, OrderedDict, Counter) or len(items) % 2:
                    refuse(f'SETITEM on {describe(target)}')
                self._charge(2 * ITEM_COST * len(items))
                for i in range(0, len(items), 2):
                    try:
                        target[items[i]] = items[i + 1]
                    except TypeError:  # unhashable key
                        refuse(f'a dict key {describe(items[i])} that cannot be a key')
            elif op == pickle.MARK[0]:
                self.metastack.append(self.stack)
                self.stack = []
            elif op == pickle.TUPLE[0]:
                items = self._pop_mark()
                self._charge(OBJECT_COST + ITEM_COST * len(items))
                self.stack.append(tuple(items))
            elif op in (pickle.TUPLE1[0], pickle.TUPLE2[0], pickle.TUPLE3[0]):
                n = {pickle.TUPLE1[0]: 1, pickle.TUPLE2[0]: 2, pickle.TUPLE3[0]: 3}[op]
                if len(self.stack) < n:
                    refuse('a pickle that reads past the bottom of its stack')
                self._charge(OBJECT_COST + ITEM_COST * n)
                self.stack[-n:] = [tuple(self.stack[-n:])]
            elif op == pickle.NONE[0]:
                self.stack.append(None)
            elif op == pickle.NEWFALSE[0]:
                self.stack.append(False)
            elif op == pickle.NEWTRUE[0]:
                self.stack.append(True)
            elif op == pickle.EMPTY_TUPLE[0]:
                self.stack.append(())
            elif op in (pickle.EMPTY_LIST[0], pickle.EMPTY_DICT[0], pickle.EMPTY_SET[0]):
                self._charge(OBJECT_COST)
                self.stack.append({pickle.EMPTY_LIST[0]: list, pickle.EMPTY_DICT[0]: dict,
                                   pickle.EMPTY_SET[0]: set}[op]())
            elif op == pickle.BININT[0]:
                self.stack.append(unpack('<i', read(4))[0])
            elif op == pickle.BININT1[0]:
                self.stack.append(read(1)[0])
            elif op == pickle.BININT2[0]:
                self.stack.append(unpack('<H', read(2))[0])
            elif op == pickle.BINFLOAT[0]:
                self.stack.append(unpack('>d', read(8))[0])
            elif op == pickle.LONG1[0]:
                self.stack.append(pickle.decode_long(read(read(1)[0])))
            elif op == pickle.BINUNICODE[0]:
                size = unpack('<I', read(4))[0]
                data = read(size)
                self._charge(len(data) + OBJECT_COST, 'a string')
                self.stack.append(str(data, 'utf-8', 'surrogatepass'))
            elif op == pickle.SHORT_BINSTRING[0]:
                data = read(read(1)[0])
                self.stack.append(data if self.encoding == 'bytes'
                                  else data.decode(self.encoding, 'strict'))
            elif op == pickle.BINPERSID[0]:
                self.stack.append(self._storage(self._pop()))
            elif op in (pickle.BINGET[0], pickle.LONG_BINGET[0]):
                index = read(1)[0] if op == pickle.BINGET[0] else unpack('<I', read(4))[0]
                if index not in self.memo:
                    refuse(f'a pickle that reads memo entry {index} it never wrote')
                self.stack.append(self.memo[index])
            elif op in (pickle.BINPUT[0], pickle.LONG_BINPUT[0]):
                index = read(1)[0] if op == pickle.BINPUT[0] else unpack('<I', read(4))[0]
                self._charge(ITEM_COST)
                self.memo[index] = self._top()
            else:
                name = _OPCODE_NAMES.get(key.decode('latin1'), '?')
                refuse(f'it uses the pickle opcode {name} ({key!r}), which checkpoints never '
                       'need')


def pickle_module_for(context: LoadContext) -> types.ModuleType:
    """A pickle module whose unpickler is bound to ``context`` (what ``torch.load`` takes)."""
    module = types.ModuleType('mmparc_checkpoint_pickle')
    bound = type('Unpickler', (RestrictedUnpickler,), {'context': context})

    def load(file: io.BufferedIOBase, *, encoding: str = 'bytes') -> Any:
        return bound(file, encoding=encoding).load()

    module.Unpickler = bound
    module.load = load
    module.UnpicklingError = pickle.UnpicklingError
    module.__version__ = '1'
    return module
