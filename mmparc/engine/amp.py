"""Mixed precision that degrades to fp32 where mmengine's AMP cannot run."""
import warnings
from typing import Optional, Union

import torch
from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from ..registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class FallbackAmpOptimWrapper:
    """Build an ``AmpOptimWrapper``, or a plain ``OptimWrapper`` on CPU.

    mmengine's ``AmpOptimWrapper`` asserts an accelerator; the paper's recipes
    train with mixed precision, and the same config should still run (in
    fp32, with one warning) on a machine without one.
    """

    def __new__(cls, optimizer: torch.optim.Optimizer,
                loss_scale: Union[str, float, dict] = 'dynamic',
                dtype: Optional[Union[str, torch.dtype]] = None,
                accumulative_counts: int = 1,
                clip_grad: Optional[dict] = None) -> OptimWrapper:
        if any(check() for check in (is_cuda_available, is_npu_available,
                                     is_mlu_available, is_musa_available)):
            return AmpOptimWrapper(optimizer=optimizer, loss_scale=loss_scale, dtype=dtype,
                                   accumulative_counts=accumulative_counts,
                                   clip_grad=clip_grad)
        print_log('Mixed precision needs a GPU (or NPU/MLU/MUSA); none is available, '
                  'so this run trains in fp32 with a plain OptimWrapper.',
                  logger='current', level=30)
        return OptimWrapper(optimizer=optimizer, accumulative_counts=accumulative_counts,
                            clip_grad=clip_grad)


def cpu_autocast_supports(dtype: torch.dtype) -> bool:
    """Whether ``torch.autocast('cpu', dtype=dtype)`` really computes in ``dtype``.

    torch 2.1's CPU autocast takes bfloat16 only: asked for float16 it
    raises on entry ("AutocastCPU only support Bfloat16"); torch 2.13 turns
    itself off, with a warning, for a dtype it does not take, so the block
    would run in float32.  Decided by what a product inside the block returns.
    """
    ones = torch.ones(1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the "Disabling autocast" warning is the answer here
        enabled = torch.is_autocast_cpu_enabled()
        try:
            with torch.autocast('cpu', dtype=dtype):
                return torch.mm(ones, ones).dtype == dtype
        except RuntimeError:  # torch 2.1 raises after switching autocast off: switch it back
            torch.set_autocast_cpu_enabled(enabled)
            return False
