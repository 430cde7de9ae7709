"""ParCNetV2 for the OpenMMLab stack.

Importing ``mmparc`` registers its models and engine parts into mmengine's
registries (found from mmdet, mmseg and mmpretrain) and makes Runner
checkpoints load through it with torch's default ``weights_only=True``
(:mod:`mmparc.checkpoint`; nothing is added to torch's process-wide allow-list).
"""
from .version import __version__

from . import checkpoint  # noqa: E402
checkpoint.register_checkpoint_loader()

from . import engine, models  # noqa: E402  (registration side effects)
from .models import ParCNetV2  # noqa: E402

__all__ = ['ParCNetV2', '__version__', 'engine', 'models']
