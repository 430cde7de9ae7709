"""Norm layers of ParCNetV2, on channels-last ``(B, H, W, C)`` tensors."""
import torch
import torch.nn as nn


class L2LayerNorm(nn.Module):
    """The official ParCNetV2 block norm: ``w * (x - mean) / ||x - mean||_2``.

    It differs from :class:`torch.nn.LayerNorm`: the centred channel vector is
    divided by its Euclidean length (clamped at ``eps``), not by its standard
    deviation, so outputs are ``1 / sqrt(C)`` of a LayerNorm's and ``eps``
    acts on the length.  Pretrained weights only reproduce the official
    network with exactly this normalisation.

    Args:
        num_channels: Size of the last (channel) dimension.
        eps: Lower bound of the divisor.
        bias: Whether to learn an additive bias (the official model has none).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6, bias: bool = False) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(-1, keepdim=True)
        length = torch.linalg.vector_norm(centred, dim=-1, keepdim=True)
        out = centred / length.clamp_min(self.eps) * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return f'{self.num_channels}, eps={self.eps}, bias={self.bias is not None}'
