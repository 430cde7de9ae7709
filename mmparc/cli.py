"""What mmparc's command-line tools share: one-line errors, nothing half-written.

Bad input (a missing or corrupt file, a checkpoint that does not fit, an
impossible argument) ends a tool with one line on stderr that names the file
and what is wrong, and exit status 1; ``MMPARC_DEBUG=1`` shows the traceback
instead.  Outputs are written under a temporary name next to their
destination and moved into place only when the whole job has succeeded, and
output paths are checked before the work starts.
"""
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, NoReturn, Optional, Union

from .checkpoint import CheckpointError

__all__ = ['ToolError', 'run_tool', 'check_output_file', 'atomic_output_file',
           'staged_output_dir', 'one_line']

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


def check_output_file(path: PathLike) -> Path:
    """Fail now, not after the work, if ``path`` cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path('.')
    if path.is_dir():
        raise ToolError(f'{path}: is a folder; give a file name for the output')
    if not parent.is_dir():
        raise ToolError(f'{path}: output folder {parent} does not exist')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ToolError(f'{path}: output folder {parent} is not writable')
    return path


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
        for source in sorted(p for p in stage.rglob('*') if p.is_file()):
            target = out / source.relative_to(stage)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
