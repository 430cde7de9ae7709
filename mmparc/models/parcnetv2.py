"""ParCNetV2 backbone (Xu et al., ICCV 2023, arXiv 2211.07157).

Tensors travel between layers channels-last, ``(B, H, W, C)`` contiguous, as
in the official code; their ``(B, C, H, W)`` views are then channels-last
strided, so convolutions run without layout copies and the 1x1 convolutions
run as plain matrix products.  Inside the token mixer the maps are
channel-major, ``(C, B, H, W)``, the layout in which the oversized
convolution is a batched GEMM (see :mod:`.oversized_conv`).  Parameter names
follow the official release so that its checkpoints load after a prefix
change only.

The forward pass is organised for speed on CPU while computing the official
function (to float rounding): fused norms (:mod:`.norms`), custom backward
passes that save less and avoid slow depthwise weight gradients, and
in-place, tiled inference paths.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from ..registry import MODELS
from .norms import L2LayerNorm
from .oversized_conv import KERNEL_MODES, OversizedConv2d, depthwise_conv2d


class _StridedConv2d(torch.autograd.Function):
    """``conv2d`` of a channels-last input, with a faster weight gradient on CPU.

    oneDNN computes the weight gradient of a channels-last convolution 3-5x
    slower than that of contiguous tensors (e.g. 166 ms against 39 ms for
    the first downsampling at 800x1216), far more than the copies cost.
    The input gradient stays channels-last, where it is faster.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                stride: Tuple[int, int], padding: Tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, bias is not None)
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        stride, padding, has_bias = ctx.geometry
        grad_x = grad_w = grad_b = None
        conv_backward = torch.ops.aten.convolution_backward
        geometry = (stride, padding, (1, 1), False, (0, 0), 1)
        x_in, w_in = x.to(grad.dtype), weight.to(grad.dtype)
        if ctx.needs_input_grad[0]:
            grad_x = conv_backward(grad, x_in, w_in, None, *geometry,
                                   (True, False, False))[0].to(x.dtype)
        if ctx.needs_input_grad[1]:  # all three contiguous, or the slow kernel is chosen
            grad_w = conv_backward(grad.contiguous(), x_in.contiguous(), w_in.contiguous(), None,
                                   *geometry, (False, True, False))[1].to(weight.dtype)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3)).to(weight.dtype)
        return grad_x, grad_w, grad_b, None, None


def _strided_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if x.device.type == 'cpu' and torch.is_grad_enabled() and (
            x.requires_grad or conv.weight.requires_grad):
        return _StridedConv2d.apply(x, conv.weight, conv.bias, conv.stride, conv.padding)
    return conv(x)


class Downsampling(nn.Module):
    """Strided convolution between stages, with the official pre/post norms.

    The stem (``k7 s4 p2``) takes an NCHW image and norms after the conv; the
    later downsamplings (``k3 s2 p1``) norm the channels-last input before it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int, padding: int, is_stem: bool) -> None:
        super().__init__()
        self.is_stem = is_stem
        if not is_stem:
            self.pre_norm = L2LayerNorm(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        # Stored channels-last like the activations: oneDNN would otherwise
        # reorder the weight on every call (3 ms for the last one at 224).
        self.conv.weight.data = self.conv.weight.data.contiguous(memory_format=torch.channels_last)
        if is_stem:
            self.post_norm = L2LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_stem:
            # Channels-last image and weight: the output comes out (B, H, W, C)
            # contiguous for the norm, and oneDNN runs this layout faster.
            x = _strided_conv(self.conv, x.contiguous(memory_format=torch.channels_last))
            return self.post_norm(x.permute(0, 2, 3, 1))
        x = self.pre_norm(x).permute(0, 3, 1, 2)
        return _strided_conv(self.conv, x).permute(0, 2, 3, 1)


class _GatedProjection(torch.autograd.Function):
    """``linear((a * f(b)).t(), weight)`` for channel-major ``(K, N)`` ``a`` and ``b``.

    ``f`` is GELU or the identity.  Only ``a`` and ``b`` are saved: the gated
    product (and ``f(b)``) is recomputed in the backward pass, an element-wise
    pass, instead of being kept for the whole step.  That is 5 of the ~22
    saved ``C``-channel maps of a block (2.5C + 2.5C in the MLP, C in the
    mixer); with :class:`~.oversized_conv._ToeplitzPass` not keeping its
    matrices, training memory at 800x1216 falls from 1.44x to 0.94x
    ConvNeXt-T's.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor,
                gelu: bool) -> torch.Tensor:
        ctx.save_for_backward(a, b, weight)
        ctx.gelu = gelu
        return F.linear((a * (F.gelu(b) if gelu else b)).t(), weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, b, weight = ctx.saved_tensors
        dtype = grad.dtype
        a_, b_ = a.to(dtype), b.to(dtype)
        gate = F.gelu(b_) if ctx.gelu else b_
        grad_a = grad_b = grad_w = None
        grad_hidden = torch.mm(weight.to(dtype).t(), grad.t())
        if ctx.needs_input_grad[0]:
            grad_a = (grad_hidden * gate).to(a.dtype)
        if ctx.needs_input_grad[1]:
            grad_b = grad_hidden.mul_(a_)
            if ctx.gelu:
                grad_b = torch.ops.aten.gelu_backward(grad_b, b_)
            grad_b = grad_b.to(b.dtype)
        if ctx.needs_input_grad[2]:
            grad_w = torch.mm(grad.t(), (a_ * gate).t()).to(weight.dtype)
        return grad_a, grad_b, grad_w, None


def _gated_projection(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor,
                      gelu: bool) -> torch.Tensor:
    return _GatedProjection.apply(a, b, weight, gelu)


class ParCV2Mixer(nn.Module):
    """Token mixer: gated oversized + 7x7 local depthwise convolution.

    ``pwconv1`` expands to ``2C``; one half gates the other, whose GELU output
    goes through the oversized convolution and, in parallel, a 7x7 depthwise
    convolution before the sum is multiplied by the gate.
    """

    def __init__(self, dim: int, kernel_size: int, kernel_mode: str, impl: str) -> None:
        super().__init__()
        self.pwconv1 = nn.Conv2d(dim, 2 * dim, 1, bias=True)
        self.dwconv1 = OversizedConv2d(dim, kernel_size, kernel_mode, impl)
        self.dwconv2 = nn.Conv2d(dim, dim, 7, padding=3, groups=dim, bias=False)
        self.pwconv2 = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channel-major (C, B, H, W) inside: pwconv1 writes it directly (a
        # product with the transposed input), both depthwise convolutions run
        # on it without layout copies (the oversized one as batched GEMMs,
        # which also add the local branch in), and pwconv2 reads the result
        # as a transposed operand, back into channels-last (B, H, W, C).
        batch, height, width, channels = x.shape
        rows = x.reshape(-1, channels)
        mixed = torch.addmm(self.pwconv1.bias.unsqueeze(1), self.pwconv1.weight.flatten(1),
                            rows.t())
        gate, value = mixed.view(2 * channels, batch, height, width).chunk(2)
        inference = not torch.is_grad_enabled()
        value = torch.ops.aten.gelu_(value) if inference else F.gelu(value)
        local = depthwise_conv2d(value.transpose(0, 1), self.dwconv2.weight).transpose(0, 1)
        spatial = self.dwconv1.forward_channel_major(value, add=local)
        weight = self.pwconv2.weight.flatten(1)
        if inference:
            out = F.linear(spatial.mul_(gate).view(channels, -1).t(), weight)
        else:
            out = _gated_projection(spatial.view(channels, -1), gate.reshape(channels, -1),
                                    weight, False)
        return out.view(batch, height, width, channels)


# Inference tiles of the MLP: >= 256 rows, ~1M hidden elements.
MLP_TILE_ROWS = 256
MLP_TILE_ELEMENTS = 1 << 20


class BifurcateGateMLP(nn.Module):
    """Channel bifurcate gate unit: ``fc2(a * gelu(b))`` with ``a, b = fc1(x)``."""

    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(mlp_ratio * dim)
        if hidden % 2:
            raise ValueError(f'mlp_ratio * dim must be even, got {hidden}')
        self.fc1 = nn.Linear(dim, hidden, bias=True)
        self.fc2 = nn.Linear(hidden // 2, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if torch.is_grad_enabled():
            # Channel-major hidden layer (5C, B*H*W): one GEMM, contiguous
            # halves for GELU, and fc2 reads it as a transposed operand.
            value, gate = torch.addmm(self.fc1.bias.unsqueeze(1), self.fc1.weight,
                                      rows.t()).chunk(2)
            return _gated_projection(value, gate, self.fc2.weight, True).view(x.shape)
        # Inference in row tiles of ~4 MB of hidden layer: a tile stays in
        # cache from fc1 to fc2, and no large block is allocated (glibc maps
        # blocks over 32 MB afresh for each call, and their page faults cost
        # as much as the GEMM that writes them: 1.3-2x slower MLPs in the
        # first two stages at 800x1216 without tiles).
        step = max(MLP_TILE_ROWS, MLP_TILE_ELEMENTS // self.fc1.out_features)
        if rows.shape[0] <= step:
            return self._infer(rows).view(x.shape)
        return torch.cat([self._infer(tile) for tile in rows.split(step)]).view(x.shape)

    def _infer(self, rows: torch.Tensor) -> torch.Tensor:
        """Inference on ``(N, C)`` rows: two row-major GEMMs (contiguous halves), in place."""
        half = self.fc2.in_features
        value = F.linear(rows, self.fc1.weight[:half], self.fc1.bias[:half])
        gate = F.linear(rows, self.fc1.weight[half:], self.fc1.bias[half:])
        return F.linear(value.mul_(torch.ops.aten.gelu_(gate)), self.fc2.weight)


class Scale(nn.Module):
    """Learnable per-channel scale (the official ``res_scale``)."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class ParCNetV2Block(nn.Module):
    """Uniform local-global block: mixer and BGU-MLP, each pre-normed, residual."""

    def __init__(self, dim: int, kernel_size: int, kernel_mode: str, impl: str,
                 mlp_ratio: float, drop_path: float, res_scale: bool) -> None:
        super().__init__()
        self.norm1 = L2LayerNorm(dim)
        self.token_mixer = ParCV2Mixer(dim, kernel_size, kernel_mode, impl)
        self.norm2 = L2LayerNorm(dim)
        self.mlp = BifurcateGateMLP(dim, mlp_ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.res_scale1 = Scale(dim) if res_scale else nn.Identity()
        self.res_scale2 = Scale(dim) if res_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._residual(self.res_scale1, x, self.drop_path(self.token_mixer(self.norm1(x))))
        return self._residual(self.res_scale2, x, self.drop_path(self.mlp(self.norm2(x))))

    @staticmethod
    def _residual(scale: nn.Module, x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """``scale(x) + branch`` in one pass (``addcmul``) when scaled."""
        if isinstance(scale, Scale):
            return torch.addcmul(branch, x, scale.scale)
        return x + branch


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
            ``'direct'``, ``'toeplitz'``); results agree to float rounding.
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
        if len(kernel_sizes) != num_stages:
            raise ValueError(f'kernel_sizes needs one length per stage ({num_stages}), '
                             f'got {kernel_sizes}')
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate}')
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'in_channels must be a positive int, got {in_channels!r}')
        self.in_channels = in_channels
        self.kernel_mode = kernel_mode
        self.kernel_sizes = kernel_sizes
        self.out_indices = self._parse_out_indices(out_indices, num_stages)
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be an int in [-1, {num_stages}], '
                             f'got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.gap_before_final_norm = gap_before_final_norm
        self.with_cp = with_cp

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
                               mlp_ratio, rates[start + j], res_scale=i >= num_stages - 2)
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
        if not all(isinstance(v, int) and v > 0 for v in depths + dims):
            raise ValueError(f'depths and dims must be positive ints, got {depths} and {dims}')
        return depths, dims

    @staticmethod
    def _parse_out_indices(out_indices, num_stages: int) -> List[int]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        parsed = []
        for index in out_indices:
            if not isinstance(index, int) or not -num_stages <= index < num_stages:
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
            if isinstance(m, (nn.Conv2d, nn.Linear)):
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
        if x.dim() != 4:
            raise ValueError(f'ParCNetV2 expects (B, C, H, W) images, got shape {tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'ParCNetV2 was built for {self.in_channels} input channels, '
                             f'got {x.shape[1]} (input shape {tuple(x.shape)})')
        if min(x.shape[2:]) < self.stride:
            raise ValueError(f'input {tuple(x.shape[2:])} is smaller than the network '
                             f'stride {self.stride}; pad or resize images to at least '
                             f'{self.stride}x{self.stride}')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        self._check_input(x)
        outs = []
        for i in range(self.num_stages):
            x = self.downsample_layers[i](x)
            for block in self.stages[i]:
                if self.with_cp and x.requires_grad:
                    x = cp.checkpoint(block, x, use_reentrant=False)
                else:
                    x = block(x)
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}')
                if self.gap_before_final_norm:
                    outs.append(norm(x.mean((1, 2))))
                else:
                    outs.append(norm(x).permute(0, 3, 1, 2).contiguous())
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
        if mode and getattr(self, 'deploy_input_size', None) is not None:
            raise RuntimeError('this ParCNetV2 was re-parameterised by switch_to_deploy() and '
                               'is inference-only; build it again to train')
        super().train(mode)
        self._freeze_stages()
        return self

    # ---------------------------------------------------------- deployment
    def switch_to_deploy(self, input_size: Tuple[int, int],
                         merge: Union[str, Sequence[bool]] = 'auto') -> 'ParCNetV2':
        """Fold for inference at ``input_size`` (H, W), in place; see :mod:`.deploy`."""
        from .deploy import deploy_parcnetv2  # deploy imports this module
        return deploy_parcnetv2(self, input_size, merge)

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
