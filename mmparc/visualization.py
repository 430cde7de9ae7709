"""Pictures of what a ParCNetV2 run learned: curves, kernels, overlays, grids.

Shared by ``tools/demo.py`` and ``tools/infer.py``; plain numpy + matplotlib
(Agg, no display needed) so they run on a headless CPU machine.
"""
import json
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

PathLike = Union[str, Path]
Records = List[Dict[str, float]]

__all__ = [
    'find_scalars', 'read_scalars', 'plot_training_curves', 'oversized_kernels',
    'plot_oversized_kernels', 'colorize_labels', 'overlay_labels', 'tile_images',
]


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display on a CPU server)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


# ----------------------------------------------------------------- curves
def find_scalars(work_dir: PathLike) -> Path:
    """The newest ``<timestamp>/vis_data/scalars.json`` that a Runner wrote."""
    candidates = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    if not candidates:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir}: '
                                'was the run trained with a LocalVisBackend?')
    return candidates[-1]


def read_scalars(path: PathLike) -> Tuple[Records, Records]:
    """Split a Runner's ``scalars.json`` into training and validation records.

    Training records carry ``loss``; validation records are the others (their
    keys are metric names).  ``step`` is the iteration for both.
    """
    train: Records = []
    val: Records = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        (train if 'loss' in record else val).append(record)
    return train, val


def plot_training_curves(runs: Mapping[str, Tuple[Records, Records]],
                         metrics: Mapping[str, Sequence[Tuple[str, str, float]]],
                         out_file: PathLike,
                         targets: Optional[Mapping[str, float]] = None) -> Path:
    """One column per run: total training loss above, validation metrics below.

    The losses are plotted as logged: mmengine's LogProcessor already averages
    them over its window.

    Args:
        runs: ``{title: (train_records, val_records)}``.
        metrics: ``{title: [(metric key, label, scale), ...]}``: what to plot
            per run; ``scale`` brings the logged value to a fraction (mmseg
            logs mIoU in percent, mmdet mAP as a fraction).
        out_file: PNG to write.
        targets: Optional ``{label: value}`` drawn as dashed lines.
    """
    plt = _pyplot()
    targets = targets or {}
    fig, axes = plt.subplots(2, len(runs), figsize=(5.5 * len(runs), 7), squeeze=False)
    for col, (title, (train, val)) in enumerate(runs.items()):
        ax = axes[0, col]
        steps = np.array([r['step'] for r in train if 'loss' in r], dtype=float)
        loss = np.array([r['loss'] for r in train if 'loss' in r], dtype=float)
        last = max([r['step'] for r in train + val], default=1)
        ax.plot(steps, loss, color='tab:blue', lw=2)
        ax.set_xlim(0, last)
        ax.set_title(f'{title}: training loss')
        ax.set_xlabel('iteration')
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax = axes[1, col]
        for i, (key, label, scale) in enumerate(metrics.get(title, ())):
            points = [(r['step'], r[key] * scale) for r in val if key in r]
            if not points:
                continue
            xs, ys = zip(*points)
            colour = f'C{i + 1}'
            ax.plot(xs, ys, 'o-', color=colour, lw=2, label=label)
            if label in targets:
                ax.axhline(targets[label], color=colour, ls='--', lw=1,
                           label=f'target {targets[label]:g}')
        ax.set_title(f'{title}: validation')
        ax.set_xlabel('iteration')
        ax.set_xlim(0, last)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(loc='lower right', fontsize='small')
    fig.tight_layout()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, dpi=110)
    plt.close(fig)
    return out_file


# ----------------------------------------------------------------- kernels
def oversized_kernels(state_dict: Mapping[str, torch.Tensor], stage: int, block: int,
                      prefix: str = 'backbone.') -> Tuple[np.ndarray, np.ndarray]:
    """The ``(C, K)`` vertical and horizontal kernels of one ParCNetV2 block.

    Read from a state dict (a Runner checkpoint's ``state_dict``), so the
    picture can be drawn without building the model.
    """
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
    plt = _pyplot()
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


# ------------------------------------------------------------ segmentation
def colorize_labels(label: np.ndarray, palette: Sequence[Sequence[int]],
                    ignore_index: int = 255) -> np.ndarray:
    """An RGB image of a label map; ignored (and unknown) labels are black."""
    lut = np.zeros((256, 3), np.uint8)
    for i, colour in enumerate(palette[:256]):
        if i != ignore_index:
            lut[i] = colour
    return lut[np.asarray(label, dtype=np.uint8)]


def overlay_labels(image_rgb: np.ndarray, label: np.ndarray,
                   palette: Sequence[Sequence[int]], alpha: float = 0.65,
                   ignore_index: int = 255) -> np.ndarray:
    """``image`` blended with the coloured label map, with class boundaries
    drawn solid so small regions stay visible."""
    colour = colorize_labels(label, palette, ignore_index).astype(np.float32)
    valid = (np.asarray(label) != ignore_index)[..., None]
    blend = np.where(valid, (1 - alpha) * image_rgb + alpha * colour, image_rgb)
    edges = (cv2.Canny(np.asarray(label, np.uint8), 0, 0) > 0) & valid[..., 0]
    blend[edges] = colour[edges]
    return blend.clip(0, 255).astype(np.uint8)


# ------------------------------------------------------------------- grids
def tile_images(images: Sequence[np.ndarray], columns: int,
                labels: Optional[Sequence[str]] = None, cell: Optional[int] = None,
                pad: int = 4, background: int = 255) -> np.ndarray:
    """RGB images in a grid, each scaled to a ``cell``-pixel height (default:
    the tallest), with an optional caption strip above each."""
    if not images:
        raise ValueError('tile_images needs at least one image')
    cell = cell or max(img.shape[0] for img in images)
    scaled = []
    for img in images:
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        scale = cell / img.shape[0]
        interp = cv2.INTER_NEAREST if scale >= 2 else cv2.INTER_AREA
        scaled.append(cv2.resize(img, (max(1, round(img.shape[1] * scale)), cell),
                                 interpolation=interp))
    width = max(img.shape[1] for img in scaled)
    caption = 22 if labels else 0
    rows = math.ceil(len(scaled) / columns)
    canvas = np.full((rows * (cell + caption + pad) + pad,
                      columns * (width + pad) + pad, 3), background, np.uint8)
    for i, img in enumerate(scaled):
        r, c = divmod(i, columns)
        y = pad + r * (cell + caption + pad)
        x = pad + c * (width + pad)
        if labels:
            cv2.putText(canvas, str(labels[i]), (x + 2, y + 16), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, (20, 20, 20), 1, cv2.LINE_AA)
        canvas[y + caption:y + caption + cell, x:x + img.shape[1]] = img
    return canvas


def write_rgb(path: PathLike, image_rgb: np.ndarray) -> Path:
    """Write an RGB array (PNG/JPEG by suffix), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f'could not write {path}')
    return path


def read_rgb(path: PathLike) -> np.ndarray:
    """Read an image file as RGB uint8."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f'could not read image {path}')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
