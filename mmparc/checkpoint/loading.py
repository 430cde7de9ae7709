"""Load a checkpoint file as data: checked, bounded, and normalised before anyone uses it.

:func:`load_checkpoint_file` is what ``import mmparc`` makes mmengine use for
every checkpoint (:mod:`.schemes`).  In order, it

1. opens only a regular file (a symlink counts as its target; FIFOs, devices
   and folders are refused before anything is read);
2. reads the archive's directory (Python's ``zipfile``) and refuses, before
   ``torch.load`` decompresses anything, more than ``MAX_RECORDS`` records,
   records whose declared sizes exceed the budget (:mod:`.budget`),
   ``../`` names, TorchScript archives and legacy tar files;
3. runs ``torch.load`` with this load's own restricted unpickler
   (:mod:`.unpickler`), charging every storage, string and container;
4. swaps the stand-ins' placeholders for real objects and normalises what
   would change training without a word: ``OrderedDict._metadata`` keeps
   only per-module ``version`` numbers (never ``assign_to_params_buffers``),
   a state dict must hold tensors only, ``meta``'s ``epoch``/``iter``/``seed``
   must be plain ints in range, and config text becomes literal assignments
   (:mod:`.config_text`).

Any failure, ``MemoryError`` and ``RecursionError`` included, is one
:class:`CheckpointError` line that starts with the file name.
"""
import inspect
import io
import os
import stat
import sys
import tarfile
import zipfile
from collections import OrderedDict
from typing import IO, Any, Dict, Optional, Sequence, Tuple, Union

import torch

from . import budget as _budget
from .budget import MAX_RECORDS, Budget, default_budget
from .config_text import literal_config
from .errors import CheckpointError, Refused, describe, error_text
from .standins import Pending
from .unpickler import LoadContext, pickle_module_for

__all__ = ['load_checkpoint_file', 'finalize', 'check_content']

_PathLike = Union[str, 'os.PathLike[str]']
_MAX_DEPTH = 100
_INT_RANGE = 1 << 31
_PRETRAINED_HINT = (
    "; it is the ImageNet checkpoint the backbone's init_cfg=dict(type='Pretrained') "
    'loads. Either convert the official weights (python '
    'tools/model_converters/convert_official.py parcnetv2_<arch>.pth.tar {path} '
    "--target backbone), or point the config at an mmpretrain-trained classifier with "
    "--cfg-options model.backbone.init_cfg.checkpoint=CLS.pth "
    "model.backbone.init_cfg.prefix=backbone., or train from scratch with "
    '--cfg-options model.backbone.init_cfg=None')


# ------------------------------------------------------------ finalisation
def _clean_metadata(value: Any) -> OrderedDict:
    """``_metadata`` as ``load_state_dict`` may see it: module prefix -> ``{'version': int}``."""
    if type(value) not in (dict, OrderedDict):
        raise Refused(f'state dict _metadata {describe(value)}: expected a dict')
    clean = OrderedDict()
    for prefix, entry in value.items():
        if type(prefix) is not str or type(entry) not in (dict, OrderedDict):
            raise Refused(f'state dict _metadata entry {describe(prefix)}: expected '
                          'module name -> dict')
        version = entry.get('version')
        clean[prefix] = {'version': version} if type(version) is int else {}
    return clean


def finalize(obj: Any) -> Any:
    """Swap built placeholders for real objects; refuse unbuilt ones, cycles through
    tuples and nesting deeper than 100; normalise ``OrderedDict._metadata``."""
    done: Dict[int, Any] = {}
    active: set = set()

    def visit(value: Any, depth: int) -> Any:
        if isinstance(value, Pending):
            if not value.built:
                raise Refused(f'{value.what} without its state')
            return value.result
        kind = type(value)
        if kind not in (dict, list, tuple, OrderedDict):
            return value
        key = id(value)
        if key in done:
            return done[key]
        if key in active:
            if kind is tuple:
                raise Refused('a tuple that contains itself')
            return value  # a list or dict: fixed in place where it was first met
        if depth > _MAX_DEPTH:
            raise Refused(f'containers nested deeper than {_MAX_DEPTH} levels')
        active.add(key)
        result = value
        if kind in (dict, OrderedDict):
            for k, v in list(value.items()):
                new = visit(v, depth + 1)
                if new is not v:
                    value[k] = new
            if kind is OrderedDict and value.__dict__:
                metadata = value.__dict__.pop('_metadata', None)
                value.__dict__.clear()
                if metadata is not None:
                    value._metadata = _clean_metadata(metadata)
        elif kind is list:
            for i, v in enumerate(value):
                new = visit(v, depth + 1)
                if new is not v:
                    value[i] = new
        else:
            items = [visit(v, depth + 1) for v in value]
            if any(new is not old for new, old in zip(items, value)):
                result = tuple(items)
        active.discard(key)
        done[key] = result
        return result

    return visit(obj, 0)


# ----------------------------------------------------------- content rules
def _check_state_dict(state: Any, where: str) -> None:
    if not isinstance(state, dict):
        raise Refused(f'{where} is a {type(state).__name__}, not a dict of tensors')
    for key, value in state.items():
        if type(key) is not str:
            raise Refused(f'{where} has a key {describe(key)} that is not a name')
        if not isinstance(value, torch.Tensor) and not key.endswith('_extra_state'):
            raise Refused(f'{where}[{describe(key)}] is {describe(value)}, not a tensor '
                          '(load_state_dict would skip it and leave the layer as it was)')


def _check_meta(meta: Any) -> None:
    if not isinstance(meta, dict):
        raise Refused(f"meta is {describe(meta)}, not a dict")
    for field in ('epoch', 'iter'):
        if field in meta:
            value = meta[field]
            if type(value) is not int or not 0 <= value < _INT_RANGE:
                raise Refused(f'meta[{field!r}] is {describe(value)}: expected an int in '
                              f'[0, {_INT_RANGE})')
    seed = meta.get('seed')
    if seed is not None:
        if hasattr(seed, 'dtype') and getattr(seed, 'shape', None) == () \
                and str(seed.dtype).startswith(('int', 'uint')):
            seed = int(seed)  # numpy integer scalars, as mmengine stores them
        if type(seed) is not int or not 0 <= seed < (1 << 32):
            raise Refused(f"meta['seed'] is {describe(meta.get('seed'))}: expected an int in "
                          '[0, 2**32)')


def check_content(checkpoint: Any, name: str) -> Any:
    """Apply the content rules of the module docstring (step 4) to a finalised checkpoint."""
    if not isinstance(checkpoint, dict):
        return checkpoint
    if 'state_dict' in checkpoint:
        _check_state_dict(checkpoint['state_dict'], "state_dict")
    elif any(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        _check_state_dict(checkpoint, 'the state dict')
    meta = checkpoint.get('meta')
    if 'meta' in checkpoint:
        _check_meta(meta)
        for field in ('config', 'cfg'):
            if field in meta:
                text = literal_config(meta[field], name, f'meta[{field!r}]')
                if text is None:
                    del meta[field]
                else:
                    meta[field] = text
    hub = checkpoint.get('message_hub')
    runtime = hub.get('runtime_info') if isinstance(hub, dict) else None
    if isinstance(runtime, dict) and 'cfg' in runtime:
        text = literal_config(runtime['cfg'], name, "message_hub['runtime_info']['cfg']")
        if text is None:
            del runtime['cfg']
        else:
            runtime['cfg'] = text
    return checkpoint


# ----------------------------------------------------------------- reading
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


def _open_regular(path: str) -> Tuple[IO[bytes], int]:
    """Open ``path`` for reading if it is (or a symlink resolves to) a regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        hint = _PRETRAINED_HINT.format(path=path) if _pretrained_init_frame() else ''
        raise FileNotFoundError(f'{path}: checkpoint file not found{hint}') from None
    except OSError as err:
        raise CheckpointError(f'{path}: cannot be read ({err.strerror})') from None
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(f'{path}: not a file (a checkpoint is a .pth file)')
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f'{path}: not a regular file (a device, FIFO or socket); '
                              'only regular files are read as checkpoints')
    try:  # O_NONBLOCK: a path swapped for a FIFO after the check does not hang us
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
    except OSError as err:
        raise CheckpointError(f'{path}: cannot be read ({err.strerror})') from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CheckpointError(f'{path}: not a regular file; only regular files are read')
    if info.st_size == 0:
        os.close(fd)
        raise CheckpointError(f'{path}: empty file (0 bytes), not a checkpoint')
    return os.fdopen(fd, 'rb'), info.st_size


def _archive_records(file: IO[bytes], name: str, budget: Budget) -> Optional[Dict[str, int]]:
    """Record -> declared size for a zip checkpoint (``None`` for a legacy pickle),
    charged to ``budget`` and checked before torch reads any record."""
    start = file.tell()
    head = file.read(4)
    file.seek(start)
    if head != b'PK\x03\x04':
        if not head.startswith(b'\x80'):
            raise CheckpointError(f'{name}: not a PyTorch checkpoint (neither a zip archive '
                                  f'nor a pickle; it starts with {head!r})')
        try:
            is_tar = tarfile.is_tarfile(file)
        except (OSError, ValueError):
            is_tar = False
        file.seek(start)
        if is_tar:
            raise CheckpointError(f'{name}: a legacy tar-format checkpoint (torch < 0.4); '
                                  'not loaded (its reader extracts files)')
        return None
    try:
        infos = zipfile.ZipFile(file).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as err:
        raise CheckpointError(f'{name}: corrupt checkpoint archive ({error_text(err)})') \
            from None
    finally:
        file.seek(start)
    if len(infos) > MAX_RECORDS:
        raise CheckpointError(f'{name}: refused: {len(infos)} archive records, more than '
                              f'{MAX_RECORDS} (a checkpoint has one per tensor storage)')
    records: Dict[str, int] = {}
    prefixes = set()
    for info in infos:
        parts = info.filename.split('/')
        if len(parts) < 2 or '..' in parts or '' in parts[:-1] or info.filename.startswith('/'):
            raise CheckpointError(f'{name}: refused: archive record '
                                  f'{describe(info.filename)} is not a plain relative name')
        prefixes.add(parts[0])
        budget.charge(info.file_size, f'archive record {describe(info.filename)} '
                      f'({info.file_size} bytes once decompressed)')
        records['/'.join(parts[1:])] = info.file_size
    if len(prefixes) != 1:
        raise CheckpointError(f'{name}: corrupt checkpoint archive (records under '
                              f'{len(prefixes)} top-level folders)')
    if 'constants.pkl' in records or any(r.startswith('code/') for r in records):
        raise CheckpointError(f'{name}: a TorchScript archive, not a checkpoint (load it '
                              'with torch.jit.load)')
    if 'data.pkl' not in records:
        raise CheckpointError(f'{name}: not a PyTorch checkpoint (its archive has no data.pkl)')
    return records


def _load_kwargs() -> Dict[str, Any]:
    """``mmap=False`` where torch knows it (2.1+): the unpickler reads a file object."""
    try:
        if 'mmap' in inspect.signature(torch.load).parameters:
            return {'mmap': False}
    except (TypeError, ValueError):  # pragma: no cover
        pass
    return {}


def load_checkpoint_file(filename: Union[_PathLike, IO[bytes]], map_location: Any = 'cpu',
                         extra_globals: Sequence[type] = (),
                         budget: Optional[int] = None) -> Any:
    """A checkpoint's content, read as data only (see the module docstring).

    Args:
        filename: Path, or a seekable binary file object.
        map_location: As ``torch.load``'s.
        extra_globals: Further classes the file may hold (built without
            arguments, given a ``__dict__``), for this load only.
        budget: Bytes the load may allocate; default
            :func:`~mmparc.checkpoint.budget.default_budget` of the file size.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: Not a checkpoint, or content that is refused; the
            one-line message starts with the file name.
    """
    is_path = isinstance(filename, (str, os.PathLike))
    name = os.path.expanduser(os.fspath(filename)) if is_path else \
        str(getattr(filename, 'name', '<file object>'))
    if is_path:
        file, size = _open_regular(name)
    else:
        file = filename
        try:
            position = file.tell()
            size = file.seek(0, io.SEEK_END) - position
            file.seek(position)
        except (OSError, AttributeError, ValueError):
            raise CheckpointError(f'{name}: not a seekable file object') from None
        if size <= 0:
            raise CheckpointError(f'{name}: empty file (0 bytes), not a checkpoint')
    if os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD', '0').lower() in ('1', 'y', 'yes', 'true'):
        raise CheckpointError(f'{name}: not loaded: TORCH_FORCE_WEIGHTS_ONLY_LOAD makes '
                              "torch.load refuse mmparc's restricted unpickler; unset it (that "
                              'unpickler accepts less than weights_only=True does)')
    limit = Budget(budget if budget is not None else default_budget(size))
    previous = _budget.set_active(limit)
    try:
        try:
            records = _archive_records(file, name, limit)
            context = LoadContext(limit, records, extra_globals)
            checkpoint = torch.load(file, map_location=map_location,
                                    pickle_module=pickle_module_for(context),
                                    weights_only=False, **_load_kwargs())
            return check_content(finalize(checkpoint), name)
        finally:
            _budget.set_active(previous)
            if is_path:
                file.close()
    except (CheckpointError, FileNotFoundError):
        raise
    except Refused as err:
        raise CheckpointError(f'{name}: refused: {err}') from None
    except EOFError:
        raise CheckpointError(f'{name}: truncated file, not a complete checkpoint') from None
    except MemoryError:
        raise CheckpointError(f'{name}: refused: ran out of memory while loading (the '
                              f'budget was {limit.limit} bytes)') from None
    except RecursionError:
        raise CheckpointError(f'{name}: refused: nested too deeply to load') from None
    except Exception as err:  # noqa: BLE001  (torch's errors for malformed archives)
        raise CheckpointError(f'{name}: not a valid PyTorch checkpoint '
                              f'({error_text(err)})') from None
