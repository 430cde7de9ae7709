"""Pictures of the oversized kernels a ParCNetV2 block learned.

Read from a state dict or a model, so a figure can be drawn for any checkpoint
without building the network; plain numpy + matplotlib on the Agg backend, so
it runs on a headless CPU machine.  The quickstart demo (``demo/pictures.py``)
draws one block of its detector with it.
"""
from pathlib import Path
from typing import Mapping, Tuple, Union

import numpy as np
import torch

PathLike = Union[str, Path]

__all__ = ['agg_pyplot', 'oversized_kernels', 'plot_oversized_kernels']


def agg_pyplot():
    """matplotlib's pyplot on the Agg backend (no display on a CPU server)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def oversized_kernels(weights: Union[Mapping[str, torch.Tensor], torch.nn.Module], stage: int,
                      block: int, prefix: str = 'backbone.') -> Tuple[np.ndarray, np.ndarray]:
    """The ``(C, K)`` vertical and horizontal kernels of one ParCNetV2 block.

    Args:
        weights: A state dict (e.g. a Runner checkpoint's ``state_dict``) or a
            model, whose ``state_dict()`` is read.
        stage, block: 0-based indices of the block.
        prefix: The backbone's key prefix: ``'backbone.'`` in a detector or
            segmentor, ``''`` for a bare ``ParCNetV2``.
    """
    state_dict = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    base = f'{prefix}stages.{stage}.{block}.token_mixer.dwconv1'
    try:
        kernel_h = state_dict[f'{base}.conv_h.weight']
        kernel_w = state_dict[f'{base}.conv_w.weight']
    except KeyError as err:
        raise KeyError(f'no oversized kernels at {base} in this state dict '
                       f'(stage {stage}, block {block})') from err
    return (kernel_h.detach().float().flatten(1).cpu().numpy(),
            kernel_w.detach().float().flatten(1).cpu().numpy())


def plot_oversized_kernels(kernel_h: np.ndarray, kernel_w: np.ndarray, out_file: PathLike,
                           num_channels: int = 6, title: str = '') -> Path:
    """Vertical and horizontal kernels of a few channels and their 2-D product.

    As in the supplementary material's kernel figures: the oversized
    convolution applies ``k_h`` along H, then ``k_w`` along W, which equals
    one 2-D depthwise kernel ``k_h k_w^T``.  The channels with the largest
    2-D kernel energy are shown; colour maps are symmetric about zero.
    """
    plt = agg_pyplot()
    if kernel_h.ndim != 2 or kernel_h.shape[0] != kernel_w.shape[0]:
        raise ValueError(f'expected (C, K) kernels with equal C, got {kernel_h.shape} '
                         f'and {kernel_w.shape}')
    energy = np.linalg.norm(kernel_h, axis=1) * np.linalg.norm(kernel_w, axis=1)
    channels = np.argsort(-energy)[:max(1, min(num_channels, len(energy)))]
    n = len(channels)
    fig, axes = plt.subplots(3, n, figsize=(2.6 * n, 7.4), squeeze=False,
                             gridspec_kw=dict(height_ratios=[1, 1, 2.2]))
    half_h, half_w = kernel_h.shape[1] // 2, kernel_w.shape[1] // 2
    taps_h = np.arange(-half_h, half_h + 1)
    taps_w = np.arange(-half_w, half_w + 1)
    for col, c in enumerate(channels):
        kh, kw = kernel_h[c], kernel_w[c]
        for row, (taps, kernel, name, colour) in enumerate(
                ((taps_h, kh, 'vertical $k_h$', 'tab:red'),
                 (taps_w, kw, 'horizontal $k_w$', 'tab:blue'))):
            ax = axes[row, col]
            ax.axhline(0, color='0.7', lw=0.8)
            ax.plot(taps, kernel, color=colour, lw=1.5)
            ax.set_title(f'ch {c}: {name}', fontsize=9)
            ax.tick_params(labelsize=7)
        outer = np.outer(kh, kw)
        limit = float(np.abs(outer).max()) or 1.0
        ax = axes[2, col]
        ax.imshow(outer, cmap='RdBu_r', vmin=-limit, vmax=limit,
                  extent=(-half_w - 0.5, half_w + 0.5, half_h + 0.5, -half_h - 0.5))
        ax.set_title(f'ch {c}: $k_h k_w^T$ ({len(kh)}x{len(kw)})', fontsize=9)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file
