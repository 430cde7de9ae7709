"""The figure tools (supplement Sec. I-J), analyze.py --paper, the ImageNet-21K
configs (Table 4) and the UperNet test resize, on briefly trained classifiers.

No ImageNet weights here: the checkpoints are ParCNetV2-XT and ConvNeXt-T
classifiers built from their configs and trained for two steps on generated
images.  The tools run as users run them (subprocesses); what they draw is
checked against the layers themselves and against pytorch-grad-cam called
directly.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmparc  # noqa: F401
from mmparc.models import ParCNetV2
from mmparc.visualization import kernels_at, oversized_kernels, stage_map_size

from helpers import REPO, build_classifier

XT = REPO / 'configs' / 'imagenet_parcnetv2_xt.py'
CONVNEXT = REPO / 'configs' / 'ablations' / 'convnext_t.py'


def run_tool(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def briefly_trained(config: Path, path: Path) -> Path:
    """Two AdamW steps on generated 64x64 images; a Runner-style checkpoint."""
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    cfg, model = build_classifier(config)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    for step in range(2):
        images = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(2)]
        data = dict(inputs=images, data_samples=[DataSample().set_gt_label(c) for c in (0, 7)])
        model.train_step(data, optim_wrapper)
    torch.save({'state_dict': model.state_dict(), 'meta': {'note': 'two steps'}}, path)
    return path


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp('research')
    return {'xt': briefly_trained(XT, root / 'xt.pth'),
            'convnext': briefly_trained(CONVNEXT, root / 'convnext.pth')}


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    from PIL import Image
    root = tmp_path_factory.mktemp('images')
    paths = []
    for i, size in enumerate(((300, 240), (256, 320))):
        rng = np.random.RandomState(i)
        picture = (rng.rand(size[1], size[0], 3) * 80).astype(np.uint8)
        picture[60:180, 90:210, i] = 230  # a bright square in one colour channel
        paths.append(root / f'img{i}.png')
        Image.fromarray(picture).save(paths[-1])
    return paths


def png_shape(path: Path):
    from PIL import Image
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB')).shape


# -------------------------------------------------------------- kernels
def test_stage_map_size_is_the_backbones():
    model = ParCNetV2('xt')
    for size in ((224, 224), (512, 384), (97, 131), (800, 1216)):
        assert [stage_map_size(size, s) for s in range(4)] == model.stage_sizes(size)


def test_vis_kernels_draws_the_block_kernels(checkpoints, tmp_path):
    result = run_tool('tools/visualization/vis_kernels.py', checkpoints['xt'], '--out-dir',
                      tmp_path / 'fixed')
    assert result.returncode == 0, result.stderr[-2000:]
    # Default: the last block of stage 3 (XT: 9 blocks): Fig. 3 at 12x8 in, Fig. 4 at 16x8 in.
    assert png_shape(tmp_path / 'fixed' / 'kernels_1d_s2_b8.png') == (800, 1200, 3)
    assert png_shape(tmp_path / 'fixed' / 'kernels_2d_s2_b8.png') == (800, 1600, 3)

    result = run_tool('tools/visualization/vis_kernels.py', checkpoints['xt'], '--stage', '1',
                      '--block', '0', '--kernel-mode', 'global', '--input-size', '320', '256',
                      '--channels-2d', '12', '--out-dir', tmp_path / 'global')
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'global mode at 320x256' not in result.stdout  # the title is in the picture
    assert png_shape(tmp_path / 'global' / 'kernels_2d_s1_b0.png') == (400, 1600, 3)

    # What the tool resolves is what the block applies: a global-mode backbone
    # with the checkpoint's weights, asked for its kernels on those maps.
    state = torch.load(checkpoints['xt'], weights_only=False)['state_dict']
    model = ParCNetV2('xt', kernel_mode='global')
    model.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()
                           if k.startswith('backbone.')})
    map_size = model.stage_sizes((320, 256))[1]
    layer = model.stages[1][0].token_mixer.dwconv1
    ours = kernels_at(*oversized_kernels(state, 1, 0), 'global', map_size)
    for drawn, applied in zip(ours, layer.kernels(*map_size)):
        np.testing.assert_allclose(drawn, applied.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert map_size == (40, 32) and ours[0].shape == (96, 79) and ours[1].shape == (96, 63)


def longest_run(mask: np.ndarray, axis: int) -> int:
    """The longest run of True along ``axis`` (0: down a column, 1: along a row)."""
    mask = np.moveaxis(mask, axis, -1).astype(np.int32)
    longest, current = 0, np.zeros(mask.shape[:-1], np.int32)
    for index in range(mask.shape[-1]):
        current = (current + 1) * mask[..., index]
        longest = max(longest, int(current.max()))
    return longest


@pytest.mark.parametrize('line', ['column', 'row'])
def test_vis_kernels_draws_a_known_kernel(tmp_path, line):
    """Every channel's vertical kernel all ones and horizontal kernel one centre tap
    is the 2-D kernel ``k_h k_w^T`` of one bright centre column; the reverse, one
    bright centre row.  Looked at in the drawn picture: its saturated red pixels
    (the colour map's top) run far longer along that direction than across it."""
    model = ParCNetV2('xt')
    state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    base = 'backbone.stages.2.8.token_mixer.dwconv1'
    ones, delta = torch.ones(192, 27), torch.zeros(192, 27)
    delta[:, 13] = 1
    kernel_h, kernel_w = (ones, delta) if line == 'column' else (delta, ones)
    state[f'{base}.conv_h.weight'] = kernel_h.view(192, 1, 27, 1)
    state[f'{base}.conv_w.weight'] = kernel_w.view(192, 1, 1, 27)
    torch.save({'state_dict': state}, tmp_path / 'known.pth')
    result = run_tool('tools/visualization/vis_kernels.py', tmp_path / 'known.pth',
                      '--channels-2d', '8', '--out-dir', tmp_path / 'out')
    assert result.returncode == 0, result.stderr[-2000:]
    from PIL import Image
    picture = np.asarray(Image.open(tmp_path / 'out' / 'kernels_2d_s2_b8.png').convert('RGB'))
    red, green, blue = (picture[..., i].astype(int) for i in range(3))
    mask = (green < 60) & (red > blue + 40)
    down, across = longest_run(mask, 0), longest_run(mask, 1)
    assert mask.sum() > 100, 'no bright kernel drawn'
    if line == 'column':
        assert down > 5 * across, (down, across)
    else:
        assert across > 5 * down, (down, across)


@pytest.mark.parametrize('args,message', [
    (['--stage', '7'], '--stage 7'),
    (['--block', '9'], '--block 9'),
    (['--kernel-mode', 'global'], '--input-size'),
])
def test_vis_kernels_bad_input_is_one_line(checkpoints, tmp_path, args, message):
    result = run_tool('tools/visualization/vis_kernels.py', checkpoints['xt'], *args,
                      '--out-dir', tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


# ------------------------------------------------------------- Grad-CAM
def test_vis_cam_compare_matches_pytorch_grad_cam(checkpoints, images, tmp_path, monkeypatch):
    # The tool's process and this one compute the same model: the same 1x1 product
    # backend in both (each would otherwise pick its own by timing).
    monkeypatch.setenv('MMPARC_LINEAR_BACKEND', 'blas')
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from mmparc.visualization.cam import load_inputs
    out = tmp_path / 'compare.png'
    result = run_tool('tools/visualization/vis_cam_compare.py', *images,
                      '--convnext', CONVNEXT, checkpoints['convnext'],
                      '--parcnetv2', XT, checkpoints['xt'], '--target-category', '3',
                      '--out', out)
    assert result.returncode == 0, result.stderr[-2000:]
    from PIL import Image
    grid = np.asarray(Image.open(out).convert('RGB'))
    assert grid.shape == (3 * 224, 2 * 224, 3)  # images, ConvNeXt, ParCNetV2

    for row, (config, name) in enumerate(((CONVNEXT, 'convnext'), (XT, 'xt')), start=1):
        cfg, model = build_classifier(config)
        state = torch.load(checkpoints[name], weights_only=False)['state_dict']
        model.load_state_dict(state)
        model.eval()
        inputs, pictures = load_inputs(model, cfg.test_dataloader.dataset.pipeline, images)
        cams = GradCAM(model=model, target_layers=[model.backbone.stages[3]])(
            inputs, [ClassifierOutputTarget(3)] * len(images))
        assert cams.std() > 0.05  # maps, not constants
        for col, (picture, cam) in enumerate(zip(pictures, cams)):
            if row == 1:
                np.testing.assert_array_equal(grid[:224, col * 224:(col + 1) * 224], picture)
            expected = show_cam_on_image(picture.astype(np.float32) / 255, cam, use_rgb=True)
            drawn = grid[row * 224:(row + 1) * 224, col * 224:(col + 1) * 224]
            assert np.abs(drawn.astype(int) - expected.astype(int)).max() <= 2


def test_vis_cam_compare_names_the_missing_package(checkpoints, images, tmp_path):
    blocker = tmp_path / 'blocker' / 'pytorch_grad_cam'
    blocker.mkdir(parents=True)
    (blocker / '__init__.py').write_text("raise ImportError('not installed')\n")
    import os
    env = dict(os.environ, PYTHONPATH=f'{blocker.parent}{os.pathsep}'
               f'{os.environ.get("PYTHONPATH", "")}')
    result = run_tool('tools/visualization/vis_cam_compare.py', images[0],
                      '--convnext', CONVNEXT, checkpoints['convnext'],
                      '--parcnetv2', XT, checkpoints['xt'], '--out', tmp_path / 'x.png', env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pytorch_grad_cam' in lines[0] and "mmparc[tools]" in lines[0]
    assert not (tmp_path / 'x.png').exists()


# ------------------------------------------------------ analyze --paper
def test_analyze_paper_prints_ours_beside_the_paper(capsys):
    sys.path.insert(0, str(REPO / 'tools' / 'analysis_tools'))
    try:
        import analyze
    finally:
        sys.path.pop(0)
    analyze.print_paper_table([str(REPO / 'configs/ablations/parcnetv2_xt_merge_add.py')], None)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('|')]
    assert lines[-1] == ('| Supp. Table 3 | Add | `' + str(REPO / 'configs/ablations/'
                         'parcnetv2_xt_merge_add.py') + '` | 7.4 | 7.43 | 1.6 | 1.55 | 68.4 |')


def test_analyze_measures_a_variant_with_cfg_options(capsys):
    """The figures the configs quote for the variants the paper leaves open."""
    sys.path.insert(0, str(REPO / 'tools' / 'analysis_tools'))
    try:
        import analyze
    finally:
        sys.path.pop(0)
    config = str(REPO / 'configs/ablations/parcnetv2_xt_dwconv_only.py')
    analyze.print_paper_table([config], None, {'model.backbone.local_kernel_sizes': [7] * 4})
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith('|')][-1]
    assert row.endswith('| 7.4 | 7.25 | 1.6 | 1.41 | 78.9 |'), row


def test_analyze_paper_refuses_configs_without_figures():
    result = run_tool('tools/analysis_tools/analyze.py', XT, '--paper')
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'imagenet_parcnetv2_xt.py' in errors[0] and 'paper' in errors[0]
    assert '|' not in result.stdout  # refused before any work


# ------------------------------------------------------------ ImageNet-21K
def test_in21k_pretraining_config():
    cfg = Config.fromfile(str(REPO / 'configs/imagenet21k/parcnetv2_b_in21k_pre_224.py'))
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == 21841
    assert cfg.model.backbone.arch == 'b' and cfg.model.backbone.drop_path_rate == 0.1
    assert cfg.train_dataloader.dataset.type == 'ImageNet21k'
    assert cfg.train_dataloader.dataset.split == 'train'
    assert cfg.val_dataloader is None and cfg.val_cfg is None
    warmup, cosine = cfg.param_scheduler
    assert (warmup.end, cosine.begin, cosine.end, cfg.train_cfg.max_epochs) == (5, 5, 90, 90)
    assert [a['alpha'] for a in cfg.model.train_cfg.augments] == [0.8, 1.0]


def test_in21k_finetuning_loads_the_pretrained_backbone(tmp_path):
    """The fine-tuning config starts from a 21K checkpoint's backbone (a small XT one
    here), with a fresh 1000-class head, layer-wise lr decay and EMA."""
    from mmengine.optim import build_optim_wrapper
    pre_cfg = Config.fromfile(str(REPO / 'configs/imagenet21k/parcnetv2_b_in21k_pre_224.py'))
    ft_path = REPO / 'configs/imagenet21k/parcnetv2_b_in21k_ft_in1k_224.py'
    small = {'model.backbone.arch': 'xt', 'model.head.in_channels': 320}
    pre_cfg.merge_from_dict(small)
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    pretrained = MODELS.build(pre_cfg.model)
    pretrained.init_weights()
    assert pretrained.head.fc.weight.shape == (21841, 320)
    torch.save({'state_dict': pretrained.state_dict()}, tmp_path / 'in21k.pth')

    cfg = Config.fromfile(str(ft_path))
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    assert not cfg.model.train_cfg  # no mixup / cutmix when fine-tuning
    assert cfg.train_cfg.max_epochs == 30 and cfg.optim_wrapper.optimizer.lr == 5e-5
    assert [h.type for h in cfg.custom_hooks] == ['EMAHook']
    cfg.merge_from_dict(dict(small, **{'model.backbone.init_cfg.checkpoint':
                                       str(tmp_path / 'in21k.pth')}))
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(cfg.model)
    model.init_weights()
    for key, value in pretrained.backbone.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[key], value)
    assert model.head.fc.weight.shape == (1000, 320)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    rates = sorted({group['lr'] for group in optim_wrapper.optimizer.param_groups})
    assert rates[-1] == pytest.approx(5e-5) and rates[0] < 5e-5 * 0.8**5


# ------------------------------------------------------ UperNet test resize
def test_upernet_test_pipelines_resize_to_multiples_of_32(tmp_path):
    from mmengine.dataset import Compose
    from PIL import Image
    init_default_scope('mmseg')
    from mmseg.registry import TRANSFORMS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    image = tmp_path / 'scene.png'
    Image.fromarray(np.zeros((333, 517, 3), np.uint8)).save(image)
    annotation = tmp_path / 'scene_seg.png'
    Image.fromarray(np.ones((333, 517), np.uint8)).save(annotation)
    cfg = Config.fromfile(str(REPO / 'configs/upernet_parcnetv2_t.py'))
    for loader in ('val_dataloader', 'test_dataloader'):
        pipeline = Compose([TRANSFORMS.build(t) for t in cfg[loader].dataset.pipeline])
        out = pipeline(dict(img_path=str(image), seg_map_path=str(annotation),
                            reduce_zero_label=True, seg_fields=[]))
        height, width = out['data_samples'].img_shape
        assert height % 32 == 0 and width % 32 == 0, (height, width)
        assert (height, width) == (512, 800)  # 333x517 -> 512x795 (keep ratio) -> 512x800
        assert out['data_samples'].gt_sem_seg.data.shape[1:] == (333, 517)  # original maps
    tta = cfg.tta_pipeline[1].transforms
    assert [t.type for t in tta[1]] == ['ResizeToMultiple'] and tta[1][0].size_divisor == 32


def test_in21k_head_reduced_to_in1k_classes(tmp_path):
    """The 1K rows of a 21K head, in 1K order; a class the head lacks is one error line."""
    torch.manual_seed(0)
    source = [f'n{i:08d}' for i in range(7)]
    target = ['n00000005', 'n00000001', 'n00000003']
    state = {'backbone.w': torch.randn(3), 'head.fc.weight': torch.randn(7, 4),
             'head.fc.bias': torch.randn(7)}
    torch.save({'state_dict': state, 'meta': {}}, tmp_path / 'in21k.pth')
    (tmp_path / 'src.txt').write_text('\n'.join(f'{c} name {i}' for i, c in enumerate(source)))
    (tmp_path / 'dst.txt').write_text('\n'.join(target) + '\n')
    tool = 'tools/model_converters/in21k_head_to_in1k.py'
    result = run_tool(tool, tmp_path / 'in21k.pth', tmp_path / 'in1k.pth', '--source-classes',
                      tmp_path / 'src.txt', '--target-classes', tmp_path / 'dst.txt')
    assert result.returncode == 0, result.stderr[-2000:]
    out = torch.load(tmp_path / 'in1k.pth', weights_only=True)['state_dict']
    torch.testing.assert_close(out['head.fc.weight'], state['head.fc.weight'][[5, 1, 3]])
    torch.testing.assert_close(out['head.fc.bias'], state['head.fc.bias'][[5, 1, 3]])
    torch.testing.assert_close(out['backbone.w'], state['backbone.w'])

    (tmp_path / 'bad.txt').write_text('n00000001\nn09999999\n')
    result = run_tool(tool, tmp_path / 'in21k.pth', tmp_path / 'bad.pth', '--source-classes',
                      tmp_path / 'src.txt', '--target-classes', tmp_path / 'bad.txt')
    assert result.returncode == 1 and not (tmp_path / 'bad.pth').exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'n09999999' in lines[0] and 'in21k.pth' in lines[0], lines
