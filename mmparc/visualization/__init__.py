"""Figures of what a ParCNetV2 model learned, for any checkpoint."""
from .kernels import (agg_pyplot, kernels_at, oversized_kernels, plot_kernel_products,
                      plot_kernel_profiles, plot_oversized_kernels, random_channels,
                      save_figure, stage_map_size)

__all__ = [
    'agg_pyplot', 'kernels_at', 'oversized_kernels', 'plot_kernel_products',
    'plot_kernel_profiles', 'plot_oversized_kernels', 'random_channels', 'save_figure',
    'stage_map_size'
]
