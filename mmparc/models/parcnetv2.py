"""ParCNetV2 (Xu et al., "ParCNetV2: Oversized Kernel with Enhanced Attention", ICCV 2023).

The model as the paper states it: a stem and three downsamplings, and
stages of uniform local-global blocks.  Each block is a ParC V2 token mixer
(oversized vertical + horizontal convolution in parallel with a 7x7
depthwise convolution, gating a projection: the spatial bifurcate gate
unit) and a channel bifurcate gate unit in place of the MLP, each pre-normed
and residual.  In both gate units ``value`` is the half passed on linearly
and ``gate`` the half that goes through GELU (and, in the mixer, the
convolutions) and multiplies it.

Every layer is a module called as one (hooks, FLOP counters and Grad-CAM
see them all) and takes and returns ``(B, C, H, W)`` tensors.  How a layer
is computed (fused kernels, GEMM forms, custom backward passes, storage
order) is the business of :mod:`.layers` and :mod:`mmparc.ops`; see
``docs/architecture.md``.  Parameter names follow the official release, so
its checkpoints load after a prefix change only.
"""
import functools
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from ..ops import crop_kernel
from ..registry import MODELS
from .layers import (KERNEL_MODES, DepthwiseConv2d, GatedProjection, L2LayerNorm,
                     OversizedConv2d, PointwiseConv2d, Scale, StridedConv2d)

# Whether switch_to_deploy fuses a stage's oversized and local kernels into one.
FUSE_POLICIES = ('auto', 'always', 'never')
# How the mixer's gate branch combines the oversized (v: vertical, h:
# horizontal) and local (dw) convolutions: the paper's parallel sum, or the
# supplement's Table 2 ablations.
MIXERS = ('parallel', 'dwconv_only', 'cascade_dw_v_h', 'cascade_v_dw_h', 'cascade_v_h_dw')
# How both gate units merge their value and gate branches (supplement, Table 3).
BRANCH_MERGES = ('mul', 'add')


class Downsampling(nn.Module):
    """Strided convolution between stages, with the official pre/post norms.

    The stem (``k7 s4 p2``) norms after the conv; the later downsamplings
    (``k3 s2 p1``) norm before it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int, padding: int, is_stem: bool) -> None:
        super().__init__()
        self.is_stem = is_stem
        self.pre_norm = nn.Identity() if is_stem else L2LayerNorm(in_channels)
        self.conv = StridedConv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.post_norm = L2LayerNorm(out_channels) if is_stem else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post_norm(self.conv(self.pre_norm(x)))

    def switch_to_deploy(self) -> None:
        """Fold the pre-norm's scale into the convolution."""
        if not self.is_stem:  # the stem's post-norm feeds the residual stream: it keeps its scale
            self.conv.fold_input_scale(self.pre_norm.take_scale())


def fuse_pays(kernel_h: int, kernel_w: int, local_h: int, local_w: int) -> bool:
    """Whether one dense depthwise kernel beats 1-D + 1-D + local convolutions.

    Compares multiply-adds per output and channel of the (cropped) kernels;
    ties fuse, since one convolution also saves two passes over memory and
    the sum.  In practice: maps of at most 4 rows and columns (the last stage
    of inputs up to 130 px), never at 224 or detection sizes.  Measured with
    onnxruntime on 2 CPU cores (one mixer, batch 1): fusing takes 0.73x the
    time at a 4x4 map, but 2.2x at 7x7, 7.5x at 14x14 and 1.7x at 16x24.
    """
    fused = max(kernel_h, local_h) * max(kernel_w, local_w)
    return fused <= kernel_h + kernel_w + local_h * local_w


class SpatialBGU(nn.Module):
    """Spatial bifurcate gate unit (S-BGU): the ParC V2 token mixer.

    ``pwconv1`` expands to ``value`` and ``gate`` halves; the gate's GELU
    goes through the oversized convolution (global) and, in parallel, a 7x7
    depthwise convolution (local); their sum multiplies the value, and
    ``pwconv2`` projects the product.

    The supplement's ablations are options: ``mixer`` (Table 2, see
    :data:`MIXERS`; ``'dwconv_only'`` has no oversized convolution,
    ``kernel_size`` is then ignored), ``branch_merge='add'`` (Table 3:
    ``pwconv2(value + gate)``) and ``local_kernel_size`` (of ``dwconv2``).
    """

    def __init__(self, dim: int, kernel_size: Optional[int], kernel_mode: str = 'fixed',
                 conv_impl: str = 'auto', mixer: str = 'parallel', branch_merge: str = 'mul',
                 local_kernel_size: int = 7) -> None:
        super().__init__()
        if mixer not in MIXERS:
            raise ValueError(f'mixer must be one of {MIXERS}, got {mixer!r}')
        self.mixer = mixer
        self.channels = dim
        self.pwconv1 = PointwiseConv2d(dim, 2 * dim)
        self.act = nn.GELU()
        self.dwconv1 = (None if mixer == 'dwconv_only' else
                        OversizedConv2d(dim, kernel_size, kernel_mode, conv_impl))
        self.dwconv2 = DepthwiseConv2d(dim, local_kernel_size)
        self.pwconv2 = GatedProjection(dim, dim, merge=branch_merge)
        self.fused: Optional[DepthwiseConv2d] = None  # set by switch_to_deploy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.pwconv1(x).split(self.channels, dim=1)
        gate = self.act(gate)
        if self.fused is not None:  # deployed: both convolutions as one kernel
            gate = self.fused(gate)
        elif self.mixer == 'parallel':
            gate = self.dwconv1(gate) + self.dwconv2(gate)
        else:
            gate = self.ablated_mixing(gate)
        return self.pwconv2(value, gate)  # pwconv2(value * gate)

    def ablated_mixing(self, gate: torch.Tensor) -> torch.Tensor:
        """The gate branch of the supplement's Table 2 ablations."""
        if self.mixer == 'dwconv_only':
            return self.dwconv2(gate)
        if self.mixer == 'cascade_dw_v_h':
            return self.dwconv1(self.dwconv2(gate))  # dwconv1 = conv_w(conv_h(.))
        if self.mixer == 'cascade_v_dw_h':
            return self.dwconv1.conv_w(self.dwconv2(self.dwconv1.conv_h(gate)))
        return self.dwconv2(self.dwconv1(gate))  # 'cascade_v_h_dw'

    @torch.no_grad()
    def switch_to_deploy(self, map_size: Optional[Tuple[int, int]], fuse: Optional[bool],
                         input_scale: Optional[torch.Tensor]) -> None:
        """Fold ``input_scale`` (the block norm's) into ``pwconv1``; resolve the kernels.

        ``input_scale=None``: already folded (by an earlier call without a
        size).  Without ``map_size`` only the fold is done: the kernels stay
        as stored, valid at any map size, and ``fuse`` must not be true.
        ``fuse`` (``None``: decided by :func:`fuse_pays`) replaces the
        oversized and local convolutions by one dense depthwise kernel: the
        1-D kernels compose to their outer product (zero padding makes the
        composition exact), and the 7x7 kernel adds at its centre.
        """
        if input_scale is not None:
            self.pwconv1.fold_input_scale(input_scale)
        if map_size is None:
            if fuse:
                raise ValueError('fuse: fusing the kernels needs the map size')
            return
        if self.mixer != 'parallel':  # a cascade does not compose into one kernel
            if fuse:
                raise ValueError(f'fuse: the {self.mixer!r} mixer cannot fuse its kernels')
            if self.dwconv1 is not None:
                self.dwconv1.switch_to_deploy(map_size)
            return
        self.dwconv1.switch_to_deploy(map_size)
        kernel_h = self.dwconv1.conv_h.weight[:, 0, :, 0]
        kernel_w = self.dwconv1.conv_w.weight[:, 0, 0, :]
        local = crop_kernel(crop_kernel(self.dwconv2.weight, map_size[0], 2), map_size[1], 3)
        if fuse is None:
            fuse = fuse_pays(kernel_h.shape[1], kernel_w.shape[1], *local.shape[2:])
        if not fuse:
            return
        rows = max(kernel_h.shape[1], local.shape[2])
        cols = max(kernel_w.shape[1], local.shape[3])
        dense = kernel_h.new_zeros(kernel_h.shape[0], 1, rows, cols)
        top, left = (rows - kernel_h.shape[1]) // 2, (cols - kernel_w.shape[1]) // 2
        dense[:, 0, top:top + kernel_h.shape[1], left:left + kernel_w.shape[1]] = (
            kernel_h[:, :, None] * kernel_w[:, None, :])
        top, left = (rows - local.shape[2]) // 2, (cols - local.shape[3]) // 2
        dense[:, :, top:top + local.shape[2], left:left + local.shape[3]] += local
        self.fused = DepthwiseConv2d(dense.shape[0], (rows, cols))
        self.fused.weight = nn.Parameter(dense, requires_grad=False)
        del self.dwconv1, self.dwconv2


class ChannelBGU(nn.Module):
    """Channel bifurcate gate unit (C-BGU), in place of the MLP: ``fc2(value * gelu(gate))``.

    ``fc1`` expands to ``mlp_ratio * dim`` channels, split into ``value``
    and ``gate`` halves; ``branch_merge='add'`` gives ``fc2(value +
    gelu(gate))`` (supplement, Table 3).
    """

    def __init__(self, dim: int, mlp_ratio: float = 5.0, branch_merge: str = 'mul') -> None:
        super().__init__()
        hidden = int(mlp_ratio * dim)
        if hidden < 2 or hidden % 2:
            raise ValueError(f'mlp_ratio * dim must be an even number >= 2 (it is split in '
                             f'halves), got {mlp_ratio} * {dim} -> {hidden}')
        self.fc1 = PointwiseConv2d(dim, hidden, linear_weight=True, channel_major=False)
        self.fc2 = GatedProjection(hidden // 2, dim, gate_act='gelu', linear_weight=True,
                                   merge=branch_merge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.fc1(x).split(self.fc2.in_channels, dim=1)
        return self.fc2(value, gate)  # fc2(value * gelu(gate))

    def switch_to_deploy(self, input_scale: torch.Tensor) -> None:
        """Fold ``input_scale`` (the block norm's) into ``fc1``."""
        self.fc1.fold_input_scale(input_scale)


class ParCNetV2Block(nn.Module):
    """Uniform local-global block: S-BGU (token mixer) and C-BGU, each pre-normed, residual."""

    def __init__(self, dim: int, kernel_size: int, kernel_mode: str, conv_impl: str,
                 mlp_ratio: float, drop_path: float, res_scale: bool, with_cp: bool,
                 mixer: str = 'parallel', branch_merge: str = 'mul',
                 local_kernel_size: int = 7) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = L2LayerNorm(dim)
        self.token_mixer = SpatialBGU(dim, kernel_size, kernel_mode, conv_impl, mixer,
                                      branch_merge, local_kernel_size)
        self.norm2 = L2LayerNorm(dim)
        self.mlp = ChannelBGU(dim, mlp_ratio, branch_merge)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.res_scale1 = Scale(dim) if res_scale else nn.Identity()
        self.res_scale2 = Scale(dim) if res_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res_scale1(x) + self.drop_path(self.token_mixer(self.norm1(x)))
        return self.res_scale2(x) + self.drop_path(self.mlp(self.norm2(x)))

    def switch_to_deploy(self, map_size: Optional[Tuple[int, int]],
                         fuse: Optional[bool]) -> None:
        """Fold the norms' scales into the layers after them; resolve the mixer's
        kernels for ``map_size`` maps (``None``: they stay valid at any size).

        A second call, with a map size after one without, only resolves the
        kernels: the norms' scales were taken by the first.
        """
        folded = self.norm1.weight is None
        self.token_mixer.switch_to_deploy(map_size, fuse,
                                          None if folded else self.norm1.take_scale())
        if not folded:
            self.mlp.switch_to_deploy(self.norm2.take_scale())
        self.drop_path = nn.Identity()


@MODELS.register_module()
class ParCNetV2(BaseModule):
    """ParCNetV2 backbone for classification and dense prediction.

    Args:
        arch: ``'xt'``, ``'t'``, ``'s'``, ``'b'`` (or their long names), or a
            dict with equal-length ``depths`` and ``dims``.
        in_channels: Channels of the input image.
        kernel_mode: ``'fixed'`` (kernel lengths as trained; the official
            det/seg behaviour) or ``'global'`` (resampled to ``2H-1 x 2W-1``).
        kernel_sizes: Stored oversized-kernel length per stage; by default
            those of 224x224 pretraining, ``2 * (224 // stride) - 1``.
        mlp_ratio: BGU expansion (5: 2.5x per branch).
        drop_path_rate: Stochastic depth, linear in block index.
        out_indices: Stages whose outputs are returned; negative indices
            count from the last stage.
        frozen_stages: Stages ``< frozen_stages`` (with their downsampling
            and output norm) get ``requires_grad=False`` and stay in eval mode.
        gap_before_final_norm: Classification output: global average pool,
            then a standard LayerNorm (the official classifier's ``norm``).
            Otherwise each output gets the official per-output L2 norm and is
            returned as ``(B, C, H, W)``.
        with_cp: Gradient checkpointing per block.
        conv_impl: How the oversized convolution is evaluated (``'auto'``,
            ``'direct'``, ``'toeplitz'``; see :mod:`mmparc.ops.oversized_conv`);
            results agree to float rounding.
        mixer: How the mixer combines its oversized and local convolutions:
            ``'parallel'`` (the paper) or an ablation of the supplement's
            Table 2 (see :data:`MIXERS` and ``configs/ablations/``).
        branch_merge: ``'mul'`` (the paper) or ``'add'``: how both bifurcate
            gate units merge their branches (supplement, Table 3).
        local_kernel_sizes: Side of the local depthwise kernel per stage (default 7).
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained',
            checkpoint=..., prefix='backbone.')``.
    """

    arch_settings: Dict[str, Dict[str, List[int]]] = {
        'xt': {'depths': [3, 3, 9, 2], 'dims': [48, 96, 192, 320]},
        't': {'depths': [3, 3, 12, 3], 'dims': [64, 128, 320, 512]},
        's': {'depths': [3, 9, 24, 3], 'dims': [64, 128, 320, 512]},
        'b': {'depths': [3, 9, 24, 3], 'dims': [96, 192, 384, 576]},
    }
    arch_aliases = {'extra_tiny': 'xt', 'tiny': 't', 'small': 's', 'base': 'b'}

    def __init__(self,
                 arch: Union[str, Dict[str, Sequence[int]]] = 't',
                 in_channels: int = 3,
                 kernel_mode: str = 'fixed',
                 kernel_sizes: Optional[Sequence[int]] = None,
                 mlp_ratio: float = 5.0,
                 drop_path_rate: float = 0.0,
                 out_indices: Union[int, Sequence[int]] = -1,
                 frozen_stages: int = 0,
                 gap_before_final_norm: bool = True,
                 with_cp: bool = False,
                 conv_impl: str = 'auto',
                 mixer: str = 'parallel',
                 branch_merge: str = 'mul',
                 local_kernel_sizes: Optional[Sequence[int]] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.depths, self.dims = self._parse_arch(arch)
        num_stages = len(self.depths)
        self.num_stages = num_stages
        if kernel_mode not in KERNEL_MODES:
            raise ValueError(f'kernel_mode must be one of {KERNEL_MODES}, got {kernel_mode!r}')
        if kernel_sizes is None:
            kernel_sizes = [max(1, 2 * (224 // (4 * 2**i)) - 1) for i in range(num_stages)]
        kernel_sizes = list(kernel_sizes)
        if len(kernel_sizes) != num_stages or not all(
                _is_int(k) and k > 0 and k % 2 for k in kernel_sizes):
            raise ValueError(f'kernel_sizes needs one positive odd int per stage ({num_stages}), '
                             f'got {kernel_sizes}')
        if mixer not in MIXERS:
            raise ValueError(f'mixer must be one of {MIXERS}, got {mixer!r}')
        if branch_merge not in BRANCH_MERGES:
            raise ValueError(f'branch_merge must be one of {BRANCH_MERGES}, got {branch_merge!r}')
        local_kernel_sizes = [7] * num_stages if local_kernel_sizes is None else list(
            local_kernel_sizes)
        if len(local_kernel_sizes) != num_stages or not all(
                _is_int(k) and k > 0 and k % 2 for k in local_kernel_sizes):
            raise ValueError(f'local_kernel_sizes needs one positive odd int per stage '
                             f'({num_stages}), got {local_kernel_sizes}')
        if _is_bool(drop_path_rate) or not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
        if not _is_int(in_channels) or in_channels < 1:
            raise ValueError(f'in_channels must be a positive int, got {in_channels!r}')
        if (_is_bool(mlp_ratio) or not isinstance(mlp_ratio, (int, float))
                or not mlp_ratio > 0):
            raise ValueError(f'mlp_ratio must be a positive number, got {mlp_ratio!r}')
        self.in_channels = in_channels
        self.kernel_mode = kernel_mode
        self.kernel_sizes = kernel_sizes
        self.out_indices = self._parse_out_indices(out_indices, num_stages)
        if not _is_int(frozen_stages) or not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be an int in [-1, {num_stages}], '
                             f'got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.gap_before_final_norm = gap_before_final_norm
        self.with_cp = with_cp
        self.deployed = False  # set by switch_to_deploy: inference-only from then on
        self.deploy_input_size: Optional[Tuple[int, int]] = None

        self.downsample_layers = nn.ModuleList()
        self.stages = nn.ModuleList()
        rates = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        chans = [in_channels] + self.dims
        for i in range(num_stages):
            if i == 0:
                self.downsample_layers.append(
                    Downsampling(in_channels, chans[1], 7, 4, 2, is_stem=True))
            else:
                self.downsample_layers.append(
                    Downsampling(chans[i], chans[i + 1], 3, 2, 1, is_stem=False))
            start = sum(self.depths[:i])
            self.stages.append(nn.Sequential(*[
                ParCNetV2Block(self.dims[i], kernel_sizes[i], kernel_mode, conv_impl,
                               mlp_ratio, rates[start + j], res_scale=i >= num_stages - 2,
                               with_cp=with_cp, mixer=mixer, branch_merge=branch_merge,
                               local_kernel_size=local_kernel_sizes[i])
                for j in range(self.depths[i])
            ]))
        for i in self.out_indices:
            norm = (nn.LayerNorm(self.dims[i], eps=1e-6) if gap_before_final_norm
                    else L2LayerNorm(self.dims[i]))
            self.add_module(f'norm{i}', norm)
        self._freeze_stages()

    # ----------------------------------------------------------- arguments
    @classmethod
    def _parse_arch(cls, arch) -> Tuple[List[int], List[int]]:
        if isinstance(arch, str):
            key = cls.arch_aliases.get(arch.lower(), arch.lower())
            if key not in cls.arch_settings:
                raise ValueError(f'unknown ParCNetV2 arch {arch!r}; choose one of '
                                 f'{sorted(cls.arch_settings) + sorted(cls.arch_aliases)} '
                                 "or pass dict(depths=[...], dims=[...])")
            setting = cls.arch_settings[key]
        elif isinstance(arch, dict):
            unknown = set(arch) - {'depths', 'dims'}
            if unknown or not {'depths', 'dims'} <= set(arch):
                raise ValueError("a custom arch needs exactly the keys 'depths' and 'dims', "
                                 f'got {sorted(arch)}')
            setting = arch
        else:
            raise TypeError(f'arch must be a str or dict, got {type(arch).__name__}')
        depths, dims = list(setting['depths']), list(setting['dims'])
        if not depths or len(depths) != len(dims):
            raise ValueError(f'depths and dims must be non-empty and of equal length, '
                             f'got {depths} and {dims}')
        if not all(_is_int(v) and v > 0 for v in depths + dims):
            raise ValueError(f'depths and dims must be positive ints, got {depths} and {dims}')
        return depths, dims

    @staticmethod
    def _parse_out_indices(out_indices, num_stages: int) -> List[int]:
        if _is_int(out_indices):
            out_indices = [out_indices]
        if not isinstance(out_indices, (list, tuple)) or not out_indices:
            raise ValueError(f'out_indices must be an int or a non-empty sequence of ints, '
                             f'got {out_indices!r}')
        parsed = []
        for index in out_indices:
            if not _is_int(index) or not -num_stages <= index < num_stages:
                raise ValueError(f'out_indices entries must be ints in [-{num_stages}, '
                                 f'{num_stages - 1}], got {index!r}')
            parsed.append(index % num_stages)
        if len(set(parsed)) != len(parsed):
            raise ValueError(f'out_indices repeat a stage: {list(out_indices)}')
        return sorted(parsed)

    @property
    def stride(self) -> int:
        """Total downsampling factor of the last stage."""
        return 4 * 2**(self.num_stages - 1)

    # ------------------------------------------------------------- weights
    def init_weights(self) -> None:
        if self.init_cfg is not None:
            super().init_weights()
            return
        # The official classifier's initialisation.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, PointwiseConv2d, GatedProjection)):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs) -> None:
        # A classifier checkpoint's final LayerNorm (weight and bias) must not
        # be loaded into a dense per-output L2 norm of the same name: the
        # official det/seg backbone starts those norms fresh, and so do we.
        if not self.gap_before_final_norm:
            for i in self.out_indices:
                bias_key = f'{prefix}norm{i}.bias'
                if bias_key in state_dict:
                    state_dict.pop(bias_key)
                    state_dict.pop(f'{prefix}norm{i}.weight', None)
                    print_log(f'ignoring {prefix}norm{i}.weight/bias: they belong to a '
                              "classifier's final LayerNorm, not to this dense output's "
                              'L2 norm, which keeps its initialisation', logger='current',
                              level=30)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    # ------------------------------------------------------------- forward
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[0] == 0:
            raise ValueError('ParCNetV2 expects a non-empty batch of (B, C, H, W) images, got '
                             f'shape {tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'ParCNetV2 was built for {self.in_channels} input channels, '
                             f'got {x.shape[1]} (input shape {tuple(x.shape)})')
        if (self.deploy_input_size is not None and not torch.jit.is_tracing()
                and tuple(x.shape[2:]) != self.deploy_input_size):
            raise ValueError('this ParCNetV2 was deployed for {}x{} inputs, got {}x{}; call '
                             'switch_to_deploy on a fresh model for another input size'.format(
                                 *self.deploy_input_size, *x.shape[2:]))
        if min(x.shape[2:]) < self.stride:
            raise ValueError(f'input {tuple(x.shape[2:])} is smaller than the network '
                             f'stride {self.stride}; pad or resize images to at least '
                             f'{self.stride}x{self.stride}')
        if x.device.type == 'cpu' and x.dtype == torch.float16 and not _cpu_computes(x.dtype):
            raise TypeError(f'ParCNetV2 in float16 on the CPU: this torch ({torch.__version__}) '
                            'has no float16 CPU kernels for its convolutions and norms; use '
                            'bfloat16 or float32 on the CPU')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self._check_input(x)
        outs = []
        for i in range(self.num_stages):
            x = self.downsample_layers[i](x)
            x = self.stages[i](x)
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}')
                if self.gap_before_final_norm:
                    outs.append(norm(x.mean((2, 3))))
                else:
                    outs.append(norm(x).contiguous())
        return tuple(outs)

    # ------------------------------------------------------ frozen stages
    def _freeze_stages(self) -> None:
        for i in range(max(self.frozen_stages, 0)):
            modules = [self.downsample_layers[i], self.stages[i]]
            if i in self.out_indices:
                modules.append(getattr(self, f'norm{i}'))
            for module in modules:
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'ParCNetV2':
        if mode and self.deployed:
            raise RuntimeError('this ParCNetV2 was re-parameterised by switch_to_deploy() and '
                               'is inference-only; build it again to train')
        super().train(mode)
        self._freeze_stages()
        return self

    # ---------------------------------------------------------- deployment
    def stage_sizes(self, input_size: Tuple[int, int]) -> List[Tuple[int, int]]:
        """``(h, w)`` of each stage's maps for an ``(H, W)`` input."""
        sizes = []
        height, width = input_size
        for layer in self.downsample_layers:
            conv = layer.conv
            height = (height + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
            width = (width + 2 * conv.padding[1] - conv.kernel_size[1]) // conv.stride[1] + 1
            sizes.append((height, width))
        return sizes

    def switch_to_deploy(self, input_size: Optional[Tuple[int, int]] = None,
                         fuse: Union[str, Sequence[bool]] = 'auto') -> 'ParCNetV2':
        """Re-parameterise in place for inference (supplement Sec. H).

        Outputs stay the same up to float rounding; each layer does its own
        part (RepVGG's convention).  Block norms' scales are folded into the
        linear layers after them, whatever the input size: that is all a
        call without ``input_size`` does (how mmdeploy calls it, before it
        knows the export shape), and the model still takes any size.  With
        an ``(H, W)`` input size, oversized kernels are also resampled and
        cropped for each stage's map once (a traced or exported graph is then
        exact at this size, and deployed layers refuse others), and a stage's
        oversized and local kernels fuse into one where that is cheaper
        (``fuse``: ``'auto'``, ``'always'``, ``'never'`` or one bool per
        stage; see :func:`fuse_pays`; without a size only ``'auto'`` and
        ``'never'``, which then fuse nothing).  The result is
        inference-only: ``train()`` raises.  A model deployed without a size
        can be deployed once more with one (mmdeploy's static exports do,
        through :mod:`mmparc.deployment.mmdeploy_compat`); that call only
        resolves the kernels.
        """
        if self.deployed and (input_size is None or self.deploy_input_size is not None):
            size = ('any input size' if self.deploy_input_size is None else
                    '{}x{} inputs'.format(*self.deploy_input_size))
            raise RuntimeError(f'this backbone is already deployed (for {size}); build it '
                               'again to deploy it differently')
        if input_size is not None and (
                not isinstance(input_size, (list, tuple)) or len(input_size) != 2
                or not all(_is_int(s) for s in input_size) or min(input_size) < self.stride):
            raise ValueError(f'input_size must be None or two ints >= the stride {self.stride}, '
                             f'got {input_size!r}')
        flags = self._fuse_flags(fuse)
        if input_size is None and any(flags):
            raise ValueError(f'fuse={fuse!r} needs an input_size: the fused kernel depends on '
                             "each stage's map size; pass input_size=(H, W) or fuse='auto'")
        map_sizes = ([None] * self.num_stages if input_size is None else
                     self.stage_sizes(tuple(input_size)))
        self.eval()
        for layer, stage, map_size, flag in zip(self.downsample_layers, self.stages, map_sizes,
                                                flags):
            if not self.deployed:
                layer.switch_to_deploy()
            for block in stage:
                block.switch_to_deploy(map_size, flag)
        self.requires_grad_(False)
        self.deployed = True
        self.deploy_input_size = None if input_size is None else tuple(input_size)
        return self

    def _fuse_flags(self, fuse: Union[str, Sequence[bool]]) -> List[Optional[bool]]:
        """Per-stage fuse decision; ``None`` lets :func:`fuse_pays` decide."""
        if isinstance(fuse, str):
            if fuse not in FUSE_POLICIES:
                raise ValueError(f'fuse must be one of {FUSE_POLICIES} or one bool per stage, '
                                 f'got {fuse!r}')
            return [{'auto': None, 'always': True, 'never': False}[fuse]] * self.num_stages
        flags = list(fuse)
        if len(flags) != self.num_stages or not all(isinstance(f, bool) for f in flags):
            raise ValueError(f'fuse needs one bool per stage ({self.num_stages}), got {fuse!r}')
        return flags

    # --------------------------------------------------------- layer decay
    def layer_ids(self) -> Tuple[List[int], List[List[int]]]:
        """Layer-wise ids of each downsampling and each block.

        Blocks are grouped in threes along the cumulative depth, as the
        official release does for t/s/b (giving 7, 13, 13 layers); the rule
        is defined for any depths and stays monotone.
        """
        downsample_ids, block_ids = [], []
        done = 0
        for depth in self.depths:
            base = done // 3 + 1 if done else 0
            downsample_ids.append(base)
            first = done // 3 + 1
            block_ids.append([first + j // 3 for j in range(depth)])
            done += depth
        return downsample_ids, block_ids

    def default_num_layers(self, decay_type: str = 'layer_wise') -> int:
        """``num_layers`` a constructor uses when the config omits it."""
        if decay_type == 'stage_wise':
            return self.num_stages
        return self.layer_ids()[1][-1][-1]

    def get_layer_depth(self, param_name: str, prefix: str = '',
                        decay_type: str = 'layer_wise',
                        num_layers: Optional[int] = None) -> Tuple[int, int]:
        """Layer id of a parameter and the total number of ids.

        Returns ``(layer_id, num_layers + 2)``: ids run from 0 (stem) to
        ``num_layers + 1``, the id of everything outside the backbone (neck,
        heads) and of the per-output norms, whose scale is
        ``decay_rate ** (num_layers + 2 - layer_id - 1)``.  This reproduces the
        official layer-wise scheme for t/s/b and ConvNeXt's stage-wise one.
        """
        if decay_type not in ('layer_wise', 'stage_wise'):
            raise ValueError(f"decay_type must be 'layer_wise' or 'stage_wise', got {decay_type!r}")
        minimum = self.default_num_layers(decay_type)
        if num_layers is None:
            num_layers = minimum
        elif num_layers < minimum:
            raise ValueError(f'num_layers={num_layers} is too small for this backbone: its '
                             f'deepest {decay_type} id is {minimum}')
        top = num_layers + 1
        if not param_name.startswith(prefix):
            return top, num_layers + 2
        parts = param_name[len(prefix):].split('.')
        if parts[0] == 'downsample_layers':
            stage = int(parts[1])
            if decay_type == 'stage_wise':
                return 0, num_layers + 2
            return self.layer_ids()[0][stage], num_layers + 2
        if parts[0] == 'stages':
            stage, block = int(parts[1]), int(parts[2])
            if decay_type == 'stage_wise':
                return stage + 1, num_layers + 2
            return self.layer_ids()[1][stage][block], num_layers + 2
        return top, num_layers + 2


@functools.lru_cache(maxsize=None)
def _cpu_computes(dtype: torch.dtype) -> bool:
    """Whether this torch has CPU kernels in ``dtype`` for what the model runs
    (float16 convolution, layer norm and matrix products came after torch 2.1)."""
    x = torch.ones(1, 2, 3, 3, dtype=dtype)
    try:
        torch.nn.functional.conv2d(x, torch.ones(2, 1, 3, 3, dtype=dtype), groups=2)
        torch.native_layer_norm(x, (3, ), None, None, 1e-5)
        torch.bmm(x[0], x[0])
    except RuntimeError:
        return False
    return True


def _is_int(value: object) -> bool:
    """An int that is not a bool (``True`` is an ``int`` to Python, never a size here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)
