"""Grad-CAM of classifiers side by side (supplement Sec. J, Fig. 5).

The maps come from pytorch-grad-cam (the package mmpretrain's ``vis_cam.py``
uses; ``pip install 'mmparc[tools]'``), called on the classifier as a module
with the config's test pipeline and data preprocessor, so they are the maps
``vis_cam.py --target-layers ...`` draws for each model.
"""
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

PathLike = Union[str, Path]

__all__ = ['require_grad_cam', 'load_inputs', 'grad_cams', 'cam_grid']


def require_grad_cam():
    """The ``pytorch_grad_cam`` module, or an ImportError naming the package to install."""
    try:
        import pytorch_grad_cam
    except ImportError as err:
        raise ImportError("Grad-CAM needs the package pytorch_grad_cam (grad-cam): "
                          "pip install 'mmparc[tools]'") from err
    return pytorch_grad_cam


def load_inputs(model: torch.nn.Module, pipeline: Sequence[dict],
                images: Sequence[PathLike]) -> Tuple[torch.Tensor, List[np.ndarray]]:
    """Model inputs of ``images`` through a config's test pipeline and the model's
    data preprocessor, and the pipeline's RGB pictures (``uint8``, ``H x W x 3``)."""
    from mmengine.dataset import Compose, default_collate
    from mmpretrain.registry import TRANSFORMS
    transform = Compose([TRANSFORMS.build(t) for t in pipeline])
    samples = [transform({'img_path': str(image)}) for image in images]
    pictures = [s['inputs'].numpy().transpose(1, 2, 0)[..., ::-1].copy() for s in samples]
    inputs = model.data_preprocessor(default_collate(samples), False)['inputs']
    return inputs, pictures


def grad_cams(model: torch.nn.Module, inputs: torch.Tensor, target_layer: str,
              categories: Optional[Sequence[int]] = None) -> np.ndarray:
    """``(N, H, W)`` Grad-CAM maps in [0, 1] at ``target_layer`` (a module name).

    ``categories``: the class explained per image; by default each image's
    top prediction (as pytorch-grad-cam and ``vis_cam.py`` do).
    """
    grad_cam = require_grad_cam()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    layers = dict(model.named_modules())
    if target_layer not in layers:
        raise ValueError(f'target layer {target_layer!r} is not a module of this model '
                         f'(e.g. backbone.stages.3)')
    targets = None if categories is None else [ClassifierOutputTarget(c) for c in categories]
    model.eval()
    cam = grad_cam.GradCAM(model=model, target_layers=[layers[target_layer]])
    return cam(inputs, targets)


def cam_grid(pictures: Sequence[np.ndarray], rows: Sequence[np.ndarray],
             out_file: PathLike) -> Path:
    """One picture: the images on top, then one row of CAM overlays per model.

    Each tile is the image (``H x W x 3`` RGB ``uint8``) with its map drawn
    by pytorch-grad-cam's ``show_cam_on_image``; tiles are laid out without
    margins, so the picture is ``(1 + len(rows)) * H`` by ``len(pictures) * W``.
    """
    require_grad_cam()
    from PIL import Image
    from pytorch_grad_cam.utils.image import show_cam_on_image
    tiles = [list(pictures)]
    for cams in rows:
        tiles.append([show_cam_on_image(p.astype(np.float32) / 255, c, use_rgb=True)
                      for p, c in zip(pictures, cams)])
    grid = np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)
    out_file = Path(out_file)
    Image.fromarray(grid).save(out_file, format='PNG')
    return out_file
