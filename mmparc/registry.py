"""mmparc's registries, children of mmengine's roots under the scope ``mmparc``.

Every module registered here is also registered in the mmengine root
registry.  mmdet, mmseg and mmpretrain registries are children of those
roots and look names up in their ancestors, so ``type='ParCNetV2'`` resolves
from any of them, whichever was imported first; ``type='mmparc.ParCNetV2'``
resolves through the ``mmparc`` child.  Names that downstream packages also
use (e.g. ``LearningRateDecayOptimizerConstructor``) are avoided, so ours
neither shadows theirs nor is shadowed.
"""
from typing import Optional, Type, Union

from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as ROOT_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as ROOT_OPTIM_WRAPPERS
from mmengine.registry import Registry

SCOPE = 'mmparc'


class MirroredRegistry(Registry):
    """A scoped registry whose registrations are mirrored into its parent."""

    def _register_module(self, module: Type, module_name: Optional[Union[str, list]] = None,
                         force: bool = False) -> None:
        super()._register_module(module, module_name, force)
        self.parent._register_module(module, module_name, force)


MODELS = MirroredRegistry('model', parent=ROOT_MODELS, scope=SCOPE,
                          locations=['mmparc.models'])
OPTIM_WRAPPER_CONSTRUCTORS = MirroredRegistry(
    'optimizer wrapper constructor', parent=ROOT_OPTIM_WRAPPER_CONSTRUCTORS, scope=SCOPE,
    locations=['mmparc.engine'])
OPTIM_WRAPPERS = MirroredRegistry('optim_wrapper', parent=ROOT_OPTIM_WRAPPERS, scope=SCOPE,
                                  locations=['mmparc.engine'])
