"""ParCNetV2 for the OpenMMLab stack.

Importing ``mmparc`` registers its models and engine parts into mmengine's
registries (found from mmdet, mmseg and mmpretrain) and makes Runner
checkpoints loadable with torch's default ``weights_only=True``.
"""
from .safe_load import allow_runner_checkpoints
from .version import __version__

allow_runner_checkpoints()

from . import engine, models  # noqa: E402  (registration side effects)
from .models import ParCNetV2  # noqa: E402

__all__ = ['ParCNetV2', '__version__', 'engine', 'models']
