from .amp import FallbackAmpOptimWrapper

__all__ = ['FallbackAmpOptimWrapper']
