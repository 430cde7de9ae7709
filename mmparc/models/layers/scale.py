"""Learnable per-channel scale of a residual stream."""
import torch
import torch.nn as nn


class Scale(nn.Module):
    """``x * scale`` per channel of NCHW maps (the official ``res_scale``)."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim, ), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(-1, 1, 1)
