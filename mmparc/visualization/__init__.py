"""Figures of what a ParCNetV2 model learned, for any checkpoint."""
from .kernels import agg_pyplot, oversized_kernels, plot_oversized_kernels

__all__ = ['agg_pyplot', 'oversized_kernels', 'plot_oversized_kernels']
