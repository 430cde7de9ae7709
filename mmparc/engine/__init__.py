from .amp import FallbackAmpOptimWrapper, cpu_autocast_supports
from .layer_decay import LayerDecayOptimWrapperConstructor

__all__ = ['FallbackAmpOptimWrapper', 'LayerDecayOptimWrapperConstructor', 'cpu_autocast_supports']
