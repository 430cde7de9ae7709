#!/usr/bin/env python
"""Run a trained ParCNetV2 detector or segmentor on images and draw the results.

Examples::

    python tools/infer.py demo.jpg --config configs/quickstart/mask_rcnn_parcnetv2_toy.py \\
        --checkpoint outputs/demo/detection/iter_1200.pth --out outputs/infer
    python tools/infer.py images/*.jpg --config configs/quickstart/upernet_parcnetv2_toy.py \\
        --checkpoint outputs/demo/segmentation/iter_600.pth

Detection (Mask R-CNN, any mmdet config) goes through mmdet's
``DetInferencer`` and writes ``OUT/vis/<image>`` (boxes, masks, class names,
scores) and ``OUT/preds/<stem>.json``; segmentation (any mmseg config) goes
through mmseg's ``MMSegInferencer`` and writes ``OUT/vis/<image>`` (coloured
overlay) and ``OUT/pred/<stem>.png`` (label indices).  The task is read from
the config's ``default_scope``.
"""
import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

# Notices from building a model for training, which say nothing about inference.
for _message in ('pkg_resources is deprecated', '``build_loss`` would be deprecated',
                 'Default ``avg_non_ignore`` is False', 'Failed to add <class'):
    warnings.filterwarnings('ignore', message=_message)

try:
    import mmparc  # noqa: F401  (registers ParCNetV2)
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import mmparc  # noqa: F401

from mmparc.checkpoint import (check_fits, load_checkpoint_file, shapes_of,  # noqa: E402
                               state_dict_of)
from mmparc.cli import ToolError, run_tool, staged_output_dir  # noqa: E402

TASKS = ('det', 'seg')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def task_of(config) -> str:
    """``'det'`` or ``'seg'`` from a config's ``default_scope``."""
    scope = config.get('default_scope')
    if scope == 'mmdet':
        return 'det'
    if scope == 'mmseg':
        return 'seg'
    raise ValueError(f"cannot tell the task of a config with default_scope={scope!r}; "
                     "pass --task det or --task seg")


def expand_images(paths: Sequence[str]) -> List[str]:
    """Image files from file and folder arguments (folders: their images, sorted)."""
    images: List[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            images += sorted(str(p) for p in path.iterdir()
                             if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            images.append(str(path))
        else:
            raise FileNotFoundError(f'no such image or folder: {path}')
    if not images:
        raise FileNotFoundError(f'no images found in {list(paths)}')
    return images


def check_images(images: Sequence[str]) -> None:
    """Refuse, before any work, a file that does not decode as an image."""
    import mmcv
    for image in images:
        try:
            decoded = mmcv.imfrombytes(Path(image).read_bytes())
        except Exception as err:  # noqa: BLE001  (any decoder failure: not an image)
            raise ToolError(f'{image}: not a readable image ({type(err).__name__})') from None
        if decoded is None or decoded.size == 0:
            raise ToolError(f'{image}: not a readable image')


def infer(images: Sequence[str], config: str, checkpoint: str, out_dir: str,
          task: Optional[str] = None, device: str = 'cpu', score_thr: float = 0.3,
          opacity: float = 0.6) -> Path:
    """Predict and draw ``images``; returns the folder of drawn pictures.

    Args:
        images: Image files.
        config: mmdet or mmseg config of the trained model.
        checkpoint: Runner checkpoint (its meta names the classes).
        out_dir: Output folder (``vis/`` plus ``preds/`` or ``pred/``).
        task: ``'det'`` or ``'seg'``; by default from the config.
        device: ``'cpu'``, ``'cuda'``, ...
        score_thr: Detection: draw instances scoring at least this.
        opacity: Segmentation: overlay opacity.

    Everything is checked before the first prediction (the images decode,
    the checkpoint loads and fits the config's model exactly), and the
    outputs move into ``out_dir`` only once every image is done.

    Raises:
        ToolError, CheckpointError, FileNotFoundError: bad input, with a
            one-line message naming the file.
    """
    from mmengine.config import Config
    if not Path(config).is_file():
        raise ToolError(f'{config}: config file not found')
    cfg = Config.fromfile(config)
    task = task or task_of(cfg)
    if task not in TASKS:
        raise ValueError(f'task must be one of {TASKS}, got {task!r}')
    check_images(images)
    state = state_dict_of(load_checkpoint_file(checkpoint), checkpoint)
    if task == 'det':
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device,
                                   show_progress=False)
    else:
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model=cfg, weights=checkpoint, device=device)
    # The inferencers load whatever keys match and leave the rest random;
    # predictions from such a model are noise, so refuse the checkpoint.
    check_fits(shapes_of(inferencer.model), state, checkpoint, f'the model of {config}')
    with staged_output_dir(out_dir) as stage:
        if task == 'det':
            inferencer(list(images), out_dir=str(stage), pred_score_thr=score_thr,
                       no_save_pred=False)
        else:
            inferencer(list(images), out_dir=str(stage), img_out_dir='vis',
                       pred_out_dir='pred', opacity=opacity)
            # mmseg numbers its label maps (00000000_pred.png, ...) in input
            # order; name them after their images so they can be found again.
            pred_dir = stage / 'pred'
            for index, image in enumerate(images):
                numbered = pred_dir / f'{index:08d}_pred.png'
                if not numbered.is_file():
                    raise FileNotFoundError(f'mmseg wrote no prediction {numbered} for {image}')
                numbered.replace(pred_dir / f'{Path(image).stem}.png')
    return Path(out_dir) / 'vis'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('images', nargs='+', help='image files or folders of images')
    parser.add_argument('--config', required=True, help='mmdet or mmseg config')
    parser.add_argument('--checkpoint', required=True, help='trained checkpoint (.pth)')
    parser.add_argument('--out', default='outputs/infer', help='output folder')
    parser.add_argument('--task', choices=TASKS, default=None,
                        help="default: from the config's default_scope")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: lowest score drawn')
    parser.add_argument('--opacity', type=float, default=0.6,
                        help='segmentation: overlay opacity')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    images = expand_images(args.images)
    start = time.time()
    vis_dir = infer(images, args.config, args.checkpoint, args.out, task=args.task,
                    device=args.device, score_thr=args.score_thr, opacity=args.opacity)
    print(f'{len(images)} image(s) in {time.time() - start:.1f}s; pictures in {vis_dir}/')
    return 0


if __name__ == '__main__':
    run_tool(main)
