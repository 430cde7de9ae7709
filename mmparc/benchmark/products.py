"""Each 1x1 layer's op of the backbone, with its products on oneDNN and on BLAS.

The op is called as the model calls it in inference (inputs laid out as
the model gives them, at 224 b1 and 800x1216 b1), once with
:func:`mmparc.ops.matmul.set_linear_backend` forcing ``'onednn'`` and once
forcing ``'blas'`` (``F.linear``/``addmm``, what ``nn.Linear``, hence
ConvNeXt's MLPs, use), interleaved; the ``auto`` column is what the
calibration chose for the layer's product on this machine.
"""
import statistics
from typing import Callable, Dict, List, Tuple

import torch

from .timing import CONFIGS, Clock


def product_shapes(arch: str, height: int, width: int) -> List[Tuple[str, int, int, int]]:
    """``(name, rows, in, out)`` of every distinct 1x1 layer of the backbone.

    Read off the model itself: its map sizes (``stage_sizes``) and the first
    block's layers of each stage.
    """
    from mmparc.models import ParCNetV2
    model = ParCNetV2(arch)
    shapes = []
    for i, ((h, w), stage) in enumerate(zip(model.stage_sizes((height, width)), model.stages)):
        block = stage[0]
        for name, layer in (('pwconv1', block.token_mixer.pwconv1),
                            ('pwconv2', block.token_mixer.pwconv2),
                            ('fc1', block.mlp.fc1), ('fc2', block.mlp.fc2)):
            shapes.append((f'stage {i} {name}', h * w, layer.in_channels, layer.out_channels))
    return shapes


def layer_call(name: str, rows: int, fan_in: int, fan_out: int) -> Callable[[], torch.Tensor]:
    """The op call one 1x1 layer makes in inference, on inputs laid out as the model's."""
    from mmparc.ops import gated_projection, pointwise_conv2d
    weight, bias = torch.randn(fan_out, fan_in) / fan_in**0.5, torch.randn(fan_out)
    pixels = torch.randn(1, rows, 1, fan_in).permute(0, 3, 1, 2)  # channels-last NCHW
    if name.endswith('pwconv1'):  # channel-major output, for the oversized convolution
        return lambda: pointwise_conv2d(pixels, weight, bias, channel_major=True)
    if name.endswith('fc1'):  # channels-last rows
        return lambda: pointwise_conv2d(pixels, weight, bias, channel_major=False)
    if name.endswith('pwconv2'):  # channel-major value and gate, from the mixer
        value, gate = torch.randn(2, fan_in, 1, rows, 1).unbind(0)
        value, gate = value.transpose(0, 1), gate.transpose(0, 1)
        return lambda: gated_projection(value, gate, weight, False)
    hidden = torch.randn(1, rows, 1, 2 * fan_in).permute(0, 3, 1, 2)  # fc1's output
    value, gate = hidden.split(fan_in, dim=1)
    return lambda: gated_projection(value, gate, weight, True)


def time_products(arch: str, clock: Clock) -> List[dict]:
    """Median time of each 1x1 layer's op with its products on oneDNN and on BLAS."""
    from mmparc.ops import matmul
    rows_out = []
    previous = matmul._override
    try:
        for config, _, height, width, _ in (CONFIGS[0], CONFIGS[2]):
            for name, rows, fan_in, fan_out in product_shapes(arch, height, width):
                call = layer_call(name, rows, fan_in, fan_out)
                repeats = max(3, min(30, int(2e8 // (rows * fan_in * fan_out))))
                times: Dict[str, List[float]] = {'onednn': [], 'blas': []}
                with torch.inference_mode():
                    onednn = matmul.onednn_applies(torch.empty(1, fan_in),
                                                   torch.empty(fan_out, fan_in), None)
                    matmul.set_linear_backend('auto')
                    before = set(matmul.calibration())
                    call()
                    chosen = {v['choice'] for k, v in matmul.calibration().items()
                              if k not in before}
                    for _ in range(repeats + 1):
                        for key in times:
                            matmul.set_linear_backend(key)
                            start = clock()
                            call()
                            times[key].append(clock() - start)
                med = {k: statistics.median(v[1:]) * 1000 for k, v in times.items()}
                rows_out.append({'config': config, 'layer': name, 'rows': rows, 'in': fan_in,
                                 'out': fan_out, 'onednn': onednn,
                                 'auto': '/'.join(sorted(chosen)) or 'earlier',
                                 'onednn_ms': med['onednn'], 'blas_ms': med['blas']})
    finally:
        matmul.set_linear_backend(previous)
    return rows_out


def products_table(rows: List[dict]) -> str:
    lines = [f"{'config':<13} {'layer':<16} {'rows x in -> out':>20} {'oneDNN ms':>10} "
             f"{'BLAS ms':>9} {'ratio':>6} {'auto':>7}"]
    for r in rows:
        lines.append(f"{r['config']:<13} {r['layer']:<16} "
                     f"{r['rows']:>9} x {r['in']:>3} -> {r['out']:>4} {r['onednn_ms']:>10.3f} "
                     f"{r['blas_ms']:>9.3f} {r['onednn_ms'] / r['blas_ms']:>5.2f}x "
                     f"{r['auto']:>7}")
    total = sum(r['onednn_ms'] for r in rows) / sum(r['blas_ms'] for r in rows)
    ratios = sorted(r['onednn_ms'] / r['blas_ms'] for r in rows)
    lines.append(f"oneDNN {'ran' if all(r['onednn'] for r in rows) else 'did NOT run'}; "
                 f'oneDNN / BLAS per layer {ratios[0]:.2f}x-{ratios[-1]:.2f}x, '
                 f'summed over the table {total:.2f}x')
    return '\n'.join(lines)
