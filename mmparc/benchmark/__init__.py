"""Speed and memory of ParCNetV2 against ConvNeXt, as ``tools/analysis_tools/benchmark.py`` runs it.

One job per module: :mod:`.machine` (what the numbers were measured on),
:mod:`.models` (the backbones, eager, compiled or in onnxruntime),
:mod:`.timing` (interleaved timings), :mod:`.onnx_profile` (onnxruntime's time per
class of node), :mod:`.memory` (peak RSS of a training
step, in a fresh process), :mod:`.products` (each 1x1 layer's product on
oneDNN and on BLAS), :mod:`.report` (text tables and the goal cells) and
:mod:`.docs` (the Markdown tables of ``docs/performance.md``, rendered from
the JSON files the benchmark writes); :mod:`.cli` ties them together.
"""
from .machine import machine_info
from .report import goal_cells

__all__ = ['goal_cells', 'machine_info']
