"""ParCNetV2 for the OpenMMLab stack.

Importing ``mmparc`` registers its models and engine parts into mmengine's
registries (found from mmdet, mmseg and mmpretrain) and makes every checkpoint
mmengine loads (resume, ``load_from``, ``Pretrained``, inferencers) read as
data by mmparc's own restricted unpickler (:mod:`mmparc.checkpoint`; torch's
process-wide allow-list is neither read nor changed).
"""
from .version import __version__

from . import checkpoint  # noqa: E402
checkpoint.register_checkpoint_loader()

from . import engine, models  # noqa: E402  (registration side effects)
from .models import ParCNetV2  # noqa: E402

__all__ = ['ParCNetV2', '__version__', 'engine', 'models']
