"""The bifurcate gate's output: ``conv1x1(value * act(gate))``, ``act`` GELU or identity.

Both bifurcate gate units of ParCNetV2 end this way: the spatial one (the
token mixer's ``pwconv2``, ``act`` identity) and the channel one (the MLP's
``fc2``, ``act`` GELU).  The fast path saves only ``value`` and ``gate`` for
the backward pass and recomputes the product (and ``act(gate)``) there, an
element-wise pass, instead of keeping them for the whole step.  That is 5
of the ~22 saved ``C``-channel maps of a block (2.5C + 2.5C in the MLP, C in
the mixer).  Inputs are NCHW in any storage (the mixer gives channel-major
maps, the MLP's ``fc1`` channel-major ones in training and channels-last
ones in inference); the fast path's output is channels-last.  Reference:
:func:`gated_projection_reference`.

``merge='add'`` computes ``conv1x1(value + act(gate))`` instead: the
supplementary material's Table 3 ablation, which merges the two branches
by addition.  It is evaluated by its reference formula only (an ablation,
not a model anyone deploys), in every mode.
"""
import torch
import torch.nn.functional as F

from .dispatch import as_dtype, needs_grad, on_devices
from .matmul import linear


MERGES = ('mul', 'add')


def gated_projection_reference(value: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor,
                               gelu: bool, merge: str = 'mul') -> torch.Tensor:
    """``F.conv2d(value * act(gate), weight)`` (``+`` for ``merge='add'``).

    ``weight`` is ``(O, I)`` or ``(O, I, 1, 1)``.
    """
    gate = F.gelu(gate) if gelu else gate
    hidden = value + gate if merge == 'add' else value * gate
    return F.conv2d(hidden, weight.view(weight.shape[0], weight.shape[1], 1, 1).to(hidden.dtype))


class _GatedProjection(torch.autograd.Function):
    """``linear((a * act(b)).t(), weight)`` for ``(K, N)`` ``a`` and ``b``; saves ``a``, ``b``.

    Every product, forward and backward, runs on :func:`~.matmul.linear`.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor,
                gelu: bool) -> torch.Tensor:
        ctx.save_for_backward(a, b, weight)
        ctx.gelu = gelu
        return linear((a * (F.gelu(b) if gelu else b)).t(), as_dtype(weight, a.dtype), None)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, b, weight = ctx.saved_tensors
        dtype = grad.dtype
        a_, b_ = a.to(dtype), b.to(dtype)
        gate = F.gelu(b_) if ctx.gelu else b_
        grad_a = grad_b = grad_w = None
        grad_hidden = linear(weight.to(dtype).t(), grad, None)  # weight.T @ grad.T
        if ctx.needs_input_grad[0]:
            grad_a = (grad_hidden * gate).to(a.dtype)
        if ctx.needs_input_grad[1]:
            grad_b = grad_hidden.mul_(a_)
            if ctx.gelu:
                grad_b = torch.ops.aten.gelu_backward(grad_b, b_)
            grad_b = grad_b.to(b.dtype)
        if ctx.needs_input_grad[2]:
            grad_w = linear(grad.t(), a_ * gate, None).to(weight.dtype)  # grad.T @ hidden.T
        return grad_a, grad_b, grad_w, None


def _channel_rows(x: torch.Tensor) -> torch.Tensor:
    """NCHW ``x`` as ``(C, N*H*W)`` (a view for channel-major storage)."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def _pixel_rows(x: torch.Tensor) -> torch.Tensor:
    """NCHW ``x`` as ``(N*H*W, C)`` (a view for channels-last storage, also strided)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def gated_projection(value: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor,
                     gelu: bool, merge: str = 'mul') -> torch.Tensor:
    """:func:`gated_projection_reference`; channels-last output on the fast path (``'mul'``)."""
    if merge not in MERGES:
        raise ValueError(f'merge must be one of {MERGES}, got {merge!r}')
    if (merge != 'mul' or not on_devices(value, ('cpu', 'cuda'))
            or value.shape != gate.shape):
        return gated_projection_reference(value, gate, weight, gelu, merge)
    batch, _, height, width = value.shape
    gate = as_dtype(gate, value.dtype)
    matrix = weight if weight.dim() == 2 else weight.flatten(1)
    if needs_grad(value, gate, matrix):
        a, b = _channel_rows(value), _channel_rows(gate)
        out = _GatedProjection.apply(a, b, matrix, gelu)
    else:
        # Inference: rows of channels-last inputs, columns of channel-major
        # ones (views either way); the product in place on a temporary of
        # this op's own.
        rows = value.stride(1) == 1 and gate.stride(1) == 1
        a, b = (_pixel_rows(value), _pixel_rows(gate)) if rows else (
            _channel_rows(value).t(), _channel_rows(gate).t())
        if not gelu:
            hidden = a * b
        elif b.is_contiguous():
            hidden = F.gelu(b).mul_(a)
        else:
            # GELU of a strided view (the halves of fc1's rows) ran 1.1-8x
            # slower than a dense copy and GELU of it (bf16 worst); the copy
            # is this op's own, so GELU runs in place (one large buffer fewer).
            hidden = torch.ops.aten.gelu_(b.contiguous()).mul_(a)
        out = linear(hidden, as_dtype(matrix, a.dtype), None)
    return out.view(batch, height, width, matrix.shape[0]).permute(0, 3, 1, 2)
