"""The demo's two datasets: generated toy sets or the user's COCO dataset.

Detection trains on COCO instances as they are; segmentation trains on
ADE20K-style semantic maps (generated, or made from a user's instance masks).
What was written is stamped with the parameters that made it, so a rerun
reuses it and a changed parameter (or generator) writes it anew.
"""
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

from mmparc.testing import toy_data

STAMP = '.demo_params.json'


@dataclass
class DataInfo:
    """Where the demo's two datasets are and what they hold."""
    coco_root: Path
    coco_classes: Tuple[str, ...]
    coco_palette: List[List[int]]
    seg_root: Path
    seg_classes: Tuple[str, ...]
    seg_palette: List[List[int]]
    description: Dict[str, str]


def _stamp_matches(root: Path, params: Dict[str, Any]) -> bool:
    stamp = root / STAMP
    return stamp.is_file() and json.loads(stamp.read_text()) == params


def _write_stamp(root: Path, params: Dict[str, Any]) -> None:
    (root / STAMP).write_text(json.dumps(params, sort_keys=True))


def make_toy_data(out: Path, num_train: int, num_val: int, seed: int,
                  det_config: Path, seg_config: Path) -> DataInfo:
    """Generate (or reuse, if generated with the same parameters) both toy sets,
    at the input size and with the palettes of the configs that train on them."""
    from mmengine.config import Config
    det_cfg, seg_cfg = Config.fromfile(str(det_config)), Config.fromfile(str(seg_config))
    image_size = det_cfg.image_size[0]
    coco_root, ade_root = out / 'data' / 'coco', out / 'data' / 'ade'
    # The generator's source is part of the key: a changed generator regenerates.
    source = hashlib.sha1(Path(toy_data.__file__).read_bytes()).hexdigest()
    params = dict(num_train=num_train, num_val=num_val, size=image_size, seed=seed,
                  generator=source)
    for root, writer in ((coco_root, toy_data.make_coco_instances),
                         (ade_root, toy_data.make_ade20k)):
        if _stamp_matches(root, params):
            print(f'  reusing {root} (same parameters)')
            continue
        if root.exists():
            shutil.rmtree(root)
        start = time.time()
        writer(root, num_train, num_val, image_size=(image_size, image_size), seed=seed)
        _write_stamp(root, params)
        print(f'  wrote {root}: {num_train} train + {num_val} val images, '
              f'{image_size}x{image_size}, seed {seed} ({time.time() - start:.1f}s)')
    text = f'toy, {num_train}+{num_val} imgs, {image_size}px'
    return DataInfo(coco_root, tuple(toy_data.COCO_CLASSES), [list(c) for c in det_cfg.palette],
                    ade_root, tuple(toy_data.ADE_CLASSES), [list(c) for c in seg_cfg.palette],
                    {'detection': text, 'segmentation': text})


def coco_layout(root: Path) -> Dict[str, Path]:
    """The files of a COCO-format dataset; exits with what is missing, since a
    user's folder that is not one is the likeliest mistake."""
    paths = {'train_ann': root / 'annotations' / 'instances_train2017.json',
             'val_ann': root / 'annotations' / 'instances_val2017.json',
             'train_img': root / 'train2017', 'val_img': root / 'val2017'}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise SystemExit(f'{root} is not a COCO-format dataset; missing: {missing}. '
                         'Expected train2017/, val2017/ and '
                         'annotations/instances_{train,val}2017.json.')
    return paths


def coco_to_semantic(coco_root: Path, out_root: Path) -> Tuple[str, ...]:
    """ADE20K-style semantic maps from a COCO instance dataset.

    PNG value 1 is "background", ``i + 2`` is category ``i`` (in id order),
    0 (ignored under ``reduce_zero_label``) marks crowd regions; later
    annotations paint over earlier ones.  Images are re-encoded as JPEG, as
    mmseg's ADE20K layout expects.  Returns the class names in label order.
    """
    import cv2
    import numpy as np
    from pycocotools.coco import COCO
    paths = coco_layout(coco_root)
    names: Tuple[str, ...] = ()
    for split, folder in (('train', 'training'), ('val', 'validation')):
        coco = COCO(str(paths[f'{split}_ann']))
        cat_ids = sorted(coco.getCatIds())
        names = ('background',) + tuple(coco.loadCats(cat_ids)[i]['name']
                                        for i in range(len(cat_ids)))
        value = {cid: i + 2 for i, cid in enumerate(cat_ids)}
        img_dir, ann_dir = out_root / 'images' / folder, out_root / 'annotations' / folder
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for image in coco.loadImgs(sorted(coco.getImgIds())):
            label = np.ones((image['height'], image['width']), np.uint8)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=image['id'])):
                mask = coco.annToMask(ann).astype(bool)
                label[mask] = 0 if ann.get('iscrowd', 0) else min(value[ann['category_id']], 254)
            stem = Path(image['file_name']).stem
            bgr = cv2.imread(str(paths[f'{split}_img'] / image['file_name']), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SystemExit(f"cannot read {paths[f'{split}_img'] / image['file_name']}")
            cv2.imwrite(str(img_dir / f'{stem}.jpg'), bgr)
            cv2.imwrite(str(ann_dir / f'{stem}.png'), label)
    return names


def user_data(coco_root: Path, out: Path) -> DataInfo:
    """The user's COCO dataset for detection, its semantic version for UperNet."""
    from pycocotools.coco import COCO
    import numpy as np
    paths = coco_layout(coco_root)
    coco = COCO(str(paths['train_ann']))
    cat_ids = sorted(coco.getCatIds())
    classes = tuple(c['name'] for c in coco.loadCats(cat_ids))
    seg_root = out / 'data' / f'{coco_root.name}_semantic'
    params = dict(source=str(coco_root.resolve()),
                  mtime=max(paths['train_ann'].stat().st_mtime,
                            paths['val_ann'].stat().st_mtime))
    if _stamp_matches(seg_root, params):
        seg_classes = ('background',) + classes
        print(f'  reusing {seg_root}')
    else:
        if seg_root.exists():
            shutil.rmtree(seg_root)
        start = time.time()
        seg_classes = coco_to_semantic(coco_root, seg_root)
        _write_stamp(seg_root, params)
        print(f'  wrote semantic maps of {coco_root} to {seg_root} '
              f'({time.time() - start:.1f}s)')
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (len(classes), 3)).tolist()
    num_train = len(coco.getImgIds())
    num_val = len(COCO(str(paths['val_ann'])).getImgIds())
    text = f'{coco_root.name}, {num_train}+{num_val} imgs'
    return DataInfo(coco_root, classes, palette, seg_root, seg_classes,
                    [[200, 200, 200]] + palette,
                    {'detection': text, 'segmentation': text + ' (semantic)'})
