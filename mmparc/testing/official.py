"""A functional re-statement of the official ParCNetV2 computation.

Written from the paper and the official release's behaviour, independently
of :mod:`mmparc.models`: plain NCHW tensors, every 1x1 convolution and
linear layer as ``conv2d``, each oversized 1-D kernel applied by direct
``conv2d``, and the official norm (centred vector over its L2 length).  It
reads state dicts in the official key layout and also serves as the
"official formulation" in ``tools/analysis_tools/benchmark.py``.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

ARCHS = {
    'xt': ([3, 3, 9, 2], [48, 96, 192, 320]),
    't': ([3, 3, 12, 3], [64, 128, 320, 512]),
    's': ([3, 9, 24, 3], [64, 128, 320, 512]),
    'b': ([3, 9, 24, 3], [96, 192, 384, 576]),
}
KERNELS_224 = [111, 55, 27, 13]


def l2_norm(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
            eps: float = 1e-6) -> torch.Tensor:
    """Official LayerNormGeneral over the channel dim of an NCHW tensor."""
    centred = x - x.mean(1, keepdim=True)
    denom = (centred * centred).sum(1, keepdim=True).sqrt().clamp_min(eps)
    out = centred / denom * weight.view(1, -1, 1, 1)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def oversized(x: torch.Tensor, weight_h: torch.Tensor, weight_w: torch.Tensor,
              interpolate: bool) -> torch.Tensor:
    channels, height, width = x.shape[1:]
    if interpolate:
        weight_h = F.interpolate(weight_h, [2 * height - 1, 1], mode='bilinear', align_corners=True)
        weight_w = F.interpolate(weight_w, [1, 2 * width - 1], mode='bilinear', align_corners=True)
    x = F.conv2d(x, weight_h, padding=(weight_h.shape[2] // 2, 0), groups=channels)
    return F.conv2d(x, weight_w, padding=(0, weight_w.shape[3] // 2), groups=channels)


def _as_conv(weight: torch.Tensor) -> torch.Tensor:
    return weight if weight.dim() == 4 else weight[:, :, None, None]


def block(sd: Dict[str, torch.Tensor], p: str, x: torch.Tensor, interpolate: bool) -> torch.Tensor:
    channels = x.shape[1]
    y = l2_norm(x, sd[p + 'norm1.weight'])
    y = F.conv2d(y, sd[p + 'token_mixer.pwconv1.weight'], sd[p + 'token_mixer.pwconv1.bias'])
    gate, value = y[:, :channels], y[:, channels:]
    value = F.gelu(value)
    value = (oversized(value, sd[p + 'token_mixer.dwconv1.conv_h.weight'],
                       sd[p + 'token_mixer.dwconv1.conv_w.weight'], interpolate)
             + F.conv2d(value, sd[p + 'token_mixer.dwconv2.weight'], padding=3, groups=channels))
    y = F.conv2d(gate * value, sd[p + 'token_mixer.pwconv2.weight'])
    if p + 'res_scale1.scale' in sd:
        x = x * sd[p + 'res_scale1.scale'].view(1, -1, 1, 1)
    x = x + y
    y = l2_norm(x, sd[p + 'norm2.weight'])
    y = F.conv2d(y, _as_conv(sd[p + 'mlp.fc1.weight']), sd[p + 'mlp.fc1.bias'])
    half = y.shape[1] // 2
    y = F.conv2d(y[:, :half] * F.gelu(y[:, half:]), _as_conv(sd[p + 'mlp.fc2.weight']))
    if p + 'res_scale2.scale' in sd:
        x = x * sd[p + 'res_scale2.scale'].view(1, -1, 1, 1)
    return x + y


def features(sd: Dict[str, torch.Tensor], x: torch.Tensor, depths: Sequence[int],
             interpolate: bool = False, prefix: str = '') -> List[torch.Tensor]:
    """Stage outputs (before any output norm), NCHW."""
    outs = []
    for i, depth in enumerate(depths):
        p = f'{prefix}downsample_layers.{i}.'
        if i == 0:
            x = F.conv2d(x, sd[p + 'conv.weight'], sd[p + 'conv.bias'], stride=4, padding=2)
            x = l2_norm(x, sd[p + 'post_norm.weight'])
        else:
            x = l2_norm(x, sd[p + 'pre_norm.weight'])
            x = F.conv2d(x, sd[p + 'conv.weight'], sd[p + 'conv.bias'], stride=2, padding=1)
        for j in range(depth):
            x = block(sd, f'{prefix}stages.{i}.{j}.', x, interpolate)
        outs.append(x)
    return outs


def classify(sd: Dict[str, torch.Tensor], x: torch.Tensor, depths: Sequence[int],
             interpolate: bool = False) -> torch.Tensor:
    """Logits of the official classifier (``norm`` = nn.LayerNorm, ``head`` = Linear)."""
    pooled = features(sd, x, depths, interpolate)[-1].mean((2, 3))
    pooled = F.layer_norm(pooled, pooled.shape[1:], sd['norm.weight'], sd['norm.bias'], eps=1e-6)
    return F.linear(pooled, sd['head.weight'], sd['head.bias'])


def dense(sd: Dict[str, torch.Tensor], x: torch.Tensor, depths: Sequence[int],
          out_indices: Sequence[int], interpolate: bool = False,
          prefix: str = 'backbone.') -> Tuple[torch.Tensor, ...]:
    """Outputs of the official det/seg backbone (per-output L2 norms ``norm{i}``)."""
    stage_outs = features(sd, x, depths, interpolate, prefix)
    return tuple(l2_norm(stage_outs[i], sd[f'{prefix}norm{i}.weight']) for i in out_indices)


def random_official_state_dict(arch: str, num_classes: int = 1000, dense_prefix: Optional[str] = None,
                               kernel_sizes: Sequence[int] = KERNELS_224,
                               seed: int = 0) -> Dict[str, torch.Tensor]:
    """A checkpoint in the official layout with random, non-trivial values.

    ``dense_prefix=None`` gives an ImageNet classifier checkpoint; a prefix
    (``'backbone.'``) gives the backbone part of an official det/seg
    checkpoint, with per-output norms ``norm0..3``.
    """
    depths, dims = ARCHS[arch]
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.05, offset=0.0):
        return torch.randn(*shape, generator=gen) * scale + offset

    p = dense_prefix or ''
    sd = {}
    chans = [3] + dims
    for i in range(4):
        d = f'{p}downsample_layers.{i}.'
        k = 7 if i == 0 else 3
        sd[d + 'conv.weight'] = rand(chans[i + 1], chans[i], k, k, scale=0.1)
        sd[d + 'conv.bias'] = rand(chans[i + 1])
        sd[d + ('post_norm.weight' if i == 0 else 'pre_norm.weight')] = rand(
            chans[i + 1] if i == 0 else chans[i], scale=1.0, offset=4.0)
        c = dims[i]
        for j in range(depths[i]):
            b = f'{p}stages.{i}.{j}.'
            sd[b + 'norm1.weight'] = rand(c, scale=1.0, offset=4.0)
            sd[b + 'token_mixer.pwconv1.weight'] = rand(2 * c, c, 1, 1, scale=0.2)
            sd[b + 'token_mixer.pwconv1.bias'] = rand(2 * c)
            sd[b + 'token_mixer.dwconv1.conv_h.weight'] = rand(c, 1, kernel_sizes[i], 1, scale=0.1)
            sd[b + 'token_mixer.dwconv1.conv_w.weight'] = rand(c, 1, 1, kernel_sizes[i], scale=0.1)
            sd[b + 'token_mixer.dwconv2.weight'] = rand(c, 1, 7, 7, scale=0.1)
            sd[b + 'token_mixer.pwconv2.weight'] = rand(c, c, 1, 1, scale=0.1)
            sd[b + 'norm2.weight'] = rand(c, scale=1.0, offset=4.0)
            sd[b + 'mlp.fc1.weight'] = rand(5 * c, c, scale=0.2)
            sd[b + 'mlp.fc1.bias'] = rand(5 * c)
            sd[b + 'mlp.fc2.weight'] = rand(c, 5 * c // 2, scale=0.05)
            if i >= 2:
                sd[b + 'res_scale1.scale'] = rand(c, scale=0.1, offset=1.0)
                sd[b + 'res_scale2.scale'] = rand(c, scale=0.1, offset=1.0)
    if dense_prefix is None:
        sd['norm.weight'] = rand(dims[-1], scale=0.1, offset=1.0)
        sd['norm.bias'] = rand(dims[-1])
        sd['head.weight'] = rand(num_classes, dims[-1])
        sd['head.bias'] = rand(num_classes)
    else:
        for i in range(4):
            sd[f'{p}norm{i}.weight'] = rand(dims[i], scale=1.0, offset=4.0)
    return sd
