"""Where onnxruntime spends a deployed backbone's time, per class of node.

``benchmark.py --onnx-profile`` exports each model as the timed benchmark
does (:func:`.models.export_for_onnxruntime`), runs it under onnxruntime's
own profiler and adds up the kernel time of each class of node over the
timed runs.  Products carry their multiply-adds, so a table shows the rate
each reaches: whether a deployed model is slower for its products or for
the work around them (norms, layouts, element-wise passes).

Classes: ``Conv 1x1``, ``Conv depthwise`` and ``Conv`` (any other), from
the weight's shape; ``MatMul``, ``Gemm`` and onnxruntime's fused variants;
every other node by its op type.
"""
import json
import math
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

PRODUCTS = ('MatMul', 'Gemm', 'FusedMatMul', 'FusedGemm', 'MatMulInteger')


def _shapes(entries: Optional[list]) -> List[List[int]]:
    """onnxruntime's ``[{'float': [1, 3, 224, 224]}, ...]`` as a list of shapes."""
    return [list(next(iter(entry.values()))) for entry in entries or []]


def node_class(op: str, inputs: List[List[int]], outputs: List[List[int]]) -> Tuple[str, int]:
    """``(class, multiply-adds)`` of one node run (0 multiply-adds: not a product).

    A convolution's weight is ``(O, I / groups, kh, kw)``: depthwise where
    each output reads one input channel of as many.  A product's inner size
    is the last dimension of its first operand.  The shapes are those
    onnxruntime ran: its NCHWc convolutions pad channels to their block (16
    with AVX-512), and the multiply-adds count the padding.
    """
    if op in ('Conv', 'FusedConv', 'NchwcConv') and len(inputs) >= 2 and outputs:
        weight, out = inputs[1], outputs[0]
        macs = math.prod(out) * math.prod(weight[1:])
        if len(weight) == 4 and weight[2:] == [1, 1] and weight[1] == inputs[0][1]:
            return 'Conv 1x1', macs
        if len(weight) >= 3 and weight[1] == 1 and out[1] == inputs[0][1] == weight[0]:
            return 'Conv depthwise', macs
        return 'Conv', macs
    if op in PRODUCTS and inputs and outputs:
        return op, math.prod(outputs[0]) * inputs[0][-1]
    return op, 0


def summarize(events: Sequence[dict], runs: int) -> Dict[str, dict]:
    """Per class: mean milliseconds and multiply-adds per run, over each node's last ``runs``."""
    per_node: Dict[str, List[dict]] = defaultdict(list)
    for event in events:
        if event.get('cat') == 'Node' and event.get('name', '').endswith('_kernel_time'):
            per_node[event['name']].append(event)
    classes: Dict[str, dict] = defaultdict(lambda: {'ms': 0.0, 'macs': 0, 'nodes': 0})
    for node_events in per_node.values():
        last = node_events[-runs:]
        args = last[-1]['args']
        name, macs = node_class(args['op_name'], _shapes(args.get('input_type_shape')),
                                _shapes(args.get('output_type_shape')))
        entry = classes[name]
        entry['ms'] += sum(e['dur'] for e in last) / len(last) / 1000
        entry['macs'] += macs
        entry['nodes'] += 1
    return dict(classes)


def profile_model(path: str, shape: Tuple[int, ...], threads: int, runs: int = 10,
                  warmup: int = 3) -> dict:
    """Run the ONNX file at ``path`` under onnxruntime's profiler; its summary."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / 'profile')
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(
            shape, dtype=np.float32)}
        times = []
        for i in range(warmup + runs):
            start = time.perf_counter()
            session.run(None, feed)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        events = json.loads(Path(session.end_profiling()).read_text())
    return {'median_ms': statistics.median(times) * 1000, 'runs': runs, 'threads': threads,
            'classes': summarize(events, runs)}


def profile_table(label: str, summary: dict, rows: int = 12) -> str:
    """The classes by time: milliseconds per run, share, multiply-adds and their rate."""
    classes = summary['classes']
    total = sum(c['ms'] for c in classes.values())
    lines = [f'{label}: {summary["median_ms"]:.1f} ms per run (median of {summary["runs"]}, '
             f'{summary["threads"]} thread(s)); node kernels {total:.1f} ms',
             f'  {"class":<16} {"ms":>8} {"share":>6} {"GMAC":>7} {"GMAC/s":>7}']
    for name, c in sorted(classes.items(), key=lambda kv: -kv[1]['ms'])[:rows]:
        rate = f'{c["macs"] / c["ms"] / 1e6:7.0f}' if c['macs'] and c['ms'] else f'{"-":>7}'
        macs = f'{c["macs"] / 1e9:7.3f}' if c['macs'] else f'{"-":>7}'
        lines.append(f'  {name:<16} {c["ms"]:8.2f} {100 * c["ms"] / total:5.1f}% {macs} {rate}')
    return '\n'.join(lines)
