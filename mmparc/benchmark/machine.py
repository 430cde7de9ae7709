"""What a measurement was taken on: CPU model, library versions, threads, date.

A figure without its machine is not published: every JSON file the
benchmark writes carries :func:`machine_info`.
"""
import datetime
import os
import platform
import re
from pathlib import Path
from typing import Dict, Optional

import torch


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The CPU features that decide the fast kernels: AVX-512, AVX512-BF16, AMX."""
    try:
        text = Path('/proc/cpuinfo').read_text()
    except OSError:
        return ''
    match = re.search(r'^flags\s*:(.*)$', text, re.M)
    flags = set(match.group(1).split()) if match else set()
    wanted = ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile')
    return ' '.join(f for f in wanted if f in flags)


def _config_version(pattern: str) -> Optional[str]:
    """A version read from ``torch.__config__.show()`` (MKL's and oneDNN's are there)."""
    match = re.search(pattern, torch.__config__.show())
    return match.group(1) if match else None


def _version(module: str) -> Optional[str]:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


# Environment variables that change how fast the same code runs: the
# allocator (glibc's mmap threshold decides whether large temporaries are
# page-faulted afresh on every call), OpenMP and the math libraries, and
# mmparc's own switches.
TUNING_PREFIXES = ('MALLOC_', 'OMP_', 'GOMP_', 'KMP_', 'MKL_', 'DNNL_', 'ONEDNN_', 'MMPARC_')


def tuning_environment() -> Dict[str, str]:
    """The performance-relevant environment variables that are set (and ``LD_PRELOAD``)."""
    return {k: v for k, v in sorted(os.environ.items())
            if k.startswith(TUNING_PREFIXES) or k == 'LD_PRELOAD'}


def machine_info() -> Dict[str, object]:
    """CPU, core count, versions of torch/MKL/oneDNN/onnxruntime, threads, UTC date."""
    return {
        'cpu': cpu_model(),
        'cpu_flags': cpu_flags(),
        'cores': os.cpu_count(),
        'python': platform.python_version(),
        'torch': torch.__version__,
        'mkl': _config_version(r'Math Kernel Library Version ([\w.]+)'),
        'onednn': _config_version(r'MKL-DNN v([\w.]+)'),
        'onnxruntime': _version('onnxruntime'),
        'intra_op_threads_default': torch.get_num_threads(),
        'interop_threads': torch.get_num_interop_threads(),
        'environment': tuning_environment(),
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
    }


def describe(info: Dict[str, object]) -> str:
    """One line: CPU, cores, versions, date, and the tuning environment if any is set."""
    environment = info.get('environment') or {}
    tuned = ('; environment: ' + ' '.join(f'{k}={v}' for k, v in environment.items())
             if environment else '')
    return (f"{info['cpu']} ({info['cores']} cores; {info['cpu_flags']}), torch {info['torch']}, "
            f"MKL {info['mkl']}, oneDNN {info['onednn']}, onnxruntime {info['onnxruntime']}, "
            f"{info['date']}{tuned}")
