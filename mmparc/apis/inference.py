"""Run a trained ParCNetV2 detector or segmentor on images and draw the results.

Detection (Mask R-CNN, any mmdet config) goes through mmdet's
``DetInferencer`` and writes ``OUT/vis/<image>`` (boxes, masks, class names,
scores) and ``OUT/preds/<stem>.json``; segmentation (any mmseg config) goes
through mmseg's ``MMSegInferencer`` and writes ``OUT/vis/<image>`` (coloured
overlay) and ``OUT/pred/<stem>.png`` (label indices).  The task is read from
the config's ``default_scope``.

Inputs are untrusted: only regular files are read (a FIFO or a link to
``/dev/zero`` named ``a.jpg`` is refused, not read), at most
``MAX_IMAGE_BYTES`` each, and an image's size is read from its header and
bounded by ``MAX_IMAGE_PIXELS`` before it is decoded.  The checkpoint loads
through :func:`mmparc.checkpoint.load_checkpoint_file`, must fit the
config's model key for key, and its ``dataset_meta`` must name as many
classes as the model's head predicts (else the labels drawn would be wrong).
"""
import io
import os
import stat
from pathlib import Path
from typing import Any, List, Optional, Sequence

from ..checkpoint import check_fits, load_checkpoint_file, shapes_of, state_dict_of
from ..fileio import ToolError, open_regular_file, staged_output_dir

__all__ = ['TASKS', 'IMAGE_SUFFIXES', 'MAX_IMAGE_BYTES', 'MAX_IMAGE_PIXELS', 'task_of',
           'expand_images', 'check_images', 'check_dataset_meta', 'infer']

TASKS = ('det', 'seg')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: Largest image file read, and most pixels decoded (a 8000 x 6000 photo is 48 M).
MAX_IMAGE_BYTES = 256 << 20
MAX_IMAGE_PIXELS = 64_000_000


def task_of(config: Any) -> str:
    """``'det'`` or ``'seg'`` from a config's ``default_scope``."""
    scope = config.get('default_scope')
    if scope == 'mmdet':
        return 'det'
    if scope == 'mmseg':
        return 'seg'
    raise ValueError(f"cannot tell the task of a config with default_scope={scope!r}; "
                     "pass --task det or --task seg")


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def expand_images(paths: Sequence[str]) -> List[str]:
    """Image files from file and folder arguments (folders: their images, sorted).

    Anything named like an image that is not a regular file (a FIFO, a device,
    a link to one) is refused, not skipped.
    """
    images: List[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            found = [path]
        else:
            raise FileNotFoundError(f'no such image or folder: {path}')
        for image in found:
            if not _is_regular(image):
                raise ToolError(f'{image}: not a regular file (a folder, device, FIFO or '
                                'socket); only image files are read')
            images.append(str(image))
    if not images:
        raise FileNotFoundError(f'no images found in {list(paths)}')
    return images


def _pixels(data: bytes, image: str, max_pixels: int) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` (nothing decoded)."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            width, height = header.size
    except Image.DecompressionBombError:
        raise ToolError(f'{image}: more than {max_pixels} pixels') from None
    except Exception as err:  # noqa: BLE001  (any header error: not an image)
        raise ToolError(f'{image}: not a readable image ({type(err).__name__})') from None
    if width * height > max_pixels:
        raise ToolError(f'{image}: {width}x{height} pixels, more than the {max_pixels} '
                        'decoded')


def check_images(images: Sequence[str], max_pixels: int = MAX_IMAGE_PIXELS,
                 max_bytes: int = MAX_IMAGE_BYTES) -> None:
    """Refuse, before any work, a file that is not a regular file, is too large, or does
    not decode as an image."""
    import mmcv
    for image in images:
        data = open_regular_file(image, max_bytes)
        _pixels(data, image, max_pixels)
        try:
            decoded = mmcv.imfrombytes(data)
        except Exception as err:  # noqa: BLE001  (any decoder failure: not an image)
            raise ToolError(f'{image}: not a readable image ({type(err).__name__})') from None
        if decoded is None or decoded.size == 0:
            raise ToolError(f'{image}: not a readable image')


def _head_classes(model: Any, task: str) -> Optional[int]:
    """How many classes the model's head predicts (``None`` if it has no such head)."""
    if task == 'seg':
        head = getattr(model, 'decode_head', None)
        return getattr(head, 'num_classes', None)
    roi = getattr(model, 'roi_head', None)
    heads = getattr(roi, 'bbox_head', None) if roi is not None else \
        getattr(model, 'bbox_head', None)
    from torch import nn
    heads = list(heads) if isinstance(heads, nn.ModuleList) else [heads]  # Cascade: stages
    counts = {getattr(h, 'num_classes', None) for h in heads} - {None}
    return counts.pop() if len(counts) == 1 else None


def check_dataset_meta(model: Any, task: str, checkpoint: str, config: str) -> None:
    """Refuse class names (from the checkpoint's ``dataset_meta``, or the inferencer's
    default) that do not fit the model's head one for one."""
    meta = getattr(model, 'dataset_meta', None) or {}
    classes = meta.get('classes')
    count = _head_classes(model, task)
    if classes is None or count is None:
        return
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise ToolError(f'{checkpoint}: its dataset_meta classes are not a list of names')
    if len(classes) != count:
        raise ToolError(f'{checkpoint}: its dataset_meta names {len(classes)} classes, the '
                        f'model of {config} predicts {count}; the labels would be wrong')
    palette = meta.get('palette')
    if palette is not None and (not isinstance(palette, (list, tuple))
                                or len(palette) < len(classes) or not all(
                                    isinstance(c, (list, tuple)) and len(c) == 3
                                    and all(isinstance(v, int) and 0 <= v < 256 for v in c)
                                    for c in palette)):
        raise ToolError(f'{checkpoint}: its dataset_meta palette is not one RGB colour '
                        'per class')


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
    the checkpoint loads, fits the config's model exactly and names its
    classes), and the outputs move into ``out_dir`` only once every image
    is done.

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
    check_dataset_meta(inferencer.model, task, checkpoint, config)
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
