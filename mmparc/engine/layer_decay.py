"""Layer-wise learning-rate decay for ParCNetV2 in detectors, segmentors, classifiers.

Fine-tuning a pretrained backbone works best when layers near the input
move less than those near the task head: a parameter with layer id ``i`` out
of ``num_layers + 2`` ids trains at ``lr * decay_rate ** (num_layers + 1 - i)``.
The ids come from the backbone (``get_layer_depth``), so this constructor
knows nothing about the backbone's architecture; for ParCNetV2 they equal the
official release's layer-wise scheme and ConvNeXt's stage-wise one.

Config::

    optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        constructor='mmparc.LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=7))
"""
import numbers
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm, _InstanceNorm

from ..models.layers import L2LayerNorm
from ..registry import OPTIM_WRAPPER_CONSTRUCTORS

DECAY_TYPES = ('layer_wise', 'stage_wise')
_DECAY_MULTS = ('bias_decay_mult', 'norm_decay_mult', 'flat_decay_mult')
PARAMWISE_KEYS = ('decay_rate', 'layer_decay_rate', 'decay_type', 'num_layers',
                  'custom_keys') + _DECAY_MULTS
CUSTOM_KEY_FIELDS = ('lr_mult', 'decay_mult')
# Parameters of these modules count as norm parameters (``norm_decay_mult``).
NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm, L2LayerNorm)

_NAME = 'LayerDecayOptimWrapperConstructor'


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _non_negative(value: object, what: str) -> float:
    if not _is_number(value) or value < 0:
        raise ValueError(f'{_NAME}: {what} must be a number >= 0, got {value!r}')
    return float(value)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside (possibly nested) DDP-style wrappers (``.module``).

    Distributed training hands the constructor ``MMDistributedDataParallel``
    or a similar wrapper; the backbone lives on the wrapped model.
    """
    while isinstance(getattr(model, 'module', None), nn.Module):
        model = model.module
    return model


def find_backbone(model: nn.Module) -> Tuple[nn.Module, str]:
    """The backbone of a detector/segmentor/classifier and its name prefix.

    The prefix (``'backbone.'``) tells ``get_layer_depth`` which parameter
    names are the backbone's; every other name (neck, heads) gets the top id.
    """
    model = unwrap_model(model)
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, nn.Module):
        raise TypeError(
            f'{_NAME} needs a model with a `backbone` submodule (a detector, segmentor or '
            f'classifier, possibly wrapped for distributed training in `.module`); '
            f'{type(model).__name__} has none')
    if not callable(getattr(backbone, 'get_layer_depth', None)):
        raise TypeError(
            f'{_NAME}: the backbone {type(backbone).__name__} has no get_layer_depth(), so it '
            'cannot assign layer ids for lr decay; use a backbone that implements it '
            '(e.g. mmparc.ParCNetV2)')
    for name, module in model.named_modules():
        if module is backbone:
            return backbone, name + '.'
    raise TypeError(f'{_NAME}: model.backbone of {type(model).__name__} is not one of '
                    'its registered submodules')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Optimizer wrapper with layer-wise (or stage-wise) lr decay over the backbone.

    ``paramwise_cfg`` keys (any other key is an error, so typos do not pass
    silently):

    - ``decay_rate`` (or mmpretrain's ``layer_decay_rate``; not both): the
      factor between neighbouring layer ids.  Required.
    - ``decay_type``: ``'layer_wise'`` (default) or ``'stage_wise'``.
    - ``num_layers``: ids run ``0 .. num_layers + 1``; omitted, the
      backbone's ``default_num_layers(decay_type)`` is used.
    - ``custom_keys``: ``{substring: dict(lr_mult=..., decay_mult=...)}``;
      the longest key contained in a parameter's name wins (ties: the
      alphabetically first), as in mmengine.  ``lr_mult`` multiplies the
      layer scale; ``decay_mult`` sets weight decay to ``base_wd *
      decay_mult`` (without it the default rule below applies).
    - ``norm_decay_mult``, ``bias_decay_mult``, ``flat_decay_mult``: weight
      decay ``base_wd * mult`` for parameters of norm layers, biases and
      other 1-D parameters (checked in that order, after ``custom_keys``).

    By default, as in the official release, 1-D (and scalar) parameters,
    biases and norm parameters get no weight decay and everything else gets
    the optimizer's ``weight_decay``, which must therefore be given.  Frozen
    parameters (``requires_grad=False``) are left out.  Parameters are
    grouped per (layer id, weight decay, custom key); each group carries
    ``lr``, ``weight_decay``, ``lr_scale``, ``layer_id``, ``param_names`` and
    ``group_name``.
    """

    def _validate_cfg(self) -> None:
        """Parse ``paramwise_cfg`` once, rejecting anything this class would ignore."""
        cfg = self.paramwise_cfg
        if not isinstance(cfg, Mapping):
            raise TypeError(f'{_NAME}: paramwise_cfg must be a dict, got {type(cfg).__name__}')
        unknown = sorted(set(cfg) - set(PARAMWISE_KEYS))
        if unknown:
            raise ValueError(f'{_NAME}: unknown paramwise_cfg key(s) {unknown}; '
                           f'accepted keys are {list(PARAMWISE_KEYS)}')
        if 'decay_rate' in cfg and 'layer_decay_rate' in cfg:
            raise ValueError(f"{_NAME}: give either 'decay_rate' or its mmpretrain spelling "
                             "'layer_decay_rate', not both")
        rate = cfg.get('decay_rate', cfg.get('layer_decay_rate'))
        if rate is None:
            raise ValueError(f"{_NAME}: paramwise_cfg needs 'decay_rate' "
                             "(or 'layer_decay_rate'), e.g. dict(decay_rate=0.7)")
        if not _is_number(rate) or rate <= 0:
            raise ValueError(f'{_NAME}: decay_rate must be a number > 0, got {rate!r}')
        self.decay_rate = float(rate)

        self.decay_type = cfg.get('decay_type', 'layer_wise')
        if self.decay_type not in DECAY_TYPES:
            raise ValueError(f'{_NAME}: decay_type must be one of {DECAY_TYPES}, '
                             f'got {self.decay_type!r}')
        self.num_layers: Optional[int] = cfg.get('num_layers')
        if self.num_layers is not None and (
                not isinstance(self.num_layers, int) or isinstance(self.num_layers, bool)
                or self.num_layers < 0):
            raise ValueError(f'{_NAME}: num_layers must be an int >= 0 (or omitted), '
                             f'got {self.num_layers!r}')

        custom_keys = cfg.get('custom_keys', {})
        if not isinstance(custom_keys, Mapping):
            raise TypeError(f'{_NAME}: custom_keys must be a dict, got '
                            f'{type(custom_keys).__name__}')
        self.custom_keys: Dict[str, Dict[str, float]] = {}
        for key, fields in custom_keys.items():
            if not isinstance(key, str) or not isinstance(fields, Mapping):
                raise TypeError(f'{_NAME}: custom_keys must map str to dict, '
                                f'got {key!r}: {fields!r}')
            bad = sorted(set(fields) - set(CUSTOM_KEY_FIELDS))
            if bad:
                raise ValueError(f'{_NAME}: custom_keys[{key!r}] has unknown field(s) {bad}; '
                               f'accepted fields are {list(CUSTOM_KEY_FIELDS)}')
            self.custom_keys[key] = {
                field: _non_negative(value, f'custom_keys[{key!r}][{field!r}]')
                for field, value in fields.items()}
        # Longest match first, ties alphabetically, as mmengine does.
        self._sorted_keys = sorted(sorted(self.custom_keys), key=len, reverse=True)
        self.decay_mults: Dict[str, float] = {
            name: _non_negative(cfg[name], name) for name in _DECAY_MULTS if name in cfg}

        if not _is_number(self.base_lr):
            raise ValueError(f'{_NAME}: the optimizer config needs a numeric lr, '
                             f'got {self.base_lr!r}')
        if not _is_number(self.base_wd):
            raise ValueError(f'{_NAME}: the optimizer config needs an explicit weight_decay '
                             '(0 for none): decayed and non-decayed groups are set from it, '
                             f'got {self.base_wd!r}')

    # ---------------------------------------------------------------- rules
    def _custom_key(self, name: str) -> Optional[str]:
        return next((key for key in self._sorted_keys if key in name), None)

    def _weight_decay(self, module: nn.Module, attr: str, ndim: int,
                      custom_key: Optional[str]) -> float:
        """Weight decay of one parameter (official rule unless overridden)."""
        if custom_key is not None and 'decay_mult' in self.custom_keys[custom_key]:
            return self.base_wd * self.custom_keys[custom_key]['decay_mult']
        is_norm = isinstance(module, NORM_TYPES)
        mults = self.decay_mults
        if is_norm and 'norm_decay_mult' in mults:
            return self.base_wd * mults['norm_decay_mult']
        if attr == 'bias' and 'bias_decay_mult' in mults:
            return self.base_wd * mults['bias_decay_mult']
        if ndim == 1 and 'flat_decay_mult' in mults:
            return self.base_wd * mults['flat_decay_mult']
        if is_norm or attr == 'bias' or ndim <= 1:
            return 0.0
        return float(self.base_wd)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        """Append one param group per (layer id, weight decay, custom key) to ``params``.

        Unlike mmengine's recursive version this sees the whole model at once
        (the backbone and its prefix are needed), so ``prefix`` and
        ``is_dcn_module`` must stay at their defaults.
        """
        if prefix or is_dcn_module is not None:
            raise ValueError(f'{_NAME}.add_params works on the whole model; '
                             'prefix and is_dcn_module are not supported')
        model = unwrap_model(module)
        backbone, bb_prefix = find_backbone(model)
        num_layers = self.num_layers
        if num_layers is None:
            if not callable(getattr(backbone, 'default_num_layers', None)):
                raise TypeError(f'{_NAME}: num_layers is omitted and the backbone '
                                f'{type(backbone).__name__} has no default_num_layers(); '
                                'set paramwise_cfg num_layers')
            num_layers = backbone.default_num_layers(self.decay_type)

        def layer_depth(name: str) -> Tuple[int, int]:
            layer_id, total = backbone.get_layer_depth(
                name, prefix=bb_prefix, decay_type=self.decay_type, num_layers=num_layers)
            if not 0 <= layer_id < total:
                raise ValueError(f'{_NAME}: {type(backbone).__name__}.get_layer_depth gave '
                                 f'layer id {layer_id} for {name!r}, outside 0..{total - 1}')
            return layer_id, total

        groups: Dict[Tuple[int, float, Optional[str]], dict] = {}
        seen = set()
        frozen = 0
        for mod_name, mod in model.named_modules():
            for attr, param in mod.named_parameters(recurse=False):
                if id(param) in seen:
                    continue  # shared parameter: already placed under its first name
                seen.add(id(param))
                name = f'{mod_name}.{attr}' if mod_name else attr
                if not param.requires_grad:
                    frozen += 1
                    continue
                custom_key = self._custom_key(name)
                weight_decay = self._weight_decay(mod, attr, param.ndim, custom_key)
                layer_id, total = layer_depth(name)
                key = (layer_id, weight_decay, custom_key)
                if key not in groups:
                    lr_mult = (self.custom_keys[custom_key].get('lr_mult', 1.0)
                               if custom_key is not None else 1.0)
                    lr_scale = self.decay_rate**(total - layer_id - 1) * lr_mult
                    groups[key] = {
                        'params': [],
                        'lr': self.base_lr * lr_scale,
                        'weight_decay': weight_decay,
                        'lr_scale': lr_scale,
                        'layer_id': layer_id,
                        'param_names': [],
                        'group_name': self._group_name(layer_id, weight_decay, custom_key),
                    }
                groups[key]['params'].append(param)
                groups[key]['param_names'].append(name)
        ordered = sorted(groups.values(), key=lambda g: g['layer_id'])  # stable
        params.extend(ordered)
        self._log_table(ordered, num_layers, frozen)

    def _group_name(self, layer_id: int, weight_decay: float,
                    custom_key: Optional[str]) -> str:
        if weight_decay == 0:
            kind = 'no_decay'
        elif weight_decay == self.base_wd:
            kind = 'decay'
        else:
            kind = f'decay_{weight_decay:g}'
        name = f'layer_{layer_id}_{kind}'
        return f'{name}[{custom_key}]' if custom_key is not None else name

    def _log_table(self, groups: List[dict], num_layers: int, frozen: int) -> None:
        """One readable summary instead of a dump of every parameter name."""
        header = ('group', 'layer', 'lr scale', 'weight decay', 'tensors', 'params')
        rows = [(g['group_name'], str(g['layer_id']), f"{g['lr_scale']:.4g}",
                 f"{g['weight_decay']:.4g}", str(len(g['params'])),
                 f"{sum(p.numel() for p in g['params']):,}") for g in groups]
        rows.append(('total', '', '', '', str(sum(len(g['params']) for g in groups)),
                     f"{sum(p.numel() for g in groups for p in g['params']):,}"))
        widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]

        def fmt(row: Tuple[str, ...]) -> str:
            return '  '.join(cell.ljust(w) if i == 0 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths)))

        lines = [
            f'{_NAME}: {self.decay_type} lr decay, decay_rate={self.decay_rate:g}, '
            f'num_layers={num_layers} (layer ids 0..{num_layers + 1}), '
            f'base lr={self.base_lr:g}, base weight_decay={self.base_wd:g}, '
            f'{len(groups)} param groups, {frozen} frozen tensors left out',
            fmt(header), fmt(tuple('-' * w for w in widths))
        ] + [fmt(row) for row in rows]
        print_log('\n'.join(lines), logger='current')
