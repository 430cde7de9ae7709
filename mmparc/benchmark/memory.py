"""Peak memory of one training step, each model in a fresh process.

After one warm-up step, the figure is the growth of the resident set (``VmHWM`` after the step
minus ``VmRSS`` before it, with the high-water mark reset; the
parameters' gradients are freed before the step), with glibc's
mmap threshold pinned so that freed blocks leave the RSS.  Run as
``python -m mmparc.benchmark.memory NAME ARCH THREADS B,H,W``: prints one
JSON line.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch


def probe_memory(arch: str, name: str, batch: int, height: int, width: int,
                 threads: int) -> Dict[str, float]:
    """Peak RSS growth of one training step of ``name``, measured in a fresh process."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='0')
    cmd = [sys.executable, '-m', 'mmparc.benchmark.memory', name, arch, str(threads),
           f'{batch},{height},{width}']
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmHWM`` is this process's own peak,
    unlike ``ru_maxrss``, which a child inherits from the parent it was forked from)."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f'no {field} in /proc/self/status')


def main(argv: Optional[Sequence[str]] = None) -> None:
    from .models import Bench
    name, arch, threads, shape = argv if argv is not None else sys.argv[1:]
    torch.set_num_threads(int(threads))
    batch, height, width = (int(v) for v in shape.split(','))
    bench = Bench(name, arch)
    x = torch.randn(batch, 3, height, width)
    bench.step(x, train=True)  # warm-up: one-time allocations and calibrations are not the step's
    for param in bench.parameters():
        param.grad = None
    try:  # reset the high-water mark to the current RSS (Linux >= 4.0)
        Path('/proc/self/clear_refs').write_text('5')
    except OSError:
        pass
    before = _status_bytes('VmRSS')
    bench.step(x, train=True)
    peak = _status_bytes('VmHWM')
    print(json.dumps({'peak_rss_bytes': peak, 'step_bytes': peak - before}))


if __name__ == '__main__':
    main()
