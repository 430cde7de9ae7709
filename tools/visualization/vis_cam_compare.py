#!/usr/bin/env python
"""Grad-CAM of ConvNeXt and ParCNetV2 side by side (supplement Sec. J, Fig. 5).

    python tools/visualization/vis_cam_compare.py img1.jpg img2.jpg \\
        --convnext configs/ablations/convnext_t.py convnext_t.pth \\
        --parcnetv2 configs/imagenet_parcnetv2_t.py parcnetv2_t.pth \\
        --out docs/grad_cam.png

Writes one PNG: the images (after each config's test pipeline, i.e. the
224x224 centre crop) on the first row, ConvNeXt's Grad-CAM on the second and
ParCNetV2's on the third, as the paper's Fig. 5.  Maps are pytorch-grad-cam's
(``pip install 'mmparc[tools]'``) at ``--target-layers`` (default
``backbone.stages.3``, the last stage of both backbones; the same layer
mmpretrain's ``vis_cam.py --target-layers backbone.stages.3`` uses), for each
image's top prediction unless ``--target-category`` is given.  Checkpoints
are any mmpretrain classifier checkpoints of the configs (Runner files or
bare state dicts).
"""
import argparse
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

for _message in ('pkg_resources is deprecated', '``build_loss`` would be deprecated'):
    warnings.filterwarnings('ignore', message=_message)

import mmparc  # noqa: F401  (registers ParCNetV2)

from mmparc.checkpoint import check_fits, load_checkpoint_file, shapes_of  # noqa: E402
from mmparc.checkpoint import state_dict_of  # noqa: E402
from mmparc.fileio import ToolError, atomic_output_file, run_tool  # noqa: E402


def load_classifier(config: str, checkpoint: str):
    """The classifier of an mmpretrain config with a checkpoint's weights, and its config."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    if not Path(config).is_file():
        raise ToolError(f'{config}: config file not found')
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    from mmpretrain.registry import MODELS
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    cfg.model.get('backbone', {}).pop('init_cfg', None)
    model = MODELS.build(cfg.model)
    state = state_dict_of(load_checkpoint_file(checkpoint), checkpoint)
    check_fits(shapes_of(model), state, checkpoint, f'the model of {config}')
    model.load_state_dict(state)
    return model.eval(), cfg


def compare(images: Sequence[str], models: Sequence[Sequence[str]], out: str,
            target_layers: Sequence[str], categories: Optional[List[int]]) -> Path:
    from mmparc.visualization.cam import cam_grid, grad_cams, load_inputs, require_grad_cam
    try:
        require_grad_cam()
    except ImportError as err:
        raise ToolError(str(err)) from err
    for image in images:
        if not Path(image).is_file():
            raise ToolError(f'{image}: image file not found')
    if categories is not None and len(categories) not in (1, len(images)):
        raise ToolError(f'--target-category: give one class or one per image ({len(images)}), '
                        f'got {len(categories)}')
    if categories is not None and len(categories) == 1:
        categories = categories * len(images)
    if len(target_layers) not in (1, len(models)):
        raise ToolError(f'--target-layers: give one layer or one per model ({len(models)})')
    layers = list(target_layers) * (len(models) // len(target_layers))
    pictures, rows = None, []
    for (config, checkpoint), layer in zip(models, layers):
        model, cfg = load_classifier(config, checkpoint)
        inputs, shown = load_inputs(model, cfg.test_dataloader.dataset.pipeline, images)
        pictures = shown if pictures is None else pictures
        if shown[0].shape != pictures[0].shape:
            raise ToolError(f'{config}: its test pipeline gives {shown[0].shape[:2]} images, '
                            f'the first config {pictures[0].shape[:2]}; use configs with one '
                            'input size')
        try:
            rows.append(grad_cams(model, inputs, layer, categories))
        except ValueError as err:
            raise ToolError(f'{config}: {err}') from err
    with atomic_output_file(out) as tmp:
        cam_grid(pictures, rows, tmp)
    return Path(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('images', nargs='+')
    parser.add_argument('--convnext', nargs=2, required=True, metavar=('CONFIG', 'CHECKPOINT'))
    parser.add_argument('--parcnetv2', nargs=2, required=True,
                        metavar=('CONFIG', 'CHECKPOINT'))
    parser.add_argument('--out', default='grad_cam_compare.png', help='PNG to write')
    parser.add_argument('--target-layers', nargs='+', default=['backbone.stages.3'],
                        help='one module name, or one per model (ConvNeXt, ParCNetV2)')
    parser.add_argument('--target-category', nargs='+', type=int,
                        help='class to explain: one for all images or one per image '
                             '(default: each image\'s top prediction)')
    args = parser.parse_args()
    out = compare(args.images, [args.convnext, args.parcnetv2], args.out, args.target_layers,
                  args.target_category)
    print(f'wrote {out}')


if __name__ == '__main__':
    run_tool(main)
