"""Conversion of official ParCNetV2 checkpoints into mmparc's layouts.

The official ImageNet checkpoints (timm-style: a plain state dict, or one
wrapped in ``state_dict``/``model``, possibly with DDP's ``module.``) use
the same parameter names as our backbone, so conversion is a matter of
prefixes: ``backbone.`` for the body, ``backbone.norm{last}`` for the final
LayerNorm, ``head.fc`` for the classifier.  The official mmdet-2.x and
mmseg-0.x checkpoints already carry ``backbone.``/neck/head keys that
mmdet 3.x and mmseg 1.x models use unchanged; they are re-wrapped and checked.
"""
import argparse
import re
from collections import OrderedDict
from typing import Dict, Mapping, Optional

import torch

TARGETS = ('classifier', 'backbone', 'model')
_BODY = re.compile(r'^(downsample_layers|stages)\.(\d+)\.')
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
            isinstance(v, torch.Tensor) for v in state.values()):
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
                     f'downsample_layers/stages keys (first keys: {list(state)[:5]})')


def _num_stages(keys) -> int:
    stages = {int(m.group(2)) for k in keys if (m := _BODY.match(k))}
    if not stages:
        raise ValueError('checkpoint has no downsample_layers/stages keys')
    return max(stages) + 1


def convert_official(state: Mapping[str, torch.Tensor], target: Optional[str] = None
                     ) -> Dict[str, torch.Tensor]:
    """Map an official state dict to mmparc key names.

    Args:
        state: Output of :func:`unwrap_state_dict`.
        target: ``'classifier'`` (mmpretrain ImageClassifier: ``backbone.*``,
            ``head.fc.*``), ``'backbone'`` (bare backbone keys, for
            ``init_cfg=dict(type='Pretrained', checkpoint=...)``) or
            ``'model'`` (a whole det/seg model).  ``None`` picks
            ``'classifier'`` for ImageNet checkpoints and ``'model'`` for
            det/seg ones.
    """
    kind = source_kind(state)
    target = target or kind
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
        raise ValueError(f'unexpected keys in the official checkpoint: {unknown}')
    return out


def convert_file(src: str, dst: str, target: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Convert ``src`` into an mmengine checkpoint (``{'state_dict', 'meta'}``) at ``dst``."""
    # timm's training script stores its argparse Namespace next to the
    # weights; allow exactly that class and keep weights_only loading.
    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = torch.load(src, map_location='cpu', weights_only=True)
    state = convert_official(unwrap_state_dict(checkpoint), target)
    torch.save({'state_dict': state, 'meta': {'converted_from': str(src),
                                              'target': target or 'auto'}}, dst)
    return state
