"""Speed and memory of ParCNetV2 against ConvNeXt, side by side in one process.

    python tools/analysis_tools/benchmark.py                      # 1 thread and all cores
    python tools/analysis_tools/benchmark.py --quick --threads 1  # a short look
    python tools/analysis_tools/benchmark.py --backends eager compile onnxruntime \\
        --dtypes fp32 bf16 --json docs/benchmarks/my-cpu.json --note "machine idle"
    python -m mmparc.benchmark.docs docs/benchmarks/*.json --write docs/performance.md

The work is done by :mod:`mmparc.benchmark` (one module per job: machine
description, models and backends, timing, memory probes, per-layer
products, reports, docs tables); see :mod:`mmparc.benchmark.cli` for what
is measured and how.
"""
from mmparc.benchmark.cli import main

if __name__ == '__main__':
    main()
