"""The demo's pictures: predictions, overlays, training curves, kernels.

Predictions are drawn by :func:`mmparc.apis.infer` (what ``tools/infer.py``
runs on a user's own images); this module lays them out in grids beside the ground truth, plots
the runs' curves and draws one block's oversized kernels with
:mod:`mmparc.visualization`.  Plain numpy, OpenCV and matplotlib (Agg), so
it runs on a headless CPU machine.
"""
import contextlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from demo.datasets import DataInfo
from demo.jobs import Metric
from demo.report import TARGETS, Records

PathLike = Union[str, Path]
NUM_PICTURES = 8


@dataclass
class Pictures:
    """The files :func:`draw_pictures` wrote."""
    detection: Path
    segmentation: Path
    curves: Path
    kernels: Path
    drawn: Path  # mmparc.apis.infer's output folders


def draw_pictures(data: DataInfo, det_run: Tuple[Path, Path], seg_run: Tuple[Path, Path],
                  runs: Mapping[str, Tuple[Records, Records]],
                  metrics: Mapping[str, Sequence[Metric]], out: Path) -> Pictures:
    """Step 3 of the demo: every picture, into ``out/pictures``.

    ``det_run`` and ``seg_run`` are ``(config, checkpoint)``: the config each
    run saved, since its heads (class count) and data are what the checkpoint
    fits, not the quickstart config's.  ``runs`` holds the records
    (``{title: (train, val)}``).  The inferencers' own output goes to
    ``out/pictures.log``.
    """
    pictures = out / 'pictures'
    pictures.mkdir(parents=True, exist_ok=True)
    det_images = _val_images(data.coco_root / 'val2017', NUM_PICTURES)
    seg_images = _val_images(data.seg_root / 'images' / 'validation', 4)
    print(f'  drawing predictions on {len(det_images)} + {len(seg_images)} val images, '
          'curves and kernels', flush=True)
    with output_to(out / 'pictures.log'):
        det_vis, det_grid = detection_pictures(*det_run, det_images,
                                               out / 'infer' / 'detection', pictures)
        _, seg_grid = segmentation_pictures(
            *seg_run, seg_images, data.seg_root / 'annotations' / 'validation',
            data.seg_palette, out / 'infer' / 'segmentation', pictures)
        add_legend(seg_grid, data.seg_classes, data.seg_palette)
        curves = plot_training_curves(runs, metrics, pictures / 'training_curves.png',
                                      targets=TARGETS)
        kernels = kernel_picture(det_run[1], pictures)
    return Pictures(det_grid, seg_grid, curves, kernels, det_vis.parent.parent)


@contextlib.contextmanager
def output_to(log_file: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors included) to
    ``log_file`` meanwhile: the inferencers' progress bars and warnings would
    bury the demo's own output.  On an error the log's tail is shown."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    failed = False
    try:
        with open(log_file, 'w') as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            except BaseException:
                failed = True
                raise
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        if failed:
            tail = Path(log_file).read_text(errors='replace').splitlines()[-30:]
            print('\n'.join([f'last lines of {log_file}:'] + tail), flush=True)


def _val_images(folder: Path, count: int) -> List[Path]:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in ('.jpg', '.jpeg', '.png'))
    return images[:count]


# --------------------------------------------------------------- predictions
def detection_pictures(config: Path, checkpoint: Path, images: Sequence[Path],
                       infer_dir: Path, out: Path) -> Tuple[Path, Path]:
    """Predictions drawn by :func:`mmparc.apis.infer`, and a grid of them."""
    from mmparc.apis import infer
    vis_dir = infer([str(p) for p in images], str(config), str(checkpoint), str(infer_dir),
                    task='det', score_thr=0.5)
    drawn = [read_rgb(vis_dir / p.name) for p in images]
    grid = tile_images(drawn, columns=4, cell=384, labels=[p.name for p in images])
    return vis_dir, write_rgb(out / 'detection_predictions.jpg', grid)


def segmentation_pictures(config: Path, checkpoint: Path, images: Sequence[Path],
                          ann_dir: Path, palette: Sequence[Sequence[int]],
                          infer_dir: Path, out: Path) -> Tuple[Path, Path]:
    """Predictions by :func:`mmparc.apis.infer`; a grid of image | ground truth | prediction."""
    from mmparc.apis import infer
    vis_dir = infer([str(p) for p in images], str(config), str(checkpoint), str(infer_dir),
                    task='seg')
    cells, labels = [], []
    for path in images:
        image = read_rgb(path)
        truth = cv2.imread(str(ann_dir / f'{path.stem}.png'), cv2.IMREAD_UNCHANGED)
        truth = np.where(truth == 0, 255, truth.astype(np.int64) - 1)  # reduce_zero_label
        pred = cv2.imread(str(infer_dir / 'pred' / f'{path.stem}.png'), cv2.IMREAD_UNCHANGED)
        if pred is None:
            raise FileNotFoundError(f'no prediction for {path.name} in {infer_dir}/pred')
        cells += [image, overlay_labels(image, truth, palette),
                  overlay_labels(image, pred, palette)]
        labels += [path.name, 'ground truth', 'ParCNetV2 + UperNet']
    grid = tile_images(cells, columns=6, cell=256, labels=labels)
    return vis_dir, write_rgb(out / 'segmentation_overlays.jpg', grid)


def legend_strip(classes: Sequence[str], palette: Sequence[Sequence[int]],
                 width: int) -> np.ndarray:
    """A row of colour swatches with class names, for the segmentation grid."""
    strip = np.full((28, width, 3), 255, np.uint8)
    x = 8
    for name, colour in zip(classes, palette):
        cv2.rectangle(strip, (x, 6), (x + 16, 22), tuple(int(c) for c in colour), -1)
        cv2.putText(strip, name, (x + 22, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1,
                    cv2.LINE_AA)
        x += 34 + 9 * len(name)
    return strip


def add_legend(grid_file: Path, classes: Sequence[str],
               palette: Sequence[Sequence[int]]) -> None:
    """Put a :func:`legend_strip` above the picture in ``grid_file``."""
    grid = read_rgb(grid_file)
    write_rgb(grid_file, np.concatenate([legend_strip(classes, palette, grid.shape[1]), grid]))


# ------------------------------------------------------------------- kernels
def kernel_picture(checkpoint: Path, out: Path, stage: int = 1, block: int = 0) -> Path:
    """The learned oversized kernels of one backbone block."""
    import mmparc  # noqa: F401  (its loader reads Runner checkpoints weights-only)
    from mmengine.runner import CheckpointLoader
    from mmparc.visualization import oversized_kernels, plot_oversized_kernels
    # mmengine's loader, as the Runner itself loads checkpoints.
    state = CheckpointLoader.load_checkpoint(str(checkpoint), map_location='cpu')['state_dict']
    kernel_h, kernel_w = oversized_kernels(state, stage, block)
    return plot_oversized_kernels(
        kernel_h, kernel_w, out / 'oversized_kernels.png',
        title=f'Learned oversized kernels, Mask R-CNN backbone stage {stage + 1} block '
              f'{block + 1} ({kernel_h.shape[1]} taps on a '
              f'{(kernel_h.shape[1] + 1) // 2}-high map)')


# -------------------------------------------------------------------- curves
def plot_training_curves(runs: Mapping[str, Tuple[Records, Records]],
                         metrics: Mapping[str, Sequence[Metric]],
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
    from mmparc.visualization import agg_pyplot, save_figure
    plt = agg_pyplot()
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
    return save_figure(fig, out_file)


# --------------------------------------------------------- labels and grids
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
