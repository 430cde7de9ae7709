"""Pictures of the oversized kernels a ParCNetV2 block learned.

Read from a state dict or a model, so a figure can be drawn for any checkpoint
without building the network; plain numpy + matplotlib on the Agg backend, so
it runs on a headless CPU machine.  The quickstart demo (``demo/pictures.py``)
draws one block of its detector with it; ``tools/visualization/vis_kernels.py``
draws the supplement's Fig. 3 and 4 (:func:`plot_kernel_profiles`,
:func:`plot_kernel_products`) for any checkpoint.
"""
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

PathLike = Union[str, Path]

__all__ = ['agg_pyplot', 'kernels_at', 'oversized_kernels', 'plot_kernel_products',
           'plot_kernel_profiles', 'plot_oversized_kernels', 'random_channels',
           'stage_map_size']


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
    return save_figure(fig, out_file)


# --------------------------------------------- the supplement's Fig. 3 and 4
def stage_map_size(input_size: Tuple[int, int], stage: int) -> Tuple[int, int]:
    """``(h, w)`` of a ParCNetV2 stage's maps for an ``(H, W)`` input.

    The stem (``k7 s4 p2``) and the downsamplings (``k3 s2 p1``) of
    :class:`mmparc.models.ParCNetV2` (its ``stage_sizes``, for a model in hand).
    """
    height, width = input_size
    sizes = ((height + 4 - 7) // 4 + 1, (width + 4 - 7) // 4 + 1)
    for _ in range(stage):
        sizes = tuple((s + 2 - 3) // 2 + 1 for s in sizes)
    return sizes


def kernels_at(kernel_h: np.ndarray, kernel_w: np.ndarray, kernel_mode: str,
               map_size: Optional[Tuple[int, int]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The kernels a block applies: as stored (``'fixed'``), or resampled to
    ``2h - 1`` and ``2w - 1`` taps for an ``h x w`` map (``'global'``, by the
    layer's own :func:`mmparc.ops.resample_kernel`)."""
    if kernel_mode == 'fixed':
        return kernel_h, kernel_w
    if kernel_mode != 'global' or map_size is None:
        raise ValueError(f"kernel_mode must be 'fixed', or 'global' with a map size, got "
                         f'{kernel_mode!r} and {map_size!r}')
    from ..ops import resample_kernel
    height, width = map_size
    return (resample_kernel(torch.from_numpy(kernel_h), 2 * height - 1).numpy(),
            resample_kernel(torch.from_numpy(kernel_w), 2 * width - 1).numpy())


def random_channels(num_total: int, num: int, seed: int = 0) -> np.ndarray:
    """``num`` channels drawn at random (sorted), as the supplement's figures show."""
    if num < 1:
        raise ValueError(f'the number of channels to draw must be positive, got {num}')
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_total, size=min(num, num_total), replace=False))


def save_figure(fig, out_file: PathLike, dpi: int = 110) -> Path:
    """Write a matplotlib figure (creating its folder) and close it."""
    plt = agg_pyplot()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, dpi=dpi)
    plt.close(fig)
    return out_file


def plot_kernel_profiles(kernel_h: np.ndarray, kernel_w: np.ndarray, channels: Sequence[int],
                         out_file: PathLike, title: str = '', dpi: int = 100) -> Path:
    """Supplement Fig. 3: the vertical kernels, one column per channel, and the
    horizontal ones, one row per channel (colour: the tap's weight), with the
    same channels' 1-D profiles underneath.  The figure is 12 x 8 inches."""
    plt = agg_pyplot()
    fig = plt.figure(figsize=(12, 8))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.3, 1])
    vertical = kernel_h[channels].T  # (K_h, n): a column per channel
    horizontal = kernel_w[channels]  # (n, K_w): a row per channel
    for col, (data, name) in enumerate(((vertical, '(a) vertical kernels, a column per channel'),
                                        (horizontal, '(b) horizontal kernels, a row per channel'))):
        ax = fig.add_subplot(grid[0, col])
        limit = float(np.abs(data).max()) or 1.0
        image = ax.imshow(data, cmap='RdBu_r', vmin=-limit, vmax=limit, aspect='auto',
                          interpolation='nearest')
        ax.set_title(name, fontsize=10)
        if col == 0:
            ax.set_xticks(range(len(channels)), [str(c) for c in channels], fontsize=6,
                          rotation=90)
            ax.set_ylabel('tap')
        else:
            ax.set_yticks(range(len(channels)), [str(c) for c in channels], fontsize=6)
            ax.set_xlabel('tap')
        fig.colorbar(image, ax=ax, fraction=0.046)
        ax = fig.add_subplot(grid[1, col])
        kernels = kernel_h if col == 0 else kernel_w
        half = kernels.shape[1] // 2
        for c in channels:
            ax.plot(np.arange(-half, half + 1), kernels[c], lw=0.9)
        ax.axhline(0, color='0.6', lw=0.6)
        ax.set_xlabel('offset (taps)')
        ax.set_title(f'{"vertical" if col == 0 else "horizontal"} kernels of the '
                     f'{len(channels)} channels ({kernels.shape[1]} taps)', fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out_file, dpi)


def plot_kernel_products(kernel_h: np.ndarray, kernel_w: np.ndarray, channels: Sequence[int],
                         out_file: PathLike, title: str = '', columns: int = 8,
                         dpi: int = 100) -> Path:
    """Supplement Fig. 4: each channel's oversized kernel as the 2-D kernel it
    equals, ``k_h k_w^T`` (Sec. B), colour symmetric about zero per channel.
    The figure is ``2 * columns`` inches wide, ``2 * rows`` high."""
    plt = agg_pyplot()
    rows = -(-len(channels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for ax, c in zip(axes.flat, channels):
        outer = np.outer(kernel_h[c], kernel_w[c])
        limit = float(np.abs(outer).max()) or 1.0
        ax.imshow(outer, cmap='RdBu_r', vmin=-limit, vmax=limit, interpolation='nearest')
        ax.set_title(f'ch {c}', fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out_file, dpi)
