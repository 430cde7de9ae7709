"""Inference-time re-parameterisation of ParCNetV2 (supplementary Sec. H).

:func:`deploy_parcnetv2` (``ParCNetV2.switch_to_deploy``) rewrites a backbone
*in place* for inference at one input size.  Outputs stay the same up to
float rounding (tested to 1e-4); what changes is how they are computed:

* **Oversized kernels are resolved for the size.**  ``'global'`` kernels are
  resampled to ``2h - 1 x 2w - 1`` for each stage's map once, here, and taps
  that can only meet padding are cropped in both modes.  No resampling or
  shape arithmetic is left in the forward pass, so a traced/exported graph is
  exact at that size (and only at that size: deployed layers refuse others).
* **Oversized + local 7x7 merged where that is cheaper.**  The vertical then
  horizontal 1-D kernels compose to their outer product (zero padding makes
  the composition exact); adding the 7x7 kernel at its centre gives one dense
  depthwise kernel.  Per output and channel that costs ``Kh * Kw``
  multiply-adds against ``Kh + Kw + 49`` for the three separate
  convolutions, so :func:`merge_pays` merges a stage only when the dense
  kernel is no larger: in practice maps of at most 4 rows and columns (the
  last stage of inputs up to 130 px), never at 224 or detection sizes.
  Measured with onnxruntime on 2 CPU cores (one mixer, batch 1): merging
  takes 0.73x the time at a 4x4 map, but 2.2x at 7x7 (224's last stage),
  7.5x at 14x14 (224's third stage) and 1.7x at 16x24; in the few cases the
  rule does not merge and merging would have won (5x5, 8x8) it wins by ~10%.
  The paper's "last three stages" speed-up is a GPU implicit-GEMM result;
  pass ``merge='always'`` or per-stage flags to follow it on such a runtime.
* **Norm scales folded into the following linear layer.**  ``norm1`` into
  ``pwconv1``, ``norm2`` into ``mlp.fc1`` and each later downsampling's
  ``pre_norm`` into its strided conv (``W (w * n) = (W diag w) n``); the
  norms become weightless :class:`L2Normalize`.  The stem's ``post_norm``,
  the ``res_scale`` layers and the output norms feed the residual stream or
  the outputs, not a linear layer, and keep their scales.  Every L2 norm
  then runs the plain formula, which traces to a static graph (the eager
  fast path of :class:`L2LayerNorm` reads shapes and branches on values).
* **Gated layers split.**  ``pwconv1`` and ``mlp.fc1`` become two linear
  layers each (gate and value halves) instead of one followed by ``chunk``,
  which the ONNX exporter would trace with shape arithmetic.
* **DropPath** becomes identity.

A deployed backbone is for inference only: ``train()`` raises.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .norms import L2LayerNorm
from .oversized_conv import OversizedConv2d, conv1d_same, instance_kernels
from .parcnetv2 import (BifurcateGateMLP, Downsampling, ParCNetV2, ParCNetV2Block,
                        ParCV2Mixer)

MergePolicy = Union[str, Sequence[bool]]
MERGE_POLICIES = ('auto', 'always', 'never')


class L2Normalize(nn.Module):
    """:class:`L2LayerNorm` by its plain formula, without its scale where that was folded.

    The plain formula traces to a static graph; the eager fast path of
    :class:`L2LayerNorm` reads shapes and branches on values.
    """

    def __init__(self, eps: float, weight: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = None if weight is None else _frozen(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(-1, keepdim=True)
        length = torch.linalg.vector_norm(centred, dim=-1, keepdim=True)
        out = centred / length.clamp_min(self.eps)
        return out if self.weight is None else out * self.weight

    def extra_repr(self) -> str:
        return f'eps={self.eps}, scaled={self.weight is not None}'


def _frozen(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone().contiguous(), requires_grad=False)


def _crop_centre(kernel: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Keep the ``2 * size - 1`` central taps along ``dim``: the rest only meet padding."""
    length = kernel.shape[dim]
    keep = min(length, 2 * size - 1)
    return kernel.narrow(dim, (length - keep) // 2, keep)


def merge_pays(kernel_h: int, kernel_w: int, local_h: int, local_w: int) -> bool:
    """Whether one dense depthwise kernel beats 1-D + 1-D + local convolutions.

    Compares multiply-adds per output and channel of the (already cropped)
    kernels; ties merge, since one convolution also saves two passes over
    memory and the sum.
    """
    merged = max(kernel_h, local_h) * max(kernel_w, local_w)
    return merged <= kernel_h + kernel_w + local_h * local_w


class DeployedMixerConv(nn.Module):
    """``dwconv1(v) + dwconv2(v)`` of one mixer, resolved for one map size.

    Either one dense depthwise convolution (``merged``) or the vertical and
    horizontal 1-D convolutions plus the local one, all with kernels fixed
    for ``map_size`` and cropped to the taps that can meet data.

    Args:
        kernel_h: ``(C, Kh)`` vertical kernel for this size.
        kernel_w: ``(C, Kw)`` horizontal kernel for this size.
        local: ``(C, 1, kh, kw)`` local depthwise kernel.
        map_size: The ``(h, w)`` of the map these kernels were resolved for.
        merge: Build one dense kernel instead of three convolutions.
        impl: How eager PyTorch evaluates the 1-D convolutions (see
            :func:`conv1d_same`); traced/exported graphs use direct ones.
    """

    def __init__(self, kernel_h: torch.Tensor, kernel_w: torch.Tensor, local: torch.Tensor,
                 map_size: Tuple[int, int], merge: bool, impl: str = 'auto') -> None:
        super().__init__()
        height, width = map_size
        kernel_h = _crop_centre(kernel_h, 1, height)
        kernel_w = _crop_centre(kernel_w, 1, width)
        local = _crop_centre(_crop_centre(local, 2, height), 3, width)
        self.channels = kernel_h.shape[0]
        self.map_size = (height, width)
        self.merged = merge
        self.impl = impl
        if merge:
            rows = max(kernel_h.shape[1], local.shape[2])
            cols = max(kernel_w.shape[1], local.shape[3])
            dense = kernel_h.new_zeros(self.channels, 1, rows, cols)
            top, left = (rows - kernel_h.shape[1]) // 2, (cols - kernel_w.shape[1]) // 2
            dense[:, 0, top:top + kernel_h.shape[1], left:left + kernel_w.shape[1]] = (
                kernel_h[:, :, None] * kernel_w[:, None, :])
            top, left = (rows - local.shape[2]) // 2, (cols - local.shape[3]) // 2
            dense[:, :, top:top + local.shape[2], left:left + local.shape[3]] += local
            self.weight = _frozen(dense)
            self.padding = (rows // 2, cols // 2)
        else:
            # Stored in conv2d layout, so that a traced graph needs no reshapes.
            self.kernel_h = _frozen(kernel_h[:, None, :, None])
            self.kernel_w = _frozen(kernel_w[:, None, None, :])
            self.local = _frozen(local)
            self.padding = (local.shape[2] // 2, local.shape[3] // 2)
            self.padding_h = (kernel_h.shape[1] // 2, 0)
            self.padding_w = (0, kernel_w.shape[1] // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and tuple(x.shape[2:]) != self.map_size:
            raise ValueError(f'this layer was deployed for {self.map_size[0]}x{self.map_size[1]} '
                             f'maps, got {tuple(x.shape[2:])}; call switch_to_deploy on a fresh '
                             'model for another input size')
        if self.merged:
            return F.conv2d(x, self.weight, padding=self.padding, groups=self.channels)
        local = F.conv2d(x, self.local, padding=self.padding, groups=self.channels)
        if torch.jit.is_tracing():
            # Direct convolutions: the Toeplitz form would put C x h x h
            # constants into the graph.
            x = F.conv2d(x, self.kernel_h, padding=self.padding_h, groups=self.channels)
            x = F.conv2d(x, self.kernel_w, padding=self.padding_w, groups=self.channels)
            return x + local
        x = conv1d_same(x, self.kernel_h.flatten(1), 2, self.impl)
        return conv1d_same(x, self.kernel_w.flatten(1), 3, self.impl) + local

    def extra_repr(self) -> str:
        if self.merged:
            kernel = 'x'.join(map(str, self.weight.shape[2:]))
            return f'{self.channels}, merged {kernel}, map_size={self.map_size}'
        return (f'{self.channels}, {self.kernel_h.shape[2]}x1 + 1x{self.kernel_w.shape[3]} '
                f'+ {self.local.shape[2]}x{self.local.shape[3]}, map_size={self.map_size}')


class DeployedParCV2Mixer(nn.Module):
    """:class:`ParCV2Mixer` with ``norm1``'s scale folded in and one spatial op.

    ``pwconv1`` is split into its gate and value halves: two products instead
    of one and a split, which the exporter would trace with shape ops.
    """

    def __init__(self, gate: nn.Linear, value: nn.Linear, spatial: DeployedMixerConv,
                 pwconv2: nn.Linear) -> None:
        super().__init__()
        self.gate = gate
        self.value = value
        self.spatial = spatial
        self.pwconv2 = pwconv2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = self.spatial(F.gelu(self.value(x)).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.pwconv2(self.gate(x) * value)


class DeployedGateMLP(nn.Module):
    """:class:`BifurcateGateMLP` with ``norm2``'s scale folded into split ``fc1`` halves."""

    def __init__(self, value: nn.Linear, gate: nn.Linear, fc2: nn.Linear) -> None:
        super().__init__()
        self.value = value
        self.gate = gate
        self.fc2 = fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.value(x) * F.gelu(self.gate(x)))


def _linear(weight: torch.Tensor, bias: Optional[torch.Tensor]) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    layer.weight = _frozen(weight)
    if bias is not None:
        layer.bias = _frozen(bias)
    return layer


def _split_linear(weight: torch.Tensor, bias: torch.Tensor) -> Tuple[nn.Linear, nn.Linear]:
    """The two halves of a linear layer whose output is ``chunk(2, dim=-1)``-ed."""
    half = weight.shape[0] // 2
    return (_linear(weight[:half], bias[:half]), _linear(weight[half:], bias[half:]))


def _norm_scale(norm: nn.Module) -> torch.Tensor:
    if not isinstance(norm, L2LayerNorm) or norm.bias is not None:
        raise TypeError(f'cannot fold {norm!r}: expected a bias-free L2LayerNorm')
    return norm.weight.detach()


def stage_map_sizes(backbone: ParCNetV2, input_size: Tuple[int, int]) -> List[Tuple[int, int]]:
    """``(h, w)`` of each stage's maps for an input, from the downsampling convs."""
    sizes = []
    height, width = input_size
    for layer in backbone.downsample_layers:
        conv = layer.conv
        height = (height + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
        width = (width + 2 * conv.padding[1] - conv.kernel_size[1]) // conv.stride[1] + 1
        sizes.append((height, width))
    return sizes


def _merge_flags(merge: MergePolicy, num_stages: int) -> List[Optional[bool]]:
    """Per-stage decision: ``None`` lets :func:`merge_pays` decide."""
    if isinstance(merge, str):
        if merge not in MERGE_POLICIES:
            raise ValueError(f'merge must be one of {MERGE_POLICIES} or one bool per stage, '
                             f'got {merge!r}')
        return [{'auto': None, 'always': True, 'never': False}[merge]] * num_stages
    flags = list(merge)
    if len(flags) != num_stages or not all(isinstance(f, bool) for f in flags):
        raise ValueError(f'merge needs one bool per stage ({num_stages}), got {merge!r}')
    return flags


def _deploy_mixer(mixer: ParCV2Mixer, scale: torch.Tensor, map_size: Tuple[int, int],
                  merge: Optional[bool]) -> DeployedParCV2Mixer:
    conv: OversizedConv2d = mixer.dwconv1
    kernel_h, kernel_w = instance_kernels(conv.conv_h.weight.detach(), conv.conv_w.weight.detach(),
                                          conv.mode, *map_size)
    kernel_h = _crop_centre(kernel_h, 1, map_size[0])
    kernel_w = _crop_centre(kernel_w, 1, map_size[1])
    local = mixer.dwconv2.weight.detach()
    local_h = min(local.shape[2], 2 * map_size[0] - 1)
    local_w = min(local.shape[3], 2 * map_size[1] - 1)
    if merge is None:
        merge = merge_pays(kernel_h.shape[1], kernel_w.shape[1], local_h, local_w)
    spatial = DeployedMixerConv(kernel_h, kernel_w, local, map_size, merge, conv.impl)
    # gate, value = pwconv1(x).chunk(2): gate is the first half.
    gate, value = _split_linear(mixer.pwconv1.weight.detach().flatten(1) * scale,
                                mixer.pwconv1.bias.detach())
    pwconv2 = _linear(mixer.pwconv2.weight.detach().flatten(1), None)
    return DeployedParCV2Mixer(gate, value, spatial, pwconv2)


def _deploy_block(block: ParCNetV2Block, map_size: Tuple[int, int],
                  merge: Optional[bool]) -> None:
    block.token_mixer = _deploy_mixer(block.token_mixer, _norm_scale(block.norm1), map_size,
                                      merge)
    block.norm1 = L2Normalize(block.norm1.eps)
    mlp: BifurcateGateMLP = block.mlp
    # value, gate = fc1(x).chunk(2): value is the first half.
    value, gate = _split_linear(mlp.fc1.weight.detach() * _norm_scale(block.norm2),
                                mlp.fc1.bias.detach())
    block.mlp = DeployedGateMLP(value, gate, _linear(mlp.fc2.weight.detach(), None))
    block.norm2 = L2Normalize(block.norm2.eps)
    block.drop_path = nn.Identity()


def _deploy_downsampling(layer: Downsampling) -> None:
    if layer.is_stem:  # its post_norm feeds the residual stream, not a linear layer
        layer.post_norm = L2Normalize(layer.post_norm.eps, _norm_scale(layer.post_norm))
        return
    scale = _norm_scale(layer.pre_norm)
    layer.conv.weight = _frozen(layer.conv.weight.detach() * scale.view(1, -1, 1, 1))
    layer.pre_norm = L2Normalize(layer.pre_norm.eps)


def deploy_parcnetv2(backbone: ParCNetV2, input_size: Tuple[int, int],
                     merge: MergePolicy = 'auto') -> ParCNetV2:
    """Re-parameterise ``backbone`` in place for inputs of ``input_size``.

    Args:
        backbone: The model; switched to eval mode and rewritten in place.
        input_size: ``(H, W)`` of the images it will see.
        merge: ``'auto'`` (merge a stage's oversized and local kernels when
            :func:`merge_pays`), ``'always'``, ``'never'``, or one bool per
            stage.

    Returns:
        ``backbone``, for chaining.
    """
    if getattr(backbone, 'deploy_input_size', None) is not None:
        raise RuntimeError(f'this backbone is already deployed for {backbone.deploy_input_size}')
    if (len(input_size) != 2 or not all(isinstance(s, int) for s in input_size)
            or min(input_size) < backbone.stride):
        raise ValueError(f'input_size must be two ints >= the stride {backbone.stride}, '
                         f'got {input_size!r}')
    flags = _merge_flags(merge, backbone.num_stages)
    backbone.eval()
    with torch.no_grad():
        for layer, stage, map_size, flag in zip(backbone.downsample_layers, backbone.stages,
                                                stage_map_sizes(backbone, tuple(input_size)),
                                                flags):
            _deploy_downsampling(layer)
            for block in stage:
                _deploy_block(block, map_size, flag)
        for i in backbone.out_indices:
            norm = getattr(backbone, f'norm{i}')
            if isinstance(norm, L2LayerNorm):  # dense outputs; keeps its scale
                setattr(backbone, f'norm{i}', L2Normalize(norm.eps, _norm_scale(norm)))
    backbone.requires_grad_(False)
    backbone.deploy_input_size = tuple(input_size)
    return backbone


def deploy_model(model: nn.Module, input_size: Tuple[int, int],
                 merge: MergePolicy = 'auto') -> nn.Module:
    """Deploy every ParCNetV2 inside an MMLab model (classifier, detector, ...)."""
    backbones = [m for m in model.modules() if isinstance(m, ParCNetV2)]
    if not backbones:
        raise ValueError(f'{type(model).__name__} contains no ParCNetV2')
    for backbone in backbones:
        deploy_parcnetv2(backbone, input_size, merge)
    return model.eval()
