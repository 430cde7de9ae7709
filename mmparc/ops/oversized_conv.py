"""Oversized depthwise convolution along one axis of NCHW maps.

A 'same' depthwise convolution whose kernel may be much longer than the
map.  Taps further than ``size - 1`` from the centre only ever meet padding,
so they are dropped (:func:`crop_kernel`).  What remains is evaluated along
each axis in one of two ways (``impl``):

* ``'toeplitz'``: along an axis of length ``S`` the convolution is the
  product with a per-channel ``S x S`` Toeplitz matrix, batched over
  channels on channel-major ``(C, N, H, W)`` storage, where both passes are
  a single ``bmm`` without copies (along H, for one image).  It does ``S``
  multiply-adds per output (the direct form does ``K``, up to ``2S - 1``),
  on GEMM kernels, and its backward pass is two more products; PyTorch's
  depthwise convolution is many times slower than GEMM for long kernels,
  and its weight gradient far more so (on CPU: 10-30x the forward time).
* ``'direct'``: depthwise ``conv2d`` (:func:`~.depthwise_conv.depthwise_conv2d`;
  channels-last is its fast layout for long kernels).

``'auto'`` takes the Toeplitz form unless the dense matrix would do more than
:data:`TOEPLITZ_MAX_RATIO` times the multiply-adds of the cropped kernel,
i.e. for short fixed kernels on large maps.  FFT was measured too and lost
everywhere on CPU (3-10x slower than the Toeplitz form at these sizes).

Reference: :func:`oversized_conv1d_reference` (``F.conv2d``).  It is what
tracing records, so FLOP counters count the convolution (``K`` taps), as the
paper does, not the GEMM form.  Two recorded graphs take the GEMM form in
standard operators instead (:func:`toeplitz_matmul`), where the direct form
is what makes them slow: ``torch.compile`` (wherever ``'auto'`` would take
GEMM) and the export of a deployed, fixed-size layer.

In inference, the Toeplitz matrices (and the layer's resampled kernels)
are kept between calls while the weight is unchanged
(:class:`InferenceConstants`).
"""
from typing import Callable, Dict, Hashable, Optional

import torch
import torch.nn.functional as F

from .depthwise_conv import depthwise_conv2d, depthwise_conv2d_reference, is_channel_major
from .dispatch import _is_compiling, as_dtype, is_recording, needs_grad, on_devices, path_device

IMPLEMENTATIONS = ('auto', 'direct', 'toeplitz')
# Per device type: a pass goes to GEMM while the axis is at most this many
# times the cropped kernel.  CPU, measured (2 cores, fp32, forward and
# training step): the dense product stays ahead of the depthwise convolution
# up to ~3x the nominal multiply-adds at the detection scale; at 4x it is at
# par in inference and still well ahead in training.  CUDA: NOT MEASURED yet
# (no GPU was available); the CPU value stands in until tools/check_gpu.sh
# has timed both forms there.  Other devices run the reference.
TOEPLITZ_MAX_RATIO = {'cpu': 4, 'cuda': 4}
# torch's CPU bmm falls back to a scalar loop for products under 400
# multiply-adds (4x slower than MKL on a 7 x 7 x 7 product): shorter axes are
# zero-padded to 8 for the Toeplitz form (and the result cropped).
TOEPLITZ_MIN_SIZE = 8


class InferenceConstants:
    """Tensors derived from one weight (resampled kernels, Toeplitz matrices), built once.

    In inference the weights do not change between calls, yet the Toeplitz
    matrices (a flipped copy of the kernel per channel) and, in global mode,
    the resampled kernels were rebuilt on every pass.  Here they are kept
    while the weight is the same tensor at the same version: every in-place
    change through autograd's version counter (an optimizer step,
    ``load_state_dict``, ``init_weights``, an EMA update) and every new
    ``.data`` or ``.to()`` invalidates them.  (A write through ``.data``
    bypasses the version counter; :meth:`clear` after it.)  Only calls that
    autograd does not record use it, so gradients are never taken through
    a cached tensor, and recorded graphs (tracing, ``torch.compile``) never
    see it.  At most :data:`MAX_ENTRIES` entries (one per map size and
    dtype seen) are kept.
    """

    MAX_ENTRIES = 4

    def __init__(self) -> None:
        self._stamp: Optional[tuple] = None
        self._entries: Dict[Hashable, torch.Tensor] = {}

    @staticmethod
    def applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
        """Whether a call on ``x`` with ``weight`` may use cached constants."""
        return not needs_grad(x, weight) and not is_recording()

    def get(self, weight: torch.Tensor, key: Hashable,
            build: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``build()``'s result for ``key``, reused while ``weight`` is unchanged."""
        stamp = (weight.data_ptr(), weight._version, weight.dtype, weight.device,
                 tuple(weight.shape))
        if stamp != self._stamp or len(self._entries) >= self.MAX_ENTRIES and (
                key not in self._entries):
            self._entries.clear()
            self._stamp = stamp
        value = self._entries.get(key)
        if value is None:
            value = self._entries[key] = build()
        return value

    def clear(self) -> None:
        """Drop every entry (after writing to the weight through ``.data``)."""
        self._entries.clear()
        self._stamp = None

    def __len__(self) -> int:
        return len(self._entries)


def resample_kernel(weight: torch.Tensor, length: int) -> torch.Tensor:
    """Resample 1-D kernels ``(C, K)`` to ``(C, length)`` taps.

    Linear interpolation with ``align_corners=True``: the end taps stay put,
    which is how the official code stretches kernels to a new input size and
    how checkpoints trained with other kernel lengths are adapted.
    """
    if weight.dim() != 2:
        raise ValueError(f'expected kernels of shape (C, K), got {tuple(weight.shape)}')
    if length < 1:
        raise ValueError(f'kernel length must be >= 1, got {length}')
    if weight.shape[1] == length:
        return weight
    return F.interpolate(weight.unsqueeze(0), size=length, mode='linear',
                         align_corners=True).squeeze(0)


def crop_kernel(kernel: torch.Tensor, size: int, dim: int = -1) -> torch.Tensor:
    """Keep the central ``2 * size - 1`` taps of odd kernels along ``dim``.

    The other taps can only meet the zero padding of an axis of ``size``, so
    the 'same' convolution is unchanged.
    """
    length = kernel.shape[dim]
    if length % 2 == 0:
        raise ValueError(f'kernels must have odd length to be centred, got {length}')
    if isinstance(size, torch.Tensor) and torch.onnx.is_in_onnx_export():
        # A traced size in an ONNX export (dynamic height/width): the whole
        # kernel is right at every size, and a graph cannot hold a kernel
        # whose shape follows the input.  (FLOP counters trace too; they
        # still see the cropped kernel.)
        return kernel
    keep = min(length, 2 * size - 1)
    if keep == length:
        return kernel
    return kernel.narrow(dim, (length - keep) // 2, keep)


def toeplitz(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Per-channel ``(C, size, size)`` matrices of centred odd kernels ``(C, K)``.

    ``T[c, i, j] = kernel[c, j - i + K // 2]`` where that tap exists, else 0,
    so that ``T[c] @ x`` is the 'same' cross-correlation of ``x`` along its
    first axis.  Built as a flipped sliding window over the kernel padded or
    cropped to ``2 * size - 1`` taps: one copy, and a cheap backward.
    """
    kernel = crop_kernel(kernel, size)
    pad = size - 1 - kernel.shape[1] // 2
    if pad:
        kernel = F.pad(kernel, (pad, pad))
    return kernel.unfold(1, size, 1).flip(1)


def use_toeplitz(size: int, length: int, impl: str, device_type: str = 'cpu') -> bool:
    """Whether a pass of a (cropped) ``length``-tap kernel along ``size`` goes to GEMM."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f'impl must be one of {IMPLEMENTATIONS}, got {impl!r}')
    if impl != 'auto':
        return impl == 'toeplitz'
    return size <= TOEPLITZ_MAX_RATIO.get(device_type, 0) * min(length, 2 * size - 1)


def _toeplitz_product(v: torch.Tensor, matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """``T @ x`` along ``dim`` (2: H, 3: W) of contiguous channel-major ``(C, N, H, W)``.

    Along W the rows of all images form one strided matrix, so it is one
    ``bmm``; along H they only do for a single image.
    """
    channels, batch, height, width = v.shape
    if dim == 3:
        return torch.bmm(v.view(channels, batch * height, width),
                         matrix.transpose(1, 2)).view(v.shape)
    if batch == 1:
        return torch.bmm(matrix, v.view(channels, height, width)).view(v.shape)
    return torch.matmul(matrix.unsqueeze(1), v)


def _toeplitz_kernel_grad(grad_matrix: torch.Tensor) -> torch.Tensor:
    """The gradient of the ``2S - 1`` padded taps behind :func:`toeplitz`'s ``(C, S, S)``.

    ``T[c, i, j] = padded[c, S - 1 - i + j]``, so each tap's gradient is a
    sum of ``dT`` along a diagonal.  With the rows flipped, entry ``(i, j)``
    belongs to tap ``i + j``; padding every row by ``S`` zeros and reading
    the rows as one strip of width ``2S - 1`` shifts row ``i`` by ``i``, so
    tap ``i + j`` becomes column ``i + j`` and the sums are column sums.
    Summed in float32: ``unfold_backward`` summed in the gradient's dtype and
    took 2-8x as long in bf16 (one thread).
    """
    channels, size, _ = grad_matrix.shape
    rows = F.pad(grad_matrix.flip(1).float(), (0, size))  # (C, S, 2S)
    strip = rows.flatten(1)[:, :size * (2 * size - 1)].view(channels, size, 2 * size - 1)
    return strip.sum(1)


class _ToeplitzPass(torch.autograd.Function):
    """:func:`_toeplitz_product` that saves the kernel, not its ``S x S`` matrices.

    The matrices are rebuilt in the backward pass (one copy each); saving
    them would add about a tenth to the activation memory of training.
    """

    @staticmethod
    def forward(ctx, v: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
        ctx.save_for_backward(v, kernel)
        ctx.dim = dim
        return _toeplitz_product(v, toeplitz(as_dtype(kernel, v.dtype), v.shape[dim]), dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        v, kernel = ctx.saved_tensors
        dim = ctx.dim
        channels, batch, height, width = v.shape
        size = v.shape[dim]
        grad = grad.contiguous()
        x = v.to(grad.dtype)
        matrix = toeplitz(kernel.to(grad.dtype), size)
        grad_v = grad_kernel = None
        if dim == 3:  # out = x @ T^T
            grad_rows = grad.view(channels, batch * height, width)
            if ctx.needs_input_grad[0]:
                grad_v = torch.bmm(grad_rows, matrix).view(v.shape)
            if ctx.needs_input_grad[1]:
                grad_matrix = torch.bmm(grad_rows.transpose(1, 2),
                                        x.view(channels, batch * height, width))
        else:  # out = T @ x, per image
            if ctx.needs_input_grad[0]:
                grad_v = _toeplitz_product(grad, matrix.transpose(1, 2), 2)
            if ctx.needs_input_grad[1]:
                if batch == 1:
                    grad_matrix = torch.bmm(grad.view(channels, height, width),
                                            x.view(channels, height, width).transpose(1, 2))
                else:
                    grad_matrix = torch.einsum('cnhw,cnkw->chk', grad, x)
        if ctx.needs_input_grad[1]:
            padded = _toeplitz_kernel_grad(grad_matrix)
            pad = size - 1 - kernel.shape[1] // 2
            grad_kernel = padded[:, pad:pad + kernel.shape[1]].to(kernel.dtype)
        if grad_v is not None:
            grad_v = grad_v.to(v.dtype)
        return grad_v, grad_kernel, None


def toeplitz_conv1d(v: torch.Tensor, kernel: torch.Tensor, dim: int,
                    matrix: Optional[Callable[[], torch.Tensor]] = None) -> torch.Tensor:
    """'Same' convolution of contiguous channel-major ``(C, N, H, W)`` along ``dim``.

    ``matrix`` (inference only) returns the kernel's Toeplitz matrices, e.g.
    from an :class:`InferenceConstants`; by default they are built here.
    """
    if needs_grad(v, kernel):
        return _ToeplitzPass.apply(v, kernel, dim)
    if matrix is not None:
        return _toeplitz_product(v, matrix(), dim)
    return _toeplitz_product(v, toeplitz(as_dtype(kernel, v.dtype), v.shape[dim]), dim)


def _check_kernel(weight: torch.Tensor, dim: int) -> None:
    if dim not in (2, 3):
        raise ValueError(f'dim must be 2 (H) or 3 (W) of an NCHW map, got {dim!r}')
    if weight.dim() != 4 or weight.shape[1] != 1 or weight.shape[5 - dim] != 1:
        axis = '(C, 1, K, 1)' if dim == 2 else '(C, 1, 1, K)'
        raise ValueError(f'expected a depthwise kernel {axis} for dim={dim}, '
                         f'got {tuple(weight.shape)}')


def oversized_conv1d_reference(x: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Depthwise 'same' ``conv2d`` of NCHW ``x`` along ``dim`` (2: H, 3: W).

    ``weight`` is ``(C, 1, K, 1)`` for ``dim=2``, ``(C, 1, 1, K)`` for ``dim=3``.
    """
    _check_kernel(weight, dim)
    return depthwise_conv2d_reference(x, crop_kernel(weight, x.shape[dim], dim))


def toeplitz_matmul(x: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
    """:func:`oversized_conv1d_reference` as products with per-channel Toeplitz matrices.

    Standard operators only (a broadcast ``matmul`` of NCHW ``x`` with
    ``(C, S, S)`` matrices), so it is what a deployed, fixed-size layer
    records for export: the runtime does ``S`` multiply-adds per output on
    its GEMM kernels instead of a depthwise convolution with a kernel up to
    ``2S - 1`` long (onnxruntime's runs several times slower than its GEMM).
    Under tracing the matrices are built from the weight's values outside
    the trace, so that the graph holds them as one constant instead of the
    hundreds of slices that trace ``unfold``.
    """
    _check_kernel(weight, dim)
    size = x.shape[dim]
    matrix = toeplitz(crop_kernel(weight, size, dim).flatten(1).to(x.dtype), size)
    if torch.jit.is_tracing():  # values only: the trace gets one constant
        matrix = torch.from_numpy(matrix.detach().cpu().numpy().copy()).to(x.device)
    if dim == 3:
        return torch.matmul(x, matrix.transpose(1, 2))
    return torch.matmul(matrix, x)


def oversized_conv1d(x: torch.Tensor, weight: torch.Tensor, dim: int,
                     impl: str = 'auto', constants: Optional[InferenceConstants] = None,
                     source: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`oversized_conv1d_reference`, by GEMM or direct convolution (``impl``).

    NCHW ``x`` in any storage; the output keeps it.  Channel-major storage
    (how the ParCNetV2 mixer holds its maps) needs no layout copies.  With
    ``constants``, inference keeps the Toeplitz matrices there, valid while
    ``source`` (the parameter ``weight`` is derived from; default ``weight``)
    is unchanged.
    """
    _check_kernel(weight, dim)
    size = x.shape[dim]
    weight = crop_kernel(weight, size, dim)
    gemm = use_toeplitz(size, weight.shape[dim], impl, path_device(x))
    if not on_devices(x, ('cpu', 'cuda')):
        if gemm and _is_compiling() and path_device(x) in ('cpu', 'cuda'):
            # torch.compile: the GEMM form too, in standard operators it can compile.
            return toeplitz_matmul(x, weight, dim)
        return depthwise_conv2d_reference(x, weight)
    channel_major = is_channel_major(x)
    if not gemm:
        if not channel_major:
            return depthwise_conv2d(x, weight)
        # Depthwise convolution with a long kernel is several times faster
        # channels-last than channel-major.
        out = depthwise_conv2d(x.contiguous(memory_format=torch.channels_last), weight)
        return out.transpose(0, 1).contiguous().transpose(0, 1)
    v = x.transpose(0, 1).contiguous()  # (C, N, H, W); free for channel-major x
    pad = max(TOEPLITZ_MIN_SIZE - size, 0)
    if pad:
        # Zeros beyond the map are what 'same' padding reads; the extra
        # outputs are cropped.
        v = F.pad(v, (0, pad) if dim == 3 else (0, 0, 0, pad))
    kernel = weight.flatten(1)
    matrix = None
    if constants is not None and InferenceConstants.applies(v, kernel):
        source = weight if source is None else source
        length = v.shape[dim]
        matrix = lambda: constants.get(  # noqa: E731
            source, ('toeplitz', dim, length, tuple(kernel.shape), v.dtype),
            lambda: toeplitz(as_dtype(kernel, v.dtype), length).contiguous())
    v = toeplitz_conv1d(v, kernel, dim, matrix)
    if pad:
        v = v.narrow(dim, 0, size).contiguous()
    out = v.transpose(0, 1)
    if channel_major:
        return out
    return out.contiguous(memory_format=_memory_format(x))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """``channels_last`` for channels-last NCHW ``x``, else ``contiguous_format``."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
