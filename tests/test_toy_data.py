"""mmparc.testing.toy_data and tools/misc/make_toy_dataset.py: formats, determinism, loaders."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmparc.testing import toy_data
from helpers import REPO



def _scope(name: str):
    """Build datasets/pipelines in ``name``'s registries, whatever scope an
    earlier test (e.g. a Runner) left as the default."""
    from mmengine.registry import DefaultScope
    return DefaultScope.overwrite_default_scope(name)


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco')
    info = toy_data.make_coco_instances(root, 12, 4, (96, 128), seed=3, crowd_prob=0.3)
    return root, info


# ----------------------------------------------------------------------- COCO
def test_coco_layout_and_fields(coco):
    root, info = coco
    assert info.kind == 'coco' and info.classes == ('circle', 'square', 'triangle')
    for split, count in (('train', 12), ('val', 4)):
        data = json.loads((root / 'annotations' / f'instances_{split}2017.json').read_text())
        assert {'images', 'annotations', 'categories'} <= set(data)
        assert [c['name'] for c in data['categories']] == list(toy_data.COCO_CLASSES)
        assert len(data['images']) == count
        image_ids = {im['id'] for im in data['images']}
        assert len(image_ids) == count
        for im in data['images']:
            img = cv2.imread(str(root / f'{split}2017' / im['file_name']))
            assert img.shape == (im['height'], im['width'], 3) == (96, 128, 3)
        ann_ids = [a['id'] for a in data['annotations']]
        assert len(set(ann_ids)) == len(ann_ids)
        per_image = {i: 0 for i in image_ids}
        for ann in data['annotations']:
            assert ann['image_id'] in image_ids
            assert ann['category_id'] in toy_data.COCO_CATEGORY_IDS
            x, y, w, h = ann['bbox']
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 128 and y + h <= 96
            assert 0 < ann['area'] <= w * h
            assert ann['iscrowd'] in (0, 1)
            per_image[ann['image_id']] += 1 - ann['iscrowd']
        assert min(per_image.values()) >= 1  # every image has an object


def test_coco_masks_decode_to_annotated_regions(coco):
    """pycocotools rasterises every segmentation back to the annotated area/bbox."""
    from pycocotools.coco import COCO
    root, _ = coco
    api = COCO(str(root / 'annotations' / 'instances_train2017.json'))
    kinds = set()
    for ann in api.loadAnns(api.getAnnIds()):
        mask = api.annToMask(ann).astype(bool)
        seg = ann['segmentation']
        if isinstance(seg, list):
            kinds.add('polygon')
            # Polygons trace pixel centres: allow a perimeter's worth of pixels.
            tol = 2 * (ann['bbox'][2] + ann['bbox'][3]) + 4
            assert abs(int(mask.sum()) - ann['area']) <= tol
        else:
            kinds.add('crowd' if ann['iscrowd'] else 'rle')
            assert isinstance(seg['counts'], list if ann['iscrowd'] else str)
            assert int(mask.sum()) == ann['area']  # RLE is exact
            ys, xs = np.nonzero(mask)
            assert [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                    ys.max() - ys.min() + 1] == ann['bbox']
    assert 'polygon' in kinds and 'crowd' in kinds


def test_coco_rle_mode_is_exact(tmp_path):
    from pycocotools import mask as mask_utils
    toy_data.make_coco_instances(tmp_path, 4, 0, (64, 80), seed=5, mask_format='rle',
                                 crowd_prob=0.0)
    data = json.loads((tmp_path / 'annotations' / 'instances_train2017.json').read_text())
    assert data['annotations']
    for ann in data['annotations']:
        seg = ann['segmentation']
        assert isinstance(seg['counts'], str) and seg['size'] == [64, 80]
        mask = mask_utils.decode({'size': seg['size'], 'counts': seg['counts'].encode()})
        assert int(mask.sum()) == ann['area']


def test_mask_to_rle_matches_pycocotools():
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(0)
    masks = [np.zeros((7, 5), bool), np.ones((7, 5), bool), rng.random((33, 47)) > 0.5,
             rng.random((1, 9)) > 0.3]
    blob = np.zeros((40, 60), bool)
    blob[5:30, 10:50] = True
    masks.append(blob)
    for mask in masks:
        ours = toy_data.mask_to_rle(mask)
        ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours == {'size': list(ref['size']), 'counts': ref['counts'].decode()}
        raw = toy_data.mask_to_rle(mask, compressed=False)
        decoded = mask_utils.decode(mask_utils.frPyObjects(raw, *raw['size']))
        assert np.array_equal(decoded.astype(bool), mask)


def test_coco_objects_are_learnable(coco):
    """Distinct colours per class, distinct size ranges, and some occlusion."""
    from pycocotools.coco import COCO
    root, _ = coco
    api = COCO(str(root / 'annotations' / 'instances_train2017.json'))
    colours = np.array([toy_data.SHAPE_COLOURS[c] for c in toy_data.COCO_CLASSES], float)
    areas = {c: [] for c in toy_data.COCO_CATEGORY_IDS}
    overlaps = 0
    for img_id in api.getImgIds():
        info = api.loadImgs(img_id)[0]
        rgb = cv2.imread(str(root / 'train2017' / info['file_name']))[..., ::-1]
        anns = [a for a in api.loadAnns(api.getAnnIds(imgIds=img_id)) if not a['iscrowd']]
        for ann in anns:
            mask = api.annToMask(ann).astype(bool)
            if mask.sum() < 30:
                continue
            mean = rgb[mask].astype(float).mean(0)
            nearest = int(np.argmin(((colours - mean)**2).sum(1)))
            assert toy_data.COCO_CATEGORY_IDS[nearest] == ann['category_id']
            areas[ann['category_id']].append(ann['area'])
        for i, a in enumerate(anns):
            for b in anns[i + 1:]:
                ax, ay, aw, ah = a['bbox']
                bx, by, bw, bh = b['bbox']
                overlaps += (ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah)
    assert all(areas.values()), 'every class appears'
    means = [np.mean(areas[c]) for c in toy_data.COCO_CATEGORY_IDS]
    assert means[0] < means[1] < means[2]  # circle < square < triangle
    assert overlaps > 0


def test_mmdet_reads_toy_coco(coco):
    from mmdet.datasets import CocoDataset
    root, _ = coco
    with _scope('mmdet'):
        _check_mmdet_coco(root, CocoDataset)


def _check_mmdet_coco(root, CocoDataset):
    ds = CocoDataset(
        data_root=str(root), ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'), metainfo=dict(classes=toy_data.COCO_CLASSES),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=True)])
    assert len(ds) == 12
    data = json.loads((root / 'annotations' / 'instances_train2017.json').read_text())
    for i in range(len(ds)):
        item = ds[i]
        img_id = ds.get_data_info(i)['img_id']
        anns = [a for a in data['annotations'] if a['image_id'] == img_id]
        assert len(item['gt_bboxes']) == len(anns)
        assert item['gt_masks'].masks.shape[1:] == (96, 128)
        assert int(item['gt_ignore_flags'].sum()) == sum(a['iscrowd'] for a in anns)
        assert set(item['gt_bboxes_labels'].tolist()) <= {0, 1, 2}


# ------------------------------------------------------------------------ ADE
def test_ade_layout_and_labels(tmp_path):
    info = toy_data.make_ade20k(tmp_path, 6, 2, (64, 96), seed=1)
    assert info.classes == toy_data.ADE_CLASSES
    values = set()
    for folder, prefix, count in (('training', 'ADE_train', 6), ('validation', 'ADE_val', 2)):
        images = sorted((tmp_path / 'images' / folder).glob('*.jpg'))
        labels = sorted((tmp_path / 'annotations' / folder).glob('*.png'))
        assert len(images) == len(labels) == count
        assert [p.stem for p in images] == [p.stem for p in labels]
        assert images[0].stem == f'{prefix}_00000001'
        for img_path, lab_path in zip(images, labels):
            label = cv2.imread(str(lab_path), cv2.IMREAD_UNCHANGED)
            assert label.dtype == np.uint8 and label.shape == (64, 96)
            assert cv2.imread(str(img_path)).shape == (64, 96, 3)
            values |= set(np.unique(label).tolist())
    assert values <= set(range(len(toy_data.ADE_CLASSES) + 1))
    assert 0 in values  # "other" (clutter), ignored with reduce_zero_label
    assert {1, 2} <= values  # sky and ground in every image


def test_mmseg_reads_toy_ade(tmp_path):
    from mmseg.datasets import ADE20KDataset
    toy_data.make_ade20k(tmp_path, 3, 1, (64, 80), seed=4)
    with _scope('mmseg'):
        ds = ADE20KDataset(
            data_root=str(tmp_path),
            data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', reduce_zero_label=True)])
        items = [ds[i] for i in range(len(ds))]
    assert len(items) == 3
    for item in items:
        seg = item['gt_seg_map']
        assert seg.shape == (64, 80)
        assert set(np.unique(seg).tolist()) <= set(range(len(toy_data.ADE_CLASSES))) | {255}


# ------------------------------------------------------------------- ImageNet
def test_imagenet_layout_and_mmpretrain(tmp_path):
    from mmpretrain.datasets import ImageNet
    info = toy_data.make_imagenet(tmp_path, 10, 6, (40, 48), seed=2, num_classes=3)
    assert info.classes == toy_data.IMAGENET_CLASSES[:3]
    folders = sorted(p.name for p in (tmp_path / 'train').iterdir())
    assert folders == [f'{i:04d}_{c}' for i, c in enumerate(info.classes)]
    for split, count in (('train', 10), ('val', 6)):
        lines = (tmp_path / 'meta' / f'{split}.txt').read_text().splitlines()
        assert len(lines) == count
        for line in lines:
            rel, label = line.split()
            assert rel.startswith(folders[int(label)] + '/') and rel.endswith('.JPEG')
            assert cv2.imread(str(tmp_path / split / rel)).shape == (40, 48, 3)
        with _scope('mmpretrain'):
            ds = ImageNet(data_root=str(tmp_path), split=split, pipeline=[])
        assert len(ds) == count
        assert sorted({int(ds.get_data_info(i)['gt_label']) for i in range(count)}) == [0, 1, 2]


# ---------------------------------------------------------------- determinism
def test_same_seed_same_bytes_and_val_independent_of_train(tmp_path):
    for kind in ('coco', 'ade', 'imagenet'):
        make = {'coco': toy_data.make_coco_instances, 'ade': toy_data.make_ade20k,
                'imagenet': toy_data.make_imagenet}[kind]
        make(tmp_path / f'{kind}_a', 3, 2, (48, 64), seed=7)
        make(tmp_path / f'{kind}_b', 3, 2, (48, 64), seed=7)
        make(tmp_path / f'{kind}_c', 3, 2, (48, 64), seed=8)
        make(tmp_path / f'{kind}_d', 5, 2, (48, 64), seed=7)
        a, b, c = (_digest(tmp_path / f'{kind}_{x}') for x in 'abc')
        assert a == b
        assert a.keys() == c.keys() and a != c
        d = _digest(tmp_path / f'{kind}_d')
        val = [k for k in a if 'val' in k and not k.endswith('.json') and not k.endswith('.txt')]
        assert val and all(a[k] == d[k] for k in val)


@pytest.mark.parametrize('kwargs', [
    dict(num_train=-1), dict(num_train=0, num_val=0), dict(image_size=(8, 64)),
    dict(image_size=(1, 2, 3)), dict(mask_format='bitmap'), dict(max_objects=0),
    dict(crowd_prob=2.0)])
def test_coco_rejects_bad_arguments(tmp_path, kwargs):
    args = dict(num_train=1, num_val=1, image_size=(32, 32))
    args.update(kwargs)
    with pytest.raises(ValueError):
        toy_data.make_coco_instances(tmp_path, **args)


def test_imagenet_rejects_bad_num_classes(tmp_path):
    with pytest.raises(ValueError):
        toy_data.make_imagenet(tmp_path, 1, 1, 32, num_classes=len(toy_data.IMAGENET_CLASSES) + 1)


# ------------------------------------------------------------------------ CLI
def _cli_main():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'make_toy_dataset', REPO / 'tools' / 'misc' / 'make_toy_dataset.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_cli_runs_as_a_script(tmp_path):
    out = tmp_path / 'coco'
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'misc' / 'make_toy_dataset.py'), '--kind', 'coco',
         '--out', str(out), '--num-train', '3', '--num-val', '2', '--size', '48', '64',
         '--seed', '1'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'wrote coco toy dataset' in proc.stdout
    # The CLI and the function agree byte for byte.
    toy_data.make_coco_instances(tmp_path / 'direct', 3, 2, (48, 64), seed=1)
    assert _digest(tmp_path / 'direct') == _digest(out)


@pytest.mark.parametrize('kind,probe', [
    ('ade', 'annotations/validation/ADE_val_00000002.png'),
    ('imagenet', 'meta/val.txt'),
    ('coco', 'annotations/instances_train2017.json'),
])
def test_cli_writes_each_kind(tmp_path, kind, probe, capsys):
    main = _cli_main()
    extra = ['--mask-format', 'rle'] if kind == 'coco' else []
    assert main(['--kind', kind, '--out', str(tmp_path), '--num-train', '3', '--num-val', '2',
                 '--size', '40', '48', '--seed', '1', *extra]) == 0
    assert f'wrote {kind} toy dataset' in capsys.readouterr().out
    assert (tmp_path / probe).is_file()
    img = next(p for p in tmp_path.rglob('*') if p.suffix in ('.jpg', '.JPEG'))
    assert cv2.imread(str(img)).shape == (40, 48, 3)
