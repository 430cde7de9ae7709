"""ParCNetV2 as ordinary modules: hooks fire on every layer, stage outputs are
``(B, C, H, W)``, and mmpretrain's ``vis_cam.py`` draws the Grad-CAM map that
pytorch-grad-cam and the plain Grad-CAM formula give."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmparc.models import ParCNetV2

REPO = Path(__file__).resolve().parents[1]


def hook_everything(model: torch.nn.Module):
    """Forward hooks on every module that holds parameters, and on every stage."""
    calls = {}
    handles = []
    names = {name for name, module in model.named_modules()
             if name and any(True for _ in module.parameters(recurse=False))}
    names |= {f'stages.{i}' for i in range(len(model.stages))}
    names |= {f'downsample_layers.{i}' for i in range(len(model.downsample_layers))}
    for name, module in model.named_modules():
        if name in names:
            def hook(module, args, output, name=name):
                calls.setdefault(name, []).append(output)
            handles.append(module.register_forward_hook(hook))
    return names, calls, handles


@pytest.mark.parametrize('train', [True, False])
@pytest.mark.parametrize('kernel_mode', ['fixed', 'global'])
def test_forward_hooks_fire_on_every_layer(train, kernel_mode):
    model = ParCNetV2('xt', kernel_mode=kernel_mode, out_indices=(0, 1, 2, 3),
                      gap_before_final_norm=False, drop_path_rate=0.1).train(train)
    names, calls, handles = hook_everything(model)
    assert len(names) > 100  # every conv, norm, projection and scale of xt
    x = torch.randn(2, 3, 96, 128, requires_grad=train)
    with torch.set_grad_enabled(train):
        outs = model(x)
    assert set(calls) == names, f'never called: {sorted(names - set(calls))}'
    assert all(len(outputs) == 1 for outputs in calls.values())  # one call, the whole map
    for i, out in enumerate(outs):  # a stage's output, hooked, is (B, C, H, W)
        stage_out = calls[f'stages.{i}'][0]
        assert stage_out.shape == (2, model.dims[i], *out.shape[2:])
        assert calls[f'downsample_layers.{i}'][0].shape == stage_out.shape
    for handle in handles:
        handle.remove()


def test_every_layer_takes_and_returns_nchw():
    model = ParCNetV2('xt', out_indices=(0, 1, 2, 3), gap_before_final_norm=False).eval()
    shapes = {}

    def record(module, args, out, name):
        if isinstance(out, torch.Tensor):
            shapes[name] = (args[0].shape, out.shape)

    for name, module in model.named_modules():
        module.register_forward_hook(lambda m, args, out, name=name: record(m, args, out, name))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 96))
    block = shapes['stages.1.0']
    assert block[0] == block[1] == (1, 96, 8, 12)
    assert shapes['stages.1.0.token_mixer.pwconv1'][1] == (1, 192, 8, 12)
    assert shapes['stages.1.0.token_mixer.dwconv1'][1] == (1, 96, 8, 12)
    assert shapes['stages.1.0.mlp.fc1'][1] == (1, 480, 8, 12)


# ------------------------------------------------------------- Grad-CAM
def grad_cam_formula(model, inputs, layer, category):
    """Grad-CAM by its definition (Selvaraju et al.): ReLU(sum_c mean(dy/dA_c) A_c), upsampled."""
    store = {}
    handle = layer.register_forward_hook(lambda m, a, out: store.update(act=out))
    try:
        logits = model(inputs, mode='tensor')
        grad, = torch.autograd.grad(logits[0, category], store['act'])
    finally:
        handle.remove()
    act = store['act'].detach()
    cam = F.relu((grad.mean((2, 3), keepdim=True) * act).sum(1, keepdim=True))
    cam = F.interpolate(cam, inputs.shape[2:], mode='bilinear', align_corners=False)[0, 0]
    cam = cam - cam.min()
    return (cam / cam.max().clamp_min(1e-7)).numpy()


@pytest.mark.slow
def test_vis_cam_draws_the_grad_cam_map(tmp_path):
    cv2 = pytest.importorskip('cv2')
    import mmpretrain
    from mmengine.config import Config
    from mmengine.dataset import Compose, default_collate
    from mmpretrain.apis import get_model
    from mmpretrain.registry import TRANSFORMS
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    config = str(REPO / 'configs' / 'imagenet_parcnetv2_xt.py')
    cfg = Config.fromfile(config)
    model = get_model(cfg)
    torch.manual_seed(0)
    model.init_weights()
    checkpoint = tmp_path / 'cls_xt.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    image = (np.random.RandomState(0).rand(240, 300, 3) * 255).astype(np.uint8)
    cv2.circle(image, (150, 120), 60, (0, 0, 255), -1)
    cv2.imwrite(str(tmp_path / 'img.png'), image)
    category = 3

    tool = Path(mmpretrain.__file__).parent / '.mim' / 'tools' / 'visualization' / 'vis_cam.py'
    result = subprocess.run(
        [sys.executable, str(tool), str(tmp_path / 'img.png'), config, str(checkpoint),
         '--target-layers', 'backbone.stages.3', '--target-category', str(category),
         '--save-path', str(tmp_path / 'cam.png')], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    drawn = cv2.imread(str(tmp_path / 'cam.png'))

    # The same input as the tool, then the CAM twice: pytorch-grad-cam, and the formula.
    model.eval()
    data = Compose([TRANSFORMS.build(t) for t in cfg.test_dataloader.dataset.pipeline])(
        {'img_path': str(tmp_path / 'img.png')})
    src = data['inputs'].numpy().transpose(1, 2, 0)
    inputs = model.data_preprocessor(default_collate([data]), False)['inputs']
    cam = GradCAM(model=model, target_layers=[model.backbone.stages[3]])
    library = cam(inputs, [ClassifierOutputTarget(category)])[0]
    formula = grad_cam_formula(model, inputs, model.backbone.stages[3], category)
    assert np.abs(library - formula).max() < 1e-3
    assert library.std() > 0.05  # a map, not a constant

    spec = importlib.util.spec_from_file_location('vis_cam', tool)
    vis_cam = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vis_cam)
    vis_cam.show_cam_grad(formula[None], src, 'GradCAM', tmp_path / 'expected.png')
    expected = cv2.imread(str(tmp_path / 'expected.png'))
    assert drawn.shape == expected.shape == (224, 224, 3)
    assert np.abs(drawn.astype(int) - expected.astype(int)).max() <= 2
