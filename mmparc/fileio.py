"""The tools' file handling: inputs read as regular files, outputs never half-written.

Bad input (a missing or corrupt file, a checkpoint that does not fit, an
impossible argument) ends a tool with one line on stderr that names the file
and what is wrong, and exit status 1; ``MMPARC_DEBUG=1`` shows the traceback
instead (:func:`run_tool`).  Outputs are written under a temporary name next
to their destination and moved into place only when the whole job has
succeeded, and output paths are checked before the work starts.

The rule for what an output may replace: nothing but a regular file.  A
path that exists must be a regular file, or a symlink, which is resolved:
the file it points to is replaced (and must itself be a regular file or
absent), the link stays.  Devices, FIFOs, sockets and folders are refused,
when the output is checked and again just before the move.
"""
import os
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, NoReturn, Optional, Union

from .checkpoint import CheckpointError

__all__ = ['ToolError', 'run_tool', 'check_output_file', 'atomic_output_file',
           'staged_output_dir', 'one_line', 'open_regular_file']

PathLike = Union[str, 'os.PathLike[str]']


class ToolError(Exception):
    """Bad input to a tool; its message (one line, naming the file) is the whole story."""


def _is_known(err: BaseException) -> bool:
    """Errors whose message already says which file and what is wrong."""
    return isinstance(err, (ToolError, CheckpointError, FileNotFoundError))


def one_line(err: BaseException) -> str:
    """``err`` as one line: its first non-empty line of text (or its type)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    head = lines[0] if lines else type(err).__name__
    return head if _is_known(err) else f'{type(err).__name__}: {head}'


def run_tool(main: Callable[[], Optional[int]]) -> NoReturn:
    """Run a tool's ``main`` and exit: 0, its status, or 1 with a one-line error."""
    try:
        status = main()
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001  (reported in one line, see module doc)
        if os.environ.get('MMPARC_DEBUG'):
            raise
        hint = '' if _is_known(err) else ' (MMPARC_DEBUG=1 shows the traceback)'
        print(f'error: {one_line(err)}{hint}', file=sys.stderr)
        sys.exit(1)
    sys.exit(status or 0)


def _refuse_special(path: Path, shown: PathLike) -> None:
    """Refuse ``path`` (already resolved) unless it is a regular file or absent."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise ToolError(f'{shown}: is a folder; give a file name for the output')
    if not stat.S_ISREG(mode):
        raise ToolError(f'{shown}: exists and is not a regular file (a device, FIFO or '
                        'socket); outputs only replace regular files')


def _resolved(path: PathLike) -> Path:
    return Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)


def check_output_file(path: PathLike) -> Path:
    """Fail now, not after the work, if ``path`` cannot be written; returns the path the
    output will replace (symlinks resolved, see the module docstring)."""
    shown = path
    path = _resolved(path)
    parent = path.parent if str(path.parent) else Path('.')
    _refuse_special(path, shown)
    if not parent.is_dir():
        raise ToolError(f'{shown}: output folder {parent} does not exist')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ToolError(f'{shown}: output folder {parent} is not writable')
    return path


def open_regular_file(path: PathLike, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (or a link to one) of at most
    ``max_bytes``; FIFOs, devices and folders are refused without reading them."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
    except FileNotFoundError:
        raise FileNotFoundError(f'{path}: no such file') from None
    except OSError as err:
        raise ToolError(f'{path}: cannot be read ({err.strerror})') from None
    with os.fdopen(fd, 'rb') as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ToolError(f'{path}: not a regular file (a folder, device, FIFO or socket)')
        if info.st_size > max_bytes:
            raise ToolError(f'{path}: {info.st_size} bytes, more than the {max_bytes} read')
        return file.read(max_bytes + 1)[:max_bytes]


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_output_file(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it becomes ``path`` only if the block succeeds.

    The temporary name keeps ``path``'s suffix (exporters that look at it
    still work); on any error it is removed and ``path`` is left as it was.
    """
    path = check_output_file(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=f'.part{path.suffix}',
                               dir=path.parent if str(path.parent) else '.')
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_file_mode())
        _refuse_special(path, path)  # again: it may have changed while the job ran
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def staged_output_dir(out_dir: PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder; its files move into ``out_dir`` only on success.

    Files already in ``out_dir`` stay, except those the job writes anew.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ToolError(f'{out}: exists and is not a folder')
    anchor = out.resolve()
    while not anchor.exists():  # the closest existing folder hosts the staging area
        anchor = anchor.parent
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise ToolError(f'{out}: {anchor} is not writable')
    stage = Path(tempfile.mkdtemp(prefix=f'.{out.name or "out"}.', suffix='.part', dir=anchor))
    try:
        yield stage
        sources = sorted(p for p in stage.rglob('*') if p.is_file())
        targets = [_resolved(out / p.relative_to(stage)) for p in sources]
        for target in targets:  # all checked before the first moves
            _refuse_special(target, target)
        for source, target in zip(sources, targets):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
