"""The quickstart demo: its configs, pieces and (shrunken) end-to-end flow.

The demo is the checkout's ``demo`` package (``python -m demo.quickstart``),
imported here as ``python -m pytest`` from the checkout's root finds it.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmparc.visualization import oversized_kernels, plot_oversized_kernels

from demo import datasets, jobs, quickstart, report
from demo.pictures import colorize_labels, overlay_labels, plot_training_curves, tile_images
from demo.report import read_scalars
from mmparc.testing import toy_data
from helpers import REPO



def _config(name: str):
    from mmengine.config import Config
    return Config.fromfile(str(REPO / 'configs' / f'{name}.py'))


# ------------------------------------------------------------------ configs
def test_quickstart_configs_shrink_the_real_ones():
    det = _config('quickstart/mask_rcnn_parcnetv2_toy')
    assert det.model.backbone.type == 'mmparc.ParCNetV2'
    assert det.model.backbone.init_cfg is None  # no ImageNet weights: from scratch
    assert det.model.backbone.arch == dict(depths=[1, 1, 3, 1], dims=[32, 64, 128, 192])
    assert det.model.backbone.kernel_sizes == [95, 47, 23, 11]  # 2 * (192 / stride) - 1
    assert det.model.neck.in_channels == det.model.backbone.arch['dims']
    assert det.model.roi_head.bbox_head.num_classes == len(toy_data.COCO_CLASSES)
    assert tuple(det.classes) == toy_data.COCO_CLASSES
    assert det.optim_wrapper.type == 'mmparc.FallbackAmpOptimWrapper'  # inherited
    assert det.param_scheduler[-1]['end'] == det.train_cfg.max_iters
    seg = _config('quickstart/upernet_parcnetv2_toy')
    assert seg.model.backbone.init_cfg is None
    assert seg.model.decode_head.num_classes == len(toy_data.ADE_CLASSES)
    assert tuple(seg.classes) == toy_data.ADE_CLASSES
    assert seg.model.data_preprocessor.size == (192, 192)
    assert seg.param_scheduler[-1]['end'] == seg.train_cfg.max_iters


def test_quickstart_models_build_and_run():
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS as SEG_MODELS
    x = torch.randn(1, 3, 192, 192)
    init_default_scope('mmdet')
    det = DET_MODELS.build(_config('quickstart/mask_rcnn_parcnetv2_toy').model).eval()
    with torch.no_grad():
        feats = det.extract_feat(x)
    assert [f.shape[1] for f in feats] == [64] * 5
    init_default_scope('mmseg')
    seg = SEG_MODELS.build(_config('quickstart/upernet_parcnetv2_toy').model).eval()
    with torch.no_grad():
        logits = seg(x, mode='tensor')
    assert logits.shape[1] == len(toy_data.ADE_CLASSES)


def test_quickstart_seg_dataset_reads_toy_ade(tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    toy_data.make_ade20k(tmp_path, 2, 1, image_size=(64, 64), seed=0)
    cfg = _config('quickstart/upernet_parcnetv2_toy').val_dataloader.dataset
    cfg.data_root = str(tmp_path)
    dataset = DATASETS.build(cfg)
    assert len(dataset) == 1 and dataset.metainfo['classes'] == toy_data.ADE_CLASSES
    label = dataset[0]['data_samples'].gt_sem_seg.data.numpy()
    assert set(np.unique(label)) <= set(range(len(toy_data.ADE_CLASSES))) | {255}


# ------------------------------------------------------------------ pieces
def _job(metrics=jobs.DET_METRICS) -> jobs.Job:
    return jobs.Job('Mask R-CNN', 'det', 'c.py', '/tmp/x', {}, None, None, 1, 0, metrics)


def test_progress_line_keeps_progress_and_metrics():
    state: dict = {}
    line = ('11/21 07:54:25 - mmengine - INFO - Iter(train) [ 20/600]  base_lr: 2.0e-04 '
            'lr: 2.0e-04  eta: 0:39:24  time: 4.0761  data_time: 0.0446  grad_norm: 3.1696  '
            'loss: 2.9817  loss_rpn_cls: 0.6887')
    assert jobs.progress_line(line, _job(), state) == \
        'train  20/600  loss 2.982  eta 0:39:24  4.08 s/it'
    val = ('11/21 08:46:05 - mmengine - INFO - Iter(val) [13/13]    coco/bbox_mAP: 0.0310  '
           'coco/bbox_mAP_50: 0.6240  coco/bbox_mAP_75: 0.0070  coco/segm_mAP_50: 0.4390')
    assert jobs.progress_line(val, _job(), state) == \
        'val @ iter 20: box mAP@0.5 0.624  mask mAP@0.5 0.439'
    seg_val = 'x - INFO - Iter(val) [13/13]    aAcc: 86.7600  mIoU: 65.0900  mAcc: 40.1500'
    assert jobs.progress_line(seg_val, _job(jobs.SEG_METRICS), {}) == \
        'val @ iter 0: mIoU 0.651'
    assert jobs.progress_line('11/21 - mmengine - WARNING - FileClient', _job(), state) is None
    assert jobs.progress_line('Traceback (most recent call last):', _job(), state)


def test_summary_table_marks_targets():
    rows = [dict(task='detection', model='M', data='d', iters=10, train_seconds=75.0,
                 cpu_seconds=70.0, metrics={'box mAP@0.5': 0.61, 'mask mAP@0.5': 0.3},
                 targets=report.TARGETS)]
    table = report.summary_table(rows)
    assert 'box mAP@0.5' in table and '1m15s' in table
    lines = table.splitlines()
    assert lines[2].rstrip().endswith('yes') and lines[3].rstrip().endswith('NO')


def test_apply_iters_moves_the_schedule_end():
    cfg = _config('quickstart/mask_rcnn_parcnetv2_toy')
    jobs.apply_iters(cfg, 300, 100)
    assert cfg.train_cfg.max_iters == 300 and cfg.train_cfg.val_interval == 100
    assert cfg.param_scheduler[-1]['end'] == 300
    assert cfg.default_hooks.checkpoint.interval == 300
    jobs.apply_iters(cfg, 2, None)
    assert all(s['begin'] < s['end'] <= 2 for s in cfg.param_scheduler)
    assert cfg.train_cfg.val_interval == 2


def test_build_config_logs_at_every_validation(tmp_path):
    job = jobs.Job('UperNet', 'seg', str(jobs.SEG_CONFIG), str(tmp_path), {}, 600, 40, 1, 3,
                   jobs.SEG_METRICS)
    cfg = jobs.build_config(job)
    assert cfg.train_cfg.val_interval == 40 and cfg.default_hooks.logger.interval == 5
    assert cfg.work_dir == str(tmp_path) and cfg.randomness == dict(seed=3)


def test_kernel_picture_from_a_state_dict(tmp_path):
    from mmparc import ParCNetV2
    backbone = ParCNetV2(arch=dict(depths=[1, 2], dims=[8, 16]), kernel_sizes=[15, 7],
                         out_indices=(0, 1), gap_before_final_norm=False)
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    kernel_h, kernel_w = oversized_kernels(state, stage=1, block=1)
    assert kernel_h.shape == kernel_w.shape == (16, 7)
    from_model = oversized_kernels(backbone, stage=1, block=1, prefix='')  # a model in
    np.testing.assert_array_equal(from_model[0], kernel_h)
    np.testing.assert_array_equal(from_model[1], kernel_w)
    out = plot_oversized_kernels(kernel_h, kernel_w, tmp_path / 'k.png', num_channels=3)
    assert out.stat().st_size > 1000
    with pytest.raises(KeyError, match='stage 1, block 2'):
        oversized_kernels(state, stage=1, block=2)


def test_curves_overlays_and_grids(tmp_path):
    scalars = tmp_path / 'scalars.json'
    scalars.write_text('\n'.join(json.dumps(r) for r in [
        {'loss': 2.0, 'step': 10}, {'loss': 1.0, 'step': 20},
        {'mIoU': 40.0, 'step': 20}]) + '\n')
    train, val = read_scalars(scalars)
    assert len(train) == 2 and val == [{'mIoU': 40.0, 'step': 20}]
    out = plot_training_curves({'UperNet': (train, val)}, {'UperNet': jobs.SEG_METRICS},
                               tmp_path / 'curves.png', targets=report.TARGETS)
    assert out.stat().st_size > 1000
    label = np.array([[0, 1], [255, 1]], np.uint8)
    palette = [[255, 0, 0], [0, 255, 0]]
    assert colorize_labels(label, palette)[1, 0].tolist() == [0, 0, 0]
    image = np.full((2, 2, 3), 100, np.uint8)
    assert overlay_labels(image, label, palette)[1, 0].tolist() == [100, 100, 100]
    grid = tile_images([image, np.zeros((4, 8, 3), np.uint8)], columns=2, cell=8,
                       labels=['a', 'b'])
    assert grid.ndim == 3 and grid.shape[0] >= 8 + 22


def test_user_coco_becomes_semantic_maps(tmp_path):
    """`make demo DATA=...`: UperNet trains on semantic maps of the instance masks."""
    import cv2
    from pycocotools.coco import COCO
    info = toy_data.make_coco_instances(tmp_path / 'coco', 2, 1, image_size=(64, 64), seed=1)
    data = datasets.user_data(tmp_path / 'coco', tmp_path / 'out')
    assert data.coco_classes == toy_data.COCO_CLASSES
    assert data.seg_classes == ('background',) + toy_data.COCO_CLASSES
    assert len(data.seg_palette) == len(data.seg_classes)
    coco = COCO(str(info.files['val_ann']))
    image = coco.loadImgs(coco.getImgIds())[0]
    label = cv2.imread(str(data.seg_root / 'annotations' / 'validation'
                           / image['file_name'].replace('.jpg', '.png')), cv2.IMREAD_UNCHANGED)
    expected = np.ones((64, 64), np.uint8)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=image['id'])):
        expected[coco.annToMask(ann) > 0] = 0 if ann['iscrowd'] else ann['category_id'] + 1
    np.testing.assert_array_equal(label, expected)
    assert len(list((data.seg_root / 'images' / 'training').glob('*.jpg'))) == 2
    with pytest.raises(SystemExit, match='not a COCO-format dataset'):
        datasets.user_data(tmp_path / 'out', tmp_path / 'out2')


def test_infer_rejects_missing_images(tmp_path):
    from mmparc.apis import expand_images
    with pytest.raises(FileNotFoundError):
        expand_images([str(tmp_path / 'nope.jpg')])
    (tmp_path / 'a.jpg').write_bytes(b'')
    (tmp_path / 'notes.txt').write_text('')
    assert expand_images([str(tmp_path)]) == [str(tmp_path / 'a.jpg')]


# ------------------------------------------------------------------ the flow
def _check_flow(out: Path, printed: str, images: Path) -> dict:
    """Every output of a --quick run exists, is printed, and the pictures are drawn."""
    assert 'train 2/2' in printed and 'val @ iter 2' in printed  # progress relayed
    summary = json.loads((out / 'summary.json').read_text())
    metrics = {name for row in summary['rows'] for name in row['metrics']}
    assert metrics == set(report.TARGETS)
    for key, path in summary['outputs'].items():
        if '{' not in path:
            assert Path(path).exists(), key
        assert path.split('/')[-1] in printed or key == 'summary'  # paths are printed
    pictures = out / 'pictures'
    for name in ('detection_predictions.jpg', 'segmentation_overlays.jpg',
                 'training_curves.png', 'oversized_kernels.png'):
        assert (pictures / name).stat().st_size > 5000, name
    drawn = sorted(p.name for p in (out / 'infer' / 'detection' / 'vis').iterdir())
    assert drawn == sorted(p.name for p in images.iterdir())[:len(drawn)] and drawn
    return summary


@pytest.mark.slow
def test_demo_flow_at_a_shrunken_size(tmp_path, capsys):
    """`make demo` at a handful of images and iterations: every output appears."""
    out = tmp_path / 'demo'
    assert quickstart.main(['--quick', '--out', str(out)]) == 0
    _check_flow(out, capsys.readouterr().out, out / 'data' / 'coco' / 'val2017')


@pytest.mark.slow
def test_demo_flow_on_a_user_dataset_with_other_classes(tmp_path, capsys):
    """`make demo DATA=...` on a COCO dataset of two classes (the toy configs have
    three): both runs train with the user's class count, and the pictures are
    drawn with the config each run saved, which the checkpoints fit."""
    from mmengine.config import Config
    coco = tmp_path / 'two_shapes'
    toy_data.make_coco_instances(coco, 6, 3, image_size=(96, 128), seed=2, max_objects=3)
    for split in ('train', 'val'):  # drop the triangles: categories circle and square
        path = coco / 'annotations' / f'instances_{split}2017.json'
        data = json.loads(path.read_text())
        data['categories'] = [c for c in data['categories'] if c['name'] != 'triangle']
        kept = {c['id'] for c in data['categories']}
        data['annotations'] = [a for a in data['annotations'] if a['category_id'] in kept]
        path.write_text(json.dumps(data))
    out = tmp_path / 'demo'
    assert quickstart.main(['--quick', '--out', str(out), str(coco)]) == 0
    _check_flow(out, capsys.readouterr().out, coco / 'val2017')
    det = Config.fromfile(str(out / 'detection' / 'config.py'))
    assert det.model.roi_head.bbox_head.num_classes == 2
    assert tuple(det.test_dataloader.dataset.metainfo.classes) == ('circle', 'square')
    seg = Config.fromfile(str(out / 'segmentation' / 'config.py'))
    assert seg.model.decode_head.num_classes == 3  # background + the two classes
    # Every box drawn (the demo draws those scoring 0.5, none after 2 iterations):
    # the saved config's classes and palette are what mmdet's visualizer takes.
    from mmparc.apis import infer
    images = sorted(str(p) for p in (coco / 'val2017').iterdir())[:2]
    vis = infer(images, str(out / 'detection' / 'config.py'),
                str(out / 'detection' / 'iter_2.pth'), str(tmp_path / 'all'), task='det',
                score_thr=0.0)
    assert len(list(vis.iterdir())) == 2


def test_quick_writes_its_own_folder():
    """--quick does not replace the full demo's outputs."""
    assert quickstart.parse_args(['--quick']).out == REPO / 'outputs' / 'demo_quick'
    assert quickstart.parse_args([]).out == REPO / 'outputs' / 'demo'
