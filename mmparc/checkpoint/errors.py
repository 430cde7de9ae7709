"""The loader's error type and bounded descriptions of file content.

Messages name what a file holds, but a file can hold a tuple nested forty
levels deep whose items are shared, whose ``repr`` would take gigabytes; so
nothing here calls ``repr`` or ``str`` on anything but short strings and
small numbers: :func:`describe` builds its text piece by piece and stops at
its limit.
"""
import pickle
from typing import Any, List

__all__ = ['CheckpointError', 'Refused', 'refuse', 'describe', 'error_text']


class CheckpointError(pickle.UnpicklingError):
    """A checkpoint file that cannot or may not be loaded; the message names the file."""


class Refused(pickle.UnpicklingError):
    """Raised while a file is read; the loader turns it into a CheckpointError."""


def refuse(message: str) -> None:
    """Stop loading with ``message`` (why the content is refused, without the file name)."""
    raise Refused(message)


def describe(value: Any, limit: int = 80) -> str:
    """At most ``limit`` characters about ``value``, whatever its size or sharing.

    Containers show their type, length and first items (two levels deep);
    objects other than numbers, strings and bytes show only their type.
    """
    out: List[str] = []
    room = [limit + 1]

    def emit(text: str) -> bool:
        if room[0] <= 0:
            return False
        out.append(text[:room[0]])
        room[0] -= len(text)
        return room[0] > 0

    def visit(item: Any, depth: int) -> bool:
        kind = type(item)
        if item is None or kind is bool or kind is float:
            return emit(repr(item))
        if kind is int:
            return emit(repr(item) if item.bit_length() <= 64
                        else f'<int of {item.bit_length()} bits>')
        if kind in (str, bytes, bytearray):
            head = item[:limit]
            return emit(repr(head) + ('...' if len(item) > limit else ''))
        if kind in (tuple, list, dict, set):
            opening, closing = {tuple: '()', list: '[]', dict: '{}', set: '{}'}[kind]
            if depth >= 2:
                return emit(f'<{kind.__name__} of {len(item)}>')
            if not emit(opening):
                return False
            items = list(item.items())[:4] if kind is dict else list(item)[:4] \
                if kind is not set else []
            for i, element in enumerate(items[:3]):
                if i and not emit(', '):
                    return False
                if kind is dict:
                    if not (visit(element[0], depth + 1) and emit(': ')
                            and visit(element[1], depth + 1)):
                        return False
                elif not visit(element, depth + 1):
                    return False
            if len(item) > 3 or kind is set:
                emit(f'{", " if items else ""}... {len(item)} items')
            elif kind is tuple and len(item) == 1:
                emit(',')
            return emit(closing)
        what = getattr(kind, 'what', None)  # the loader's placeholders name themselves
        return emit(f'<{what if isinstance(what, str) else kind.__name__}>')

    visit(value, 0)
    text = ''.join(out)
    return text if len(text) <= limit else text[:limit] + '...'


def error_text(err: BaseException, limit: int = 160) -> str:
    """``type: first line`` of an exception, using its text only when its arguments are
    short strings (an exception's ``str`` can be the ``repr`` of file content)."""
    args = getattr(err, 'args', ())
    if args and all(type(a) is str for a in args) and sum(map(len, args)) <= 10 * limit:
        lines = [line.strip() for line in ' '.join(args).splitlines() if line.strip()]
        text = lines[0][:limit] if lines else ''
    else:
        text = ''
    return f'{type(err).__name__}: {text}' if text else type(err).__name__
