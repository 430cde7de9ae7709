"""Deployment of every ParCNetV2 inside an OpenMMLab model (classifier, detector, ...).

The re-parameterisation itself belongs to the layers: see
:meth:`mmparc.models.ParCNetV2.switch_to_deploy`.
"""
from typing import Optional, Sequence, Tuple, Union

import torch.nn as nn

from .parcnetv2 import ParCNetV2


def deploy_model(model: nn.Module, input_size: Optional[Tuple[int, int]] = None,
                 fuse: Union[str, Sequence[bool]] = 'auto') -> nn.Module:
    """Call ``switch_to_deploy(input_size, fuse)`` on each ParCNetV2 in ``model``; eval mode.

    ``input_size=None`` re-parameterises only what holds at every input size
    (what mmdeploy's ``switch_to_deploy()`` call does to ``model.backbone``).
    """
    backbones = [m for m in model.modules() if isinstance(m, ParCNetV2)]
    if not backbones:
        raise ValueError(f'{type(model).__name__} contains no ParCNetV2')
    for backbone in backbones:
        backbone.switch_to_deploy(input_size, fuse)
    return model.eval()
