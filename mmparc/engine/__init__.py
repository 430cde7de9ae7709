from .amp import FallbackAmpOptimWrapper
from .layer_decay import LayerDecayOptimWrapperConstructor

__all__ = ['FallbackAmpOptimWrapper', 'LayerDecayOptimWrapperConstructor']
