"""Config text found in a checkpoint, reduced to what cannot run code.

mmengine hands two strings from a checkpoint to ``Config.fromstring(...,
'.py')``, which executes them: ``meta['config']`` (``Runner.resume``, for
``gpu_ids``) and ``message_hub['runtime_info']['cfg']`` (or ``meta['cfg']``:
``BaseInferencer`` with ``model=None``, to build the model).  The loader
passes each through :func:`literal_config`: the text is parsed with ``ast``,
never executed, and only top-level assignments of literals survive (numbers,
strings, ``None``/``True``/``False``, lists, tuples, dicts and ``dict(k=v)``
calls of those), written back as literal text.  Dropped, with one warning
naming the file: any other statement; names starting with ``_`` (``_base_``
would make ``Config`` read and execute other files); ``custom_imports`` of
modules not already imported; and the whole text when a ``type`` names
anything but a registry entry (a dotted path or an importable module name,
which mmengine's registry would import and call).
"""
import ast
import importlib.util
import re
import sys
import warnings
from typing import Any, List, Optional, Tuple

__all__ = ['literal_config', 'MAX_CONFIG_CHARS']

#: Longest config text kept (a dumped det/seg config is about 10-30 KB).
MAX_CONFIG_CHARS = 1 << 20
_SCOPES = ('mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain', 'mmcls', 'mmparc', 'mmdeploy')
_TYPE = re.compile(r'^(?:(\w+)\.)?([A-Za-z_]\w*)$')


class _NotLiteral(Exception):
    pass


def _literal(node: ast.AST, depth: int = 0) -> Any:
    if depth > 50:
        raise _NotLiteral('nested too deeply')
    if isinstance(node, ast.Constant) and type(node.value) in (
            int, float, str, bool, type(None), complex):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (
                int, float):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e, depth + 1) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _NotLiteral('** in a dict')
        return {_literal(k, depth + 1): _literal(v, depth + 1)
                for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == 'dict' and not node.args \
            and all(k.arg is not None for k in node.keywords):
        return {k.arg: _literal(k.value, depth + 1) for k in node.keywords}
    raise _NotLiteral(type(node).__name__)


def _bad_types(value: Any) -> List[str]:
    """``type`` values mmengine's registry would resolve by importing (never a registry key)."""
    bad: List[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            kind = item.get('type')
            if kind is not None and not _registry_key(kind):
                bad.append(str(kind)[:60])
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return bad


def _registry_key(kind: Any) -> bool:
    if not isinstance(kind, str):
        return False
    match = _TYPE.match(kind)
    if not match:
        return False
    scope, name = match.groups()
    if scope is not None and scope not in _SCOPES:
        return False
    try:  # a bare name that is also a module would be imported by the registry's fallback
        return scope is not None or importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return False


def _imports_loaded(value: Any) -> bool:
    imports = value.get('imports') if isinstance(value, dict) else None
    imports = [imports] if isinstance(imports, str) else imports
    return isinstance(imports, list) and all(
        isinstance(m, str) and m in sys.modules for m in imports)


def literal_config(text: Any, name: str, where: str) -> Optional[str]:
    """``text`` reduced to literal assignments, or ``None`` if nothing usable is left.

    Args:
        text: The string from the checkpoint.
        name: The file, for the warning.
        where: Where the text sits (``"meta['config']"``), for the warning.
    """
    if not isinstance(text, str):
        _warn(name, where, f'a {type(text).__name__}, not config text')
        return None
    if len(text) > MAX_CONFIG_CHARS:
        _warn(name, where, f'{len(text)} characters, more than {MAX_CONFIG_CHARS}')
        return None
    try:
        tree = ast.parse(text, mode='exec')
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        _warn(name, where, f'not Python config text ({type(err).__name__})')
        return None
    kept: List[Tuple[str, Any]] = []
    dropped = 0
    for statement in tree.body:
        target = statement.targets[0] if isinstance(statement, ast.Assign) \
            and len(statement.targets) == 1 else None
        if not isinstance(target, ast.Name) or target.id.startswith('_'):
            dropped += 1
            continue
        try:
            value = _literal(statement.value)
        except (_NotLiteral, RecursionError, TypeError):  # TypeError: an unhashable key
            dropped += 1
            continue
        if target.id == 'custom_imports' and not _imports_loaded(value):
            dropped += 1
            continue
        kept.append((target.id, value))
    bad = [t for _, value in kept for t in _bad_types(value)]
    if bad:
        _warn(name, where, f'type {bad[0]!r} is not a registry name')
        return None
    if dropped:
        _warn(name, where, f'{dropped} statement(s) that are not literal assignments '
              'were dropped', keep=True)
    return ''.join(f'{key} = {value!r}\n' for key, value in kept)


def _warn(name: str, where: str, why: str, keep: bool = False) -> None:
    action = 'kept its literal assignments only' if keep else 'dropped it'
    warnings.warn(f'{name}: {where} is {why}; {action} (text from a checkpoint is never '
                  'executed)' if not keep else f'{name}: {where}: {why}; {action}',
                  stacklevel=3)
