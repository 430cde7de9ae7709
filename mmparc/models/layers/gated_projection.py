"""The output projection of a bifurcate gate unit."""
import torch
import torch.nn as nn

from ...ops import gated_projection
from ...ops.autocast import autocast_inference
from ...ops.gating import MERGES
from ...ops.oversized_conv import InferenceConstants


class GatedProjection(nn.Module):
    """``conv1x1(value * act(gate))``: gating and projection in one layer.

    The product is formed inside :func:`mmparc.ops.gated_projection`, which
    recomputes it in the backward pass instead of keeping it (and
    ``act(gate)``) for the whole training step.

    Args:
        in_channels: Channels of ``value`` and ``gate``.
        out_channels: Output channels.
        gate_act: ``'gelu'`` or ``'identity'``, applied to ``gate``.
        linear_weight: Store the weight as ``(out, in)`` (an ``nn.Linear``'s,
            as the official MLP's ``fc2``) instead of ``(out, in, 1, 1)``.
        merge: ``'mul'`` (the paper's gate) or ``'add'``: ``conv1x1(value +
            act(gate))``, the supplement's Table 3 ablation (reference
            formula only).
    """

    GATE_ACTS = ('gelu', 'identity')

    def __init__(self, in_channels: int, out_channels: int, gate_act: str = 'identity',
                 linear_weight: bool = False, merge: str = 'mul') -> None:
        super().__init__()
        if gate_act not in self.GATE_ACTS:
            raise ValueError(f'gate_act must be one of {self.GATE_ACTS}, got {gate_act!r}')
        if merge not in MERGES:
            raise ValueError(f'merge must be one of {MERGES}, got {merge!r}')
        self.merge = merge
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.gate_act = gate_act
        shape = (out_channels, in_channels) if linear_weight else (out_channels, in_channels, 1, 1)
        self.weight = nn.Parameter(torch.empty(shape))
        self.register_parameter('bias', None)  # bias-free, as nn.Linear(bias=False)
        nn.init.kaiming_uniform_(self.weight.view(out_channels, in_channels), a=5**0.5)
        self._constants = InferenceConstants()  # the weight in autocast's dtype

    def forward(self, value: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        weight, (value, gate) = autocast_inference(self._constants, self.weight, value, gate)
        return gated_projection(value, gate, weight, self.gate_act == 'gelu', self.merge)

    def extra_repr(self) -> str:
        merge = '' if self.merge == 'mul' else f', merge={self.merge!r}'
        return f'{self.in_channels}, {self.out_channels}, gate_act={self.gate_act!r}{merge}'
