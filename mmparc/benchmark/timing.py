"""Interleaved timings: every model runs once per round, so load drifts hit all alike."""
import statistics
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from .models import Bench

Clock = Callable[[], float]
# name, batch, height, width, timed repeats (forward, training step).
Config = Tuple[str, int, int, int, Tuple[int, int]]
CONFIGS: Sequence[Config] = (('224 b1', 1, 224, 224, (15, 7)),
                             ('224 b8', 8, 224, 224, (5, 2)),
                             ('800x1216 b1', 1, 800, 1216, (5, 3)),
                             ('512 b1', 1, 512, 512, (5, 3)))
QUICK_CONFIGS: Sequence[Config] = (('224 b1', 1, 224, 224, (5, 2)),
                                   ('800x1216 b1', 1, 800, 1216, (2, 1)))
# The default on a GPU: the sizes one GPU trains with (classification, detection).
GPU_CONFIGS: Sequence[Config] = (('224 b64', 64, 224, 224, (20, 10)),
                                 ('800x1216 b2', 2, 800, 1216, (20, 10)))


# Pause before each timed call with more than one intra-op thread.  The
# previous model's worker threads keep spinning after its call returns
# (onnxruntime's pool for milliseconds, OpenMP's briefly) and hold cores the
# next model's threads need.  Measured at 2 threads on 2 cores, two
# onnxruntime sessions interleaved: ConvNeXt-T 59 ms and ParCNetV2-T 60 ms
# per 224 b1 forward without a pause, 34 and 36 ms with 0.1 s, as each runs
# alone.  One thread shares no cores, and its clock (CPU time) is immune.
SETTLE_S = 0.1


def time_config(benches: Dict[str, Bench], batch: int, height: int, width: int, train: bool,
                repeats: int, max_call: float, clock: Clock,
                settle_s: float = 0.0) -> Dict[str, dict]:
    """Interleaved timings (seconds) of one configuration.

    Each model is first called once untimed (warm-up: allocations, oneDNN
    primitives, the linear backend's calibration, compilation), then once
    more as its first sample.  A model whose first sample took over
    ``max_call`` seconds is not run again: that one call is its sample,
    marked ``single``.  ``settle_s``: seconds slept before each timed call
    (see :data:`SETTLE_S`).
    """
    torch.manual_seed(0)
    x = torch.randn(batch, 3, height, width).to(next(iter(benches.values())).device)
    samples: Dict[str, List[float]] = {}
    single = set()
    for name, bench in benches.items():
        bench.step(x, train)  # warm-up
        time.sleep(settle_s)
        start = clock()
        bench.step(x, train)
        samples[name] = [clock() - start]
        if samples[name][0] > max_call:
            single.add(name)
    for _ in range(repeats - 1):
        for name, bench in benches.items():
            if name in single:
                continue
            time.sleep(settle_s)
            start = clock()
            bench.step(x, train)
            samples[name].append(clock() - start)
    return {name: {'median_s': statistics.median(s), 'min_s': min(s), 'samples_s': s,
                   'single': name in single}
            for name, s in samples.items()}


def synchronized_clock(device: torch.device) -> Clock:
    """Wall clock read after the GPU's queued kernels finished (they run asynchronously)."""
    def clock() -> float:
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return clock


def pick_clock(name: str, device: torch.device) -> Tuple[str, Clock]:
    """``'cpu'`` (process CPU time) with one thread on the CPU under ``'auto'``, else wall."""
    if device.type == 'cuda':
        return 'wall', synchronized_clock(device)
    if name == 'auto':
        name = 'cpu' if torch.get_num_threads() == 1 else 'wall'
    return name, time.process_time if name == 'cpu' else time.perf_counter
