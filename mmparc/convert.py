"""Conversion of official ParCNetV2 checkpoints into mmparc's layouts.

The official ImageNet checkpoints (timm-style: a plain state dict, or one
wrapped in ``state_dict``/``model``, possibly with DDP's ``module.``) use
the same parameter names as our backbone, so conversion is a matter of
prefixes: ``backbone.`` for the body, ``backbone.norm{last}`` for the final
LayerNorm, ``head.fc`` for the classifier.  The official mmdet-2.x and
mmseg-0.x checkpoints already carry ``backbone.``/neck/head keys that
mmdet 3.x and mmseg 1.x models use unchanged; they are re-wrapped and checked.

Every conversion is validated against the architecture it targets: the
backbone weights must be exactly those of one ParCNetV2 arch (``--arch``, or
the one whose stage depths and widths they have), shape for shape, so a
checkpoint with a missing stage or a wrong-shaped weight is refused rather
than written.
"""
import argparse
import functools
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from .checkpoint import CheckpointError, describe, fit_problems, load_checkpoint_file
from .fileio import atomic_output_file, check_output_file

TARGETS = ('classifier', 'backbone', 'model')
_BODY = re.compile(r'^(downsample_layers|stages)\.(\d+)\.')
#: Plausible stage and block indices: the depths are derived from the keys, so a
#: key like ``stages.3000000000.0.w`` must not size anything.
MAX_STAGES = 8
MAX_BLOCKS = 256
_WRAPPERS = ('state_dict', 'model', 'module')


def unwrap_state_dict(checkpoint: Mapping) -> Dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint, without DDP's ``module.`` prefix."""
    state = checkpoint
    for _ in range(3):
        if not isinstance(state, Mapping):
            break
        inner = next((state[k] for k in _WRAPPERS if isinstance(state.get(k), Mapping)), None)
        if inner is None or all(isinstance(v, torch.Tensor) for v in state.values()):
            break
        state = inner
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError('no state dict of tensors found in the checkpoint (looked at the top '
                         f'level and under {_WRAPPERS})')
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                       for k, v in state.items())


def source_kind(state: Mapping[str, torch.Tensor]) -> str:
    """``'classifier'`` for an official ImageNet checkpoint, ``'model'`` for det/seg."""
    if any(k.startswith('backbone.') for k in state):
        return 'model'
    if any(_BODY.match(k) for k in state):
        return 'classifier'
    raise ValueError('not a ParCNetV2 checkpoint: found neither backbone.* keys nor '
                     f'downsample_layers/stages keys (first keys: '
                     f'{", ".join(describe(k) for k in list(state)[:5])})')


def _index(text: str, limit: int, what: str, key: str) -> int:
    """``text`` as an index below ``limit``, or one line naming the key."""
    if len(text) > 6 or int(text) >= limit:
        shown = key if len(key) <= 80 else key[:80] + '...'
        raise ValueError(f'key {shown}: {what} index {text[:12]} is not plausible '
                         f'(ParCNetV2 has fewer than {limit} {what}s)')
    return int(text)


def _num_stages(keys) -> int:
    stages = {_index(m.group(2), MAX_STAGES, 'stage', k) for k in keys if (m := _BODY.match(k))}
    if not stages:
        raise ValueError('checkpoint has no downsample_layers/stages keys')
    return max(stages) + 1


@functools.lru_cache(maxsize=None)
def _arch_info(arch: str, gap_before_final_norm: bool
               ) -> Tuple[Dict[str, Tuple[int, ...]], Tuple[int, ...]]:
    from .models import ParCNetV2
    out_indices = -1 if gap_before_final_norm else tuple(
        range(len(ParCNetV2.arch_settings[arch]['depths'])))
    model = ParCNetV2(arch=arch, out_indices=out_indices,
                      gap_before_final_norm=gap_before_final_norm)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return shapes, tuple(model.kernel_sizes)


def backbone_shapes(arch: str, gap_before_final_norm: bool) -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of a ParCNetV2 ``arch`` (all four outputs normed, or the classifier's)."""
    return _arch_info(arch, gap_before_final_norm)[0]


def _depths(keys) -> List[int]:
    """Blocks per stage, from ``stages.<i>.<j>.`` keys."""
    blocks: Dict[int, int] = {}
    for key in keys:
        match = re.match(r'^stages\.(\d+)\.(\d+)\.', key)
        if match:
            stage = _index(match.group(1), MAX_STAGES, 'stage', key)
            block = _index(match.group(2), MAX_BLOCKS, 'block', key)
            blocks[stage] = max(blocks.get(stage, 0), block + 1)
    return [blocks.get(i, 0) for i in range(max(blocks) + 1)] if blocks else []


def _same_but_kernel(key: str, shape: Tuple[int, ...], expected: Tuple[int, ...],
                     arch: str) -> bool:
    """Equal shapes, or ones that differ only in an oversized kernel's length.

    Checkpoints pretrained at another resolution store other (odd) kernel
    lengths, which the backbone resamples on load.
    """
    if shape == expected:
        return True
    stage = re.match(r'^stages\.(\d+)\.', key)
    if stage is None or len(shape) != len(expected):
        return False
    length = _default_kernel_sizes(arch)[int(stage.group(1))]
    return all(got == want or (want == length and got > 0 and got % 2 == 1)
               for got, want in zip(shape, expected))


def _default_kernel_sizes(arch: str) -> Tuple[int, ...]:
    return _arch_info(arch, True)[1]


def match_arch(body: Mapping[str, torch.Tensor], arch: Optional[str] = None) -> str:
    """The ParCNetV2 arch whose body (``downsample_layers``/``stages``) ``body`` is exactly.

    Raises:
        ValueError: No arch (or not ``arch``) has these keys and shapes; the
            message says what differs.
    """
    from .models import ParCNetV2
    settings = ParCNetV2.arch_settings
    if arch is not None and arch not in settings:
        raise ValueError(f'unknown arch {arch!r}; ParCNetV2 archs: {sorted(settings)}')
    depths = _depths(body)
    candidates = [arch] if arch else [a for a in settings if settings[a]['depths'] == depths]
    if not candidates:
        known = ', '.join(f'{a} {s["depths"]}' for a, s in settings.items())
        raise ValueError(f'its stages have {depths} blocks, which is no ParCNetV2 arch '
                         f'({known}); a stage is missing or incomplete')
    problems = {}
    for name in candidates:
        expected = {k: v for k, v in backbone_shapes(name, True).items() if _BODY.match(k)}
        count, issues = fit_problems(
            expected, body,
            same_shape=lambda key, got, want, arch=name: _same_but_kernel(key, got, want, arch))
        if not issues:
            return name
        problems[name] = (count, '; '.join(issues))
    best = min(problems, key=lambda a: problems[a][0])
    raise ValueError(f'does not fit ParCNetV2-{best}: {problems[best][1]}')


def _check_vector(state: Mapping[str, torch.Tensor], key: str, shape: Tuple[int, ...]) -> None:
    if key in state and tuple(state[key].shape) != shape:
        raise ValueError(f'{key} has shape {tuple(state[key].shape)}, the arch needs {shape}')


def validate(state: Mapping[str, torch.Tensor], kind: str, arch: Optional[str] = None) -> str:
    """Check an official state dict against ParCNetV2; returns the arch it is."""
    if kind == 'model':
        backbone = {k[len('backbone.'):]: v for k, v in state.items()
                    if k.startswith('backbone.')}
        name = match_arch({k: v for k, v in backbone.items() if _BODY.match(k)}, arch)
        shapes = backbone_shapes(name, False)
        for key, value in backbone.items():
            if _BODY.match(key):
                continue
            if key not in shapes:
                raise ValueError(f'unexpected backbone key backbone.{key}')
            _check_vector(backbone, key, shapes[key])
        return name
    name = match_arch({k: v for k, v in state.items() if _BODY.match(k)}, arch)
    from .models import ParCNetV2
    width = ParCNetV2.arch_settings[name]['dims'][-1]
    for key in ('norm.weight', 'norm.bias'):
        _check_vector(state, key, (width, ))
    if ('head.weight' in state) != ('head.bias' in state):
        raise ValueError('the classifier head needs both head.weight and head.bias')
    if 'head.weight' in state:
        weight = state['head.weight']
        if weight.ndim != 2 or weight.shape[1] != width:
            raise ValueError(f'head.weight has shape {tuple(weight.shape)}, the arch needs '
                             f'(num_classes, {width})')
        _check_vector(state, 'head.bias', (weight.shape[0], ))
    return name


def convert_official(state: Mapping[str, torch.Tensor], target: Optional[str] = None,
                     arch: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Map an official state dict to mmparc key names.

    Args:
        state: Output of :func:`unwrap_state_dict`.
        target: ``'classifier'`` (mmpretrain ImageClassifier: ``backbone.*``,
            ``head.fc.*``), ``'backbone'`` (bare backbone keys, for
            ``init_cfg=dict(type='Pretrained', checkpoint=...)``) or
            ``'model'`` (a whole det/seg model).  ``None`` picks
            ``'classifier'`` for ImageNet checkpoints and ``'model'`` for
            det/seg ones.
        arch: The ParCNetV2 arch to validate against; by default the one
            whose depths and widths the checkpoint has.

    Raises:
        ValueError: The checkpoint is not a ParCNetV2 one, does not fit the
            arch, or cannot become ``target``.
    """
    kind = source_kind(state)
    out = _convert(state, kind, target or kind)
    validate(state, kind, arch)
    return out


def _convert(state: Mapping[str, torch.Tensor], kind: str, target: str
             ) -> Dict[str, torch.Tensor]:
    if target not in TARGETS:
        raise ValueError(f'target must be one of {TARGETS}, got {target!r}')
    if kind == 'model':
        if target == 'classifier':
            raise ValueError('a detector/segmentor checkpoint has no ImageNet head; '
                             "use target 'model' or 'backbone'")
        if target == 'model':
            return OrderedDict(state)
        return OrderedDict((k[len('backbone.'):], v) for k, v in state.items()
                           if k.startswith('backbone.'))
    if target == 'model':
        raise ValueError("an ImageNet checkpoint converts to 'classifier' or 'backbone'")
    last = _num_stages(state) - 1
    out = OrderedDict()
    unknown = []
    for key, value in state.items():
        if _BODY.match(key):
            out[('backbone.' if target == 'classifier' else '') + key] = value
        elif key in ('norm.weight', 'norm.bias'):
            if target == 'classifier':
                out[f'backbone.norm{last}.' + key.split('.')[1]] = value
        elif key in ('head.weight', 'head.bias'):
            if target == 'classifier':
                out['head.fc.' + key.split('.')[1]] = value
        else:
            unknown.append(key)
    if unknown:
        more = f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''
        raise ValueError('unexpected keys in the official checkpoint: '
                         f'{describe(unknown[:5], 300)}{more}')
    return out


def convert_file(src: str, dst: str, target: Optional[str] = None,
                 arch: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Convert ``src`` into an mmengine checkpoint (``{'state_dict', 'meta'}``) at ``dst``.

    ``dst`` is checked before and written only once everything has
    succeeded (under a temporary name, then moved into place).

    Raises:
        FileNotFoundError, CheckpointError: ``src`` is missing, not a
            checkpoint, or not an official ParCNetV2 one (messages name it).
    """
    check_output_file(dst)
    # timm's training script stores its argparse Namespace next to the
    # weights; allow exactly that class, for this load only.
    checkpoint = load_checkpoint_file(src, 'cpu', extra_globals=[argparse.Namespace])
    try:
        state = convert_official(unwrap_state_dict(checkpoint), target, arch)
    except ValueError as err:
        raise CheckpointError(f'{src}: {err}') from None
    with atomic_output_file(dst) as tmp:
        torch.save({'state_dict': state, 'meta': {'converted_from': str(src),
                                                  'target': target or 'auto'}}, tmp)
    return state


# ------------------------------------------------ ImageNet-21K head -> 1K
def class_indices(source: List[str], target: List[str]) -> List[int]:
    """Where each ``target`` class (e.g. a WordNet id) sits in the ``source`` classes."""
    where = {name: i for i, name in enumerate(source)}
    if len(where) != len(source):
        raise ValueError('the source class list repeats a class')
    missing = [name for name in target if name not in where]
    if missing:
        more = f' and {len(missing) - 3} more' if len(missing) > 3 else ''
        raise ValueError(f'{len(missing)} target classes are not source classes: '
                         f'{missing[:3]}{more}')
    return [where[name] for name in target]


def select_head_classes(state: Mapping[str, torch.Tensor], indices: List[int],
                        prefix: str = 'head.fc.') -> Dict[str, torch.Tensor]:
    """``state`` with the linear head reduced to the rows of ``indices``.

    An ImageNet-21K classifier's head holds a row for every ImageNet-1K class
    (1K is a subset of 21K): keeping those rows, in 1K order, gives a 1K
    classifier without fine-tuning (supplement Table 4's model evaluated
    before its 1K fine-tuning), or a 1K head to start fine-tuning from.
    """
    weight, bias = f'{prefix}weight', f'{prefix}bias'
    if weight not in state:
        raise ValueError(f'no {weight} in the checkpoint (keys like {sorted(state)[:3]})')
    rows = state[weight].shape[0]
    if not indices or not all(0 <= i < rows for i in indices):
        raise ValueError(f'class indices must be in [0, {rows}) for a {rows}-class head')
    out = OrderedDict(state)
    index = torch.tensor(indices)
    out[weight] = state[weight][index].clone()
    if bias in state:
        out[bias] = state[bias][index].clone()
    return out


def _read_classes(path: str) -> List[str]:
    try:
        with open(path) as f:
            names = [line.split()[0] for line in f if line.strip()]
    except OSError as err:
        raise CheckpointError(f'{path}: cannot read the class list ({err.strerror})') from None
    if not names:
        raise CheckpointError(f'{path}: the class list is empty')
    return names


def convert_head_file(src: str, dst: str, source_classes: str, target_classes: str,
                      prefix: str = 'head.fc.') -> Dict[str, torch.Tensor]:
    """Write ``src`` with its head reduced to ``target_classes`` (files, one class a line)."""
    check_output_file(dst)
    source, target = _read_classes(source_classes), _read_classes(target_classes)
    checkpoint = load_checkpoint_file(src, 'cpu')
    try:
        state = unwrap_state_dict(checkpoint)
        rows = state.get(f'{prefix}weight')
        if rows is not None and rows.shape[0] != len(source):
            raise ValueError(f'its head has {rows.shape[0]} classes, {source_classes} lists '
                             f'{len(source)}')
        out = select_head_classes(state, class_indices(source, target), prefix)
    except ValueError as err:
        raise CheckpointError(f'{src}: {err}') from None
    with atomic_output_file(dst) as tmp:
        torch.save({'state_dict': out, 'meta': {'converted_from': str(src),
                                                'classes': str(target_classes)}}, tmp)
    return out
