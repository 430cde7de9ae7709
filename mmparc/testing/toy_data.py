"""Tiny synthetic datasets in the on-disk formats mmdet, mmseg and mmpretrain read.

Three generators, each deterministic given ``seed``:

* :func:`make_coco_instances` -- COCO instance segmentation
  (``train2017/``, ``val2017/``, ``annotations/instances_{train,val}2017.json``)
  with polygon or RLE masks, occlusion, clutter and the odd crowd region.
* :func:`make_ade20k` -- ADE20K-style semantic segmentation
  (``images/{training,validation}/*.jpg`` and ``annotations/.../*.png``, where
  label 0 is "other" and is ignored under ``reduce_zero_label=True``).
* :func:`make_imagenet` -- ImageNet folder layout
  (``{train,val}/<class>/*.JPEG``) plus ``meta/{train,val}.txt`` annotation
  files, the format mmpretrain's ``ImageNet`` dataset picks up for
  ``split='train'`` / ``'val'``.

The objects are filled shapes of distinct geometry, colour and size range
(circles, squares, triangles) on smooth noisy backgrounds with unannotated
clutter, so that a detector or segmenter trained on a few hundred images
learns them.  Every image is drawn from its own random stream
(``seed, split, index``), so the validation images do not depend on
``num_train`` and the output does not depend on the order of generation.
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = [
    'ADE_CLASSES', 'COCO_CLASSES', 'IMAGENET_CLASSES', 'ToyDataset', 'make_ade20k',
    'make_coco_instances', 'make_imagenet', 'mask_to_rle',
]

Size = Union[int, Sequence[int]]
PathLike = Union[str, Path]

#: Object shapes and their mean colours (RGB); each object's colour is
#: jittered around its class colour.
SHAPE_COLOURS: Dict[str, Tuple[int, int, int]] = {
    'circle': (220, 50, 40),     # red
    'square': (40, 180, 60),     # green
    'triangle': (50, 80, 220),   # blue
}
#: Size range per shape, as a fraction of ``min(H, W)`` of the shape's radius
#: (circle radius, half the square's side, triangle circumradius).
SHAPE_SIZES: Dict[str, Tuple[float, float]] = {
    'circle': (0.05, 0.11),      # mean area ~0.021 min(H, W)^2
    'square': (0.09, 0.15),      # ~0.058
    'triangle': (0.20, 0.30),    # ~0.083
}

COCO_CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle')
#: COCO category ids of :data:`COCO_CLASSES` (1-based, as in COCO).
COCO_CATEGORY_IDS: Tuple[int, ...] = (1, 2, 3)

#: ADE-style classes; pixel value ``i + 1`` in the PNGs is ``ADE_CLASSES[i]``
#: and pixel value 0 is "other" (clutter), ignored with ``reduce_zero_label``.
ADE_CLASSES: Tuple[str, ...] = ('sky', 'ground', 'circle', 'square', 'triangle')

#: ImageNet-style classes: shape x colour.  Folder names start with the class
#: index so that their sorted order is the label order.
_IMAGENET_COLOURS: Dict[str, Tuple[int, int, int]] = {
    'red': (220, 50, 40), 'green': (40, 180, 60), 'blue': (50, 80, 220),
    'yellow': (230, 200, 40),
}
IMAGENET_CLASSES: Tuple[str, ...] = tuple(
    f'{shape}_{colour}' for colour in ('red', 'green', 'blue', 'yellow')
    for shape in ('circle', 'square', 'triangle'))

_SPLIT_IDS = {'train': 0, 'val': 1}


@dataclass
class ToyDataset:
    """What a generator wrote.

    Attributes:
        root: Dataset root directory.
        kind: ``'coco'``, ``'ade'`` or ``'imagenet'``.
        classes: Class names, in label order.
        num_train: Number of training images.
        num_val: Number of validation images.
        files: Notable files (annotation files, split directories) by name.
    """
    root: Path
    kind: str
    classes: Tuple[str, ...]
    num_train: int
    num_val: int
    files: Dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------- helpers
def _parse_size(image_size: Size) -> Tuple[int, int]:
    if isinstance(image_size, (int, np.integer)):
        h = w = int(image_size)
    else:
        if len(image_size) != 2:
            raise ValueError(f'image_size must be an int or (H, W), got {image_size!r}')
        h, w = (int(v) for v in image_size)
    if h < 16 or w < 16:
        raise ValueError(f'image_size must be at least 16x16, got {(h, w)}')
    return h, w


def _check_counts(num_train: int, num_val: int) -> None:
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f'{name} must be a non-negative int, got {value!r}')
    if num_train + num_val == 0:
        raise ValueError('num_train + num_val must be positive')


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    """An independent random stream per image."""
    return np.random.default_rng([int(seed), _SPLIT_IDS[split], int(index)])


def _background(rng: np.random.Generator, h: int, w: int,
                low: int = 70, high: int = 190) -> np.ndarray:
    """A smooth gradient between two low-saturation colours, with mild noise
    (uint8 RGB); low saturation keeps the coloured objects distinct."""
    c0 = (rng.integers(low, high) + rng.integers(-20, 21, 3)).astype(np.float32)
    c1 = (rng.integers(low, high) + rng.integers(-20, 21, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * xx / max(w - 1, 1) + np.sin(angle) * yy / max(h - 1, 1))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    return _add_noise(rng, img, 6.0)


def _add_noise(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    noise = rng.standard_normal(img.shape, dtype=np.float32) * sigma
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _jitter_colour(rng: np.random.Generator, colour: Sequence[int],
                   amount: int = 25) -> Tuple[int, ...]:
    c = np.asarray(colour) + rng.integers(-amount, amount + 1, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _shape_polygon(shape: str, cx: float, cy: float, radius: float,
                   angle: float) -> Optional[np.ndarray]:
    """Vertices (N, 2) of a square or triangle; ``None`` for a circle."""
    if shape == 'circle':
        return None
    n = 4 if shape == 'square' else 3
    # A square's "radius" is half its side: vertices lie at radius * sqrt(2).
    r = radius * math.sqrt(2) if shape == 'square' else radius
    theta = angle + np.arange(n) * 2 * math.pi / n
    return np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], axis=1)


def _draw_shape(canvas: np.ndarray, shape: str, cx: float, cy: float, radius: float,
                angle: float, value) -> None:
    """Fill a shape on ``canvas`` (in place) with ``value``."""
    poly = _shape_polygon(shape, cx, cy, radius, angle)
    if poly is None:
        cv2.circle(canvas, (int(round(cx)), int(round(cy))), max(int(round(radius)), 1),
                   value, thickness=-1, lineType=cv2.LINE_8)
    else:
        cv2.fillPoly(canvas, [np.round(poly).astype(np.int32)], value, lineType=cv2.LINE_8)


def _shape_mask(h: int, w: int, shape: str, cx: float, cy: float, radius: float,
                angle: float) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    _draw_shape(mask, shape, cx, cy, radius, angle, 1)
    return mask.astype(bool)


def _random_shape_params(rng: np.random.Generator, shape: str, h: int, w: int,
                         scale: float = 1.0) -> Tuple[float, float, float, float]:
    lo, hi = SHAPE_SIZES[shape]
    radius = rng.uniform(lo, hi) * min(h, w) * scale
    margin = 0.6 * radius
    cx = rng.uniform(margin, w - margin)
    cy = rng.uniform(margin, h - margin)
    angle = rng.uniform(0, 2 * math.pi)
    return cx, cy, max(radius, 2.0), angle


def _draw_clutter(rng: np.random.Generator, img: np.ndarray, n: int,
                  label: Optional[np.ndarray] = None, label_value: int = 0) -> None:
    """Unannotated distractors: thin lines and small dull blobs."""
    h, w = img.shape[:2]
    for _ in range(n):
        grey = int(rng.integers(40, 220))
        colour = tuple(int(np.clip(grey + d, 0, 255)) for d in rng.integers(-20, 21, 3))
        thickness = int(rng.integers(1, max(2, min(h, w) // 64) + 1))
        if rng.random() < 0.6:
            p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, p0, p1, colour, thickness)
            if label is not None:
                cv2.line(label, p0, p1, label_value, thickness)
        else:
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(1, max(2, min(h, w) // 20) + 1)),
                    int(rng.integers(1, max(2, min(h, w) // 40) + 1)))
            ang = float(rng.uniform(0, 180))
            cv2.ellipse(img, centre, axes, ang, 0, 360, colour, -1)
            if label is not None:
                cv2.ellipse(label, centre, axes, ang, 0, 360, label_value, -1)


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int = 92) -> None:
    ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f'could not write {path}')


def _write_png(path: Path, label: np.ndarray) -> None:
    if not cv2.imwrite(str(path), label):
        raise OSError(f'could not write {path}')


# ----------------------------------------------------------------------- RLE
def _run_lengths(mask: np.ndarray) -> List[int]:
    """COCO run lengths: column-major, starting with a run of zeros."""
    pix = np.asarray(mask, dtype=bool).ravel(order='F').astype(np.int8)
    if pix.size == 0:
        return []
    change = np.flatnonzero(np.diff(pix)) + 1
    counts = np.diff(np.concatenate([[0], change, [pix.size]])).tolist()
    if pix[0] == 1:
        counts = [0] + counts
    return [int(c) for c in counts]


def _rle_counts_string(counts: Sequence[int]) -> str:
    """COCO's compact RLE string (the encoding of ``rleToString`` in maskApi.c)."""
    out = []
    for i, count in enumerate(counts):
        x = int(count)
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1f
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return ''.join(out)


def mask_to_rle(mask: np.ndarray, compressed: bool = True) -> dict:
    """Encode a binary ``(H, W)`` mask as COCO RLE.

    ``compressed=True`` gives ``{'size': [H, W], 'counts': str}`` (what
    ``pycocotools.mask.encode`` returns, decoded to text); ``False`` gives the
    uncompressed form with a list of run lengths, as COCO uses for crowds.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'mask must be 2-D, got shape {mask.shape}')
    counts = _run_lengths(mask)
    size = [int(mask.shape[0]), int(mask.shape[1])]
    if compressed:
        return {'size': size, 'counts': _rle_counts_string(counts)}
    return {'size': size, 'counts': counts}


def _mask_polygons(mask: np.ndarray) -> Optional[List[List[float]]]:
    """Outer contours of ``mask`` as COCO polygons, or ``None`` when the mask
    has holes (which polygons cannot express) or no usable contour."""
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return None
    if np.any(hierarchy[0][:, 3] >= 0):  # a contour with a parent is a hole
        return None
    polys = []
    for contour in contours:
        if len(contour) >= 3:
            polys.append([float(v) for v in contour.reshape(-1)])
    return polys or None


def _bbox_xywh(mask: np.ndarray) -> List[float]:
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


# ---------------------------------------------------------------------- COCO
def _place_instances(rng: np.random.Generator, h: int, w: int, shapes: Sequence[str],
                     inst_map: np.ndarray, full_areas: Dict[int, int], first_id: int,
                     min_visible: float, tries: int = 12) -> List[Tuple[int, str, tuple]]:
    """Paint instances into ``inst_map`` so that every earlier one keeps at
    least ``min_visible`` of its area; returns the placed ones."""
    placed = []
    next_id = first_id
    for shape in shapes:
        for _ in range(tries):
            params = _random_shape_params(rng, shape, h, w)
            mask = _shape_mask(h, w, shape, *params)
            area = int(mask.sum())
            if area < 16:
                continue
            covered = np.bincount(inst_map[mask], minlength=next_id)
            visible = np.bincount(inst_map.ravel(), minlength=next_id)
            ok = all(visible[k] - covered[k] >= min_visible * full_areas[k]
                     for k in full_areas if covered[k])
            if ok:
                inst_map[mask] = next_id
                full_areas[next_id] = area
                placed.append((next_id, shape, params))
                next_id += 1
                break
    return placed


def _coco_image(rng: np.random.Generator, h: int, w: int, max_objects: int,
                crowd_prob: float) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """One image, its instance-id map and the instance list (id, class, crowd)."""
    img = _background(rng, h, w)
    _draw_clutter(rng, img, int(rng.integers(2, 7)))
    inst_map = np.zeros((h, w), np.int32)
    full_areas: Dict[int, int] = {}
    instances: List[dict] = []
    next_id = 1

    if crowd_prob > 0 and rng.random() < crowd_prob:
        # A crowd: a cluster of small same-class shapes, annotated as one region.
        shape = COCO_CLASSES[int(rng.integers(len(COCO_CLASSES)))]
        colour = _jitter_colour(rng, SHAPE_COLOURS[shape])
        cx0, cy0 = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
        spread = 0.12 * min(h, w)
        crowd = np.zeros((h, w), bool)
        for _ in range(int(rng.integers(5, 10))):
            radius = max(2.0, rng.uniform(0.02, 0.035) * min(h, w))
            cx = float(np.clip(cx0 + rng.normal(0, spread), radius, w - radius))
            cy = float(np.clip(cy0 + rng.normal(0, spread), radius, h - radius))
            params = (cx, cy, radius, rng.uniform(0, 2 * math.pi))
            _draw_shape(img, shape, *params, colour)
            crowd |= _shape_mask(h, w, shape, *params)
        if crowd.sum() >= 16:
            inst_map[crowd] = next_id
            full_areas[next_id] = int(crowd.sum())
            instances.append({'id': next_id, 'shape': shape, 'iscrowd': 1})
            next_id += 1

    n = int(rng.integers(1, max_objects + 1))
    shapes = [COCO_CLASSES[int(k)] for k in rng.integers(0, len(COCO_CLASSES), n)]
    for inst_id, shape, params in _place_instances(rng, h, w, shapes, inst_map, full_areas,
                                                   next_id, min_visible=0.5):
        _draw_shape(img, shape, *params, _jitter_colour(rng, SHAPE_COLOURS[shape]))
        instances.append({'id': inst_id, 'shape': shape, 'iscrowd': 0})
    img = _add_noise(rng, img.astype(np.float32), 4.0)
    return img, inst_map, instances


def make_coco_instances(root: PathLike, num_train: int, num_val: int,
                        image_size: Size = (256, 320), seed: int = 0, *,
                        max_objects: int = 6, mask_format: str = 'polygon',
                        crowd_prob: float = 0.05) -> ToyDataset:
    """Write a COCO-format instance segmentation dataset under ``root``.

    Layout: ``train2017/*.jpg``, ``val2017/*.jpg``,
    ``annotations/instances_{train,val}2017.json`` (images, annotations with
    ``segmentation``, ``bbox`` ``[x, y, w, h]``, ``area`` (mask pixels),
    ``iscrowd``, and ``categories`` :data:`COCO_CLASSES` with ids 1, 2, 3).

    Args:
        root: Output directory (created).
        num_train: Training images.
        num_val: Validation images.
        image_size: ``(H, W)`` or an int.
        seed: Random seed; equal arguments give identical files.
        max_objects: Up to this many annotated objects per image (at least 1).
        mask_format: ``'polygon'`` (COCO's usual form; a mask with a hole
            made by an occluder falls back to compressed RLE, which polygons
            cannot express) or ``'rle'`` (compressed RLE for every object).
        crowd_prob: Probability that an image holds a crowd region
            (``iscrowd=1``, uncompressed RLE, as in COCO).

    Images are ``<image_id:012d>.jpg``; later objects may occlude earlier
    ones, but each keeps at least half of its area visible.  Unannotated
    clutter (lines, dull blobs) is drawn under the objects.
    """
    if mask_format not in ('polygon', 'rle'):
        raise ValueError(f"mask_format must be 'polygon' or 'rle', got {mask_format!r}")
    if max_objects < 1:
        raise ValueError(f'max_objects must be >= 1, got {max_objects}')
    if not 0.0 <= crowd_prob <= 1.0:
        raise ValueError(f'crowd_prob must be in [0, 1], got {crowd_prob}')
    _check_counts(num_train, num_val)
    h, w = _parse_size(image_size)
    root = Path(root)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [{'id': cid, 'name': name, 'supercategory': 'shape'}
                  for cid, name in zip(COCO_CATEGORY_IDS, COCO_CLASSES)]
    cat_of = dict(zip(COCO_CLASSES, COCO_CATEGORY_IDS))
    files: Dict[str, Path] = {}
    for split, count, offset in (('train', num_train, 0), ('val', num_val, 1_000_000)):
        img_dir = root / f'{split}2017'
        img_dir.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        ann_id = offset + 1
        for index in range(count):
            rng = _rng(seed, split, index)
            img, inst_map, instances = _coco_image(rng, h, w, max_objects, crowd_prob)
            image_id = offset + index + 1
            file_name = f'{image_id:012d}.jpg'
            _write_jpeg(img_dir / file_name, img)
            images.append({'id': image_id, 'file_name': file_name, 'height': h, 'width': w})
            for inst in instances:
                vis = inst_map == inst['id']
                area = int(vis.sum())
                if area == 0:
                    continue
                if inst['iscrowd']:
                    segmentation = mask_to_rle(vis, compressed=False)
                else:
                    polys = _mask_polygons(vis) if mask_format == 'polygon' else None
                    segmentation = polys if polys is not None else mask_to_rle(vis)
                annotations.append({
                    'id': ann_id, 'image_id': image_id,
                    'category_id': cat_of[inst['shape']],
                    'segmentation': segmentation, 'area': float(area),
                    'bbox': _bbox_xywh(vis), 'iscrowd': int(inst['iscrowd']),
                })
                ann_id += 1
        ann_file = root / 'annotations' / f'instances_{split}2017.json'
        with open(ann_file, 'w') as f:
            json.dump({
                'info': {'description': f'mmparc toy COCO ({split}), seed {seed}',
                         'version': '1.0', 'year': 2017},
                'licenses': [],
                'images': images, 'annotations': annotations, 'categories': categories,
            }, f)
        files[f'{split}_ann'] = ann_file
        files[f'{split}_images'] = img_dir
    return ToyDataset(root, 'coco', COCO_CLASSES, num_train, num_val, files)


# ----------------------------------------------------------------------- ADE
def _ade_image(rng: np.random.Generator, h: int, w: int,
               max_objects: int) -> Tuple[np.ndarray, np.ndarray]:
    label = np.zeros((h, w), np.uint8)
    sky, ground = ADE_CLASSES.index('sky') + 1, ADE_CLASSES.index('ground') + 1
    # A wavy horizon splits a bluish-bright "sky" from a brownish "ground".
    base = rng.uniform(0.35, 0.65) * h
    amp = rng.uniform(0.0, 0.08) * h
    freq = rng.uniform(0.5, 2.5) * 2 * math.pi / w
    phase = rng.uniform(0, 2 * math.pi)
    horizon = base + amp * np.sin(freq * np.arange(w) + phase)
    is_sky = np.arange(h)[:, None] < horizon[None, :]
    label[:] = np.where(is_sky, sky, ground)
    yy = np.arange(h, dtype=np.float32)[:, None, None] / h
    sky_top = np.array(_jitter_colour(rng, (120, 170, 235), 20), np.float32)
    sky_low = np.array(_jitter_colour(rng, (200, 220, 245), 15), np.float32)
    gnd_top = np.array(_jitter_colour(rng, (130, 110, 80), 20), np.float32)
    gnd_low = np.array(_jitter_colour(rng, (90, 70, 50), 20), np.float32)
    img = np.where(is_sky[..., None], sky_top + (sky_low - sky_top) * yy,
                   gnd_top + (gnd_low - gnd_top) * yy)
    img = _add_noise(rng, img, 10.0)  # texture, stronger on purpose
    # Objects, later ones occluding earlier ones.
    n = int(rng.integers(1, max_objects + 1))
    for k in rng.integers(0, 3, n):
        shape = ('circle', 'square', 'triangle')[int(k)]
        params = _random_shape_params(rng, shape, h, w)
        _draw_shape(img, shape, *params, _jitter_colour(rng, SHAPE_COLOURS[shape]))
        _draw_shape(label, shape, *params, ADE_CLASSES.index(shape) + 1)
    # Clutter on top is "other" (label 0, ignored with reduce_zero_label).
    _draw_clutter(rng, img, int(rng.integers(1, 5)), label=label, label_value=0)
    img = _add_noise(rng, img.astype(np.float32), 3.0)
    return img, label


def make_ade20k(root: PathLike, num_train: int, num_val: int,
                image_size: Size = (256, 320), seed: int = 0, *,
                max_objects: int = 5) -> ToyDataset:
    """Write an ADE20K-format semantic segmentation dataset under ``root``.

    Layout (as ``ADEChallengeData2016``): ``images/training/ADE_train_%08d.jpg``,
    ``images/validation/ADE_val_%08d.jpg`` and the same stems as ``.png``
    under ``annotations/{training,validation}``.  PNG value ``i + 1`` is
    :data:`ADE_CLASSES` ``[i]``; value 0 is "other" (thin clutter strokes and
    blobs), which mmseg maps to 255 (ignored) under ``reduce_zero_label=True``
    as for ADE20K.  The values stay within ADE20K's 1..150, so mmseg's
    ``ADE20KDataset`` and a 150-class head read the data unchanged (the class
    *names* are then ADE's; rename them with ``BaseSegDataset`` and
    ``metainfo=dict(classes=ADE_CLASSES)`` if wanted -- ``ADE20KDataset``
    rejects class names outside its own list).
    """
    _check_counts(num_train, num_val)
    h, w = _parse_size(image_size)
    root = Path(root)
    files: Dict[str, Path] = {}
    for split, count, folder, prefix in (('train', num_train, 'training', 'ADE_train'),
                                         ('val', num_val, 'validation', 'ADE_val')):
        img_dir = root / 'images' / folder
        ann_dir = root / 'annotations' / folder
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            img, label = _ade_image(_rng(seed, split, index), h, w, max_objects)
            stem = f'{prefix}_{index + 1:08d}'
            _write_jpeg(img_dir / f'{stem}.jpg', img)
            _write_png(ann_dir / f'{stem}.png', label)
        files[f'{split}_images'] = img_dir
        files[f'{split}_annotations'] = ann_dir
    return ToyDataset(root, 'ade', ADE_CLASSES, num_train, num_val, files)


# ------------------------------------------------------------------ ImageNet
def _imagenet_image(rng: np.random.Generator, h: int, w: int, cls: str) -> np.ndarray:
    shape, colour = cls.split('_')
    img = _background(rng, h, w, low=60, high=200)
    _draw_clutter(rng, img, int(rng.integers(0, 4)))
    radius = rng.uniform(0.18, 0.34) * min(h, w)
    cx = rng.uniform(radius * 0.8, w - radius * 0.8)
    cy = rng.uniform(radius * 0.8, h - radius * 0.8)
    _draw_shape(img, shape, cx, cy, radius, rng.uniform(0, 2 * math.pi),
                _jitter_colour(rng, _IMAGENET_COLOURS[colour], 20))
    return _add_noise(rng, img.astype(np.float32), 4.0)


def make_imagenet(root: PathLike, num_train: int, num_val: int,
                  image_size: Size = (64, 64), seed: int = 0, *,
                  num_classes: int = 4) -> ToyDataset:
    """Write an ImageNet-format classification dataset under ``root``.

    Layout: ``train/<class>/<class>_<n>.JPEG``, ``val/<class>/...`` and
    ``meta/{train,val}.txt`` with lines ``<class>/<file> <label>`` relative
    to ``train/`` / ``val/`` -- what mmpretrain's ``ImageNet`` dataset reads
    with ``split='train'`` or ``'val'`` (its 1000 ImageNet class names stay
    the metainfo; labels ``0..num_classes-1`` are used).  Class ``i`` is
    ``f'{i:04d}_' + IMAGENET_CLASSES[i]`` (shape x colour), images are split
    round-robin over the classes.
    """
    _check_counts(num_train, num_val)
    if not 1 <= num_classes <= len(IMAGENET_CLASSES):
        raise ValueError(f'num_classes must be in [1, {len(IMAGENET_CLASSES)}], '
                         f'got {num_classes}')
    h, w = _parse_size(image_size)
    root = Path(root)
    (root / 'meta').mkdir(parents=True, exist_ok=True)
    classes = IMAGENET_CLASSES[:num_classes]
    folders = [f'{i:04d}_{name}' for i, name in enumerate(classes)]
    files: Dict[str, Path] = {}
    for split, count in (('train', num_train), ('val', num_val)):
        for folder in folders:
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        lines = []
        for index in range(count):
            label = index % num_classes
            rel = f'{folders[label]}/{folders[label]}_{index:06d}.JPEG'
            _write_jpeg(root / split / rel, _imagenet_image(_rng(seed, split, index), h, w,
                                                            classes[label]))
            lines.append(f'{rel} {label}\n')
        meta = root / 'meta' / f'{split}.txt'
        meta.write_text(''.join(lines))
        files[f'{split}_ann'] = meta
        files[f'{split}_images'] = root / split
    return ToyDataset(root, 'imagenet', classes, num_train, num_val, files)
