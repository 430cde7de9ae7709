"""``tools/analysis_tools/benchmark.py``: ParCNetV2 against ConvNeXt, side by side in one process.

The backbones (:mod:`.models`) run interleaved on the same inputs, forward
in inference mode and as a training step (forward, ``mean().backward()``),
at one intra-op thread and at all cores (``--threads``), eagerly and, on
request, compiled (``--backends compile``) or deployed in onnxruntime
(``--backends onnxruntime``, inference only), in fp32 and, on request,
under autocast (``--dtypes bf16``).  It prints the machine, the timings,
the goal cells (each ratio beside its target) and peak memory, and writes
``benchmark.json`` and ``benchmark.png`` to ``--out`` (and the JSON to
``--json``, from which ``python -m mmparc.benchmark.docs`` renders the
tables of ``docs/performance.md``).  ``--products`` times each 1x1 layer's
product on oneDNN and on BLAS instead (``products.json``); ``--onnx-profile``
runs each deployed model under onnxruntime's profiler instead and prints
its time and multiply-adds per class of node (``onnx_profile.json``).

On a GPU (``--device cuda``) the clock is the wall clock after
``torch.cuda.synchronize()``, the default configurations are the GPU ones
(224 b64, 800x1216 b2) and the RSS memory probes are skipped.
"""
import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ..engine.amp import cpu_autocast_supports
from .machine import describe, machine_info
from .memory import probe_memory
from .models import BACKENDS, DTYPES, LABELS, MODELS, Bench, export_for_onnxruntime
from .onnx_profile import profile_model, profile_table
from .products import products_table, time_products
from .report import goal_cells, goal_table, memory_table, plot, timing_table
from .timing import CONFIGS, GPU_CONFIGS, QUICK_CONFIGS, SETTLE_S, pick_clock, time_config

MEMORY_CONFIG = '800x1216 b1'
COMPILED = ('convnext', 'fixed', 'global')  # those of --models that other --backends also run


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='benchmark.py', description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', default='t', choices=['t', 's', 'b'])
    parser.add_argument('--quick', action='store_true',
                        help='224 b1 and 800x1216 only, few repeats')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 0],
                        help='intra-op thread counts to run, in turn (0: all cores); '
                             'default: 1 and all cores')
    parser.add_argument('--clock', choices=['auto', 'cpu', 'wall'], default='auto',
                        help='cpu: process CPU time, which leaves out the time other jobs '
                             'hold the core (the default with one thread); wall otherwise')
    parser.add_argument('--configs', nargs='*',
                        help='subset of config names, e.g. "224 b1" (GPU ones: "224 b64", '
                             '"800x1216 b2")')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--dtypes', nargs='+', default=['fp32'], choices=list(DTYPES),
                        help='fp32 (no autocast) and/or torch.autocast in fp16 / bf16')
    parser.add_argument('--modes', nargs='*', default=['forward', 'train'],
                        choices=['forward', 'train'])
    parser.add_argument('--models', nargs='*', default=list(MODELS), choices=MODELS)
    parser.add_argument('--backends', nargs='+', default=['eager'], choices=BACKENDS,
                        help='eager; compile (torch.compile, inductor) and onnxruntime '
                             '(re-parameterised, exported, inference only) also run the '
                             'convnext, fixed and global models of --models there')
    parser.add_argument('--repeat-scale', type=float, default=1.0,
                        help='multiply the timed repeats of every config')
    parser.add_argument('--max-call', type=float, default=8.0,
                        help='seconds above which a model is timed by one call only')
    parser.add_argument('--no-memory', action='store_true', help='skip the memory probes')
    parser.add_argument('--products', action='store_true',
                        help="time the 1x1 layers' ops with oneDNN and with BLAS only")
    parser.add_argument('--onnx-profile', action='store_true',
                        help="profile the forward pass of each config in onnxruntime only "
                             "(the convnext, fixed and global models of --models): time and "
                             "multiply-adds per class of node")
    parser.add_argument('--out', default='outputs/benchmark')
    parser.add_argument('--json', help='also write the summary to this JSON file')
    parser.add_argument('--note', default='',
                        help='load conditions to record with the figures, e.g. "machine idle"')
    return parser.parse_args(argv)


def _fail(message: str) -> None:
    raise SystemExit(f'benchmark.py: {message}')


def select_configs(args: argparse.Namespace, device: torch.device) -> list:
    configs = QUICK_CONFIGS if args.quick else (GPU_CONFIGS if device.type == 'cuda'
                                                else CONFIGS)
    if args.configs:
        known = {c[0] for c in tuple(CONFIGS) + tuple(GPU_CONFIGS)}
        unknown = [c for c in args.configs if c not in known]
        if unknown:
            _fail(f'unknown --configs {unknown}; known: {sorted(known)}')
        configs = [c for c in tuple(CONFIGS) + tuple(GPU_CONFIGS) if c[0] in args.configs]
    return list(configs)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` under a temporary name, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + '.part')
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, path)


def check_agreement(benches: Dict[str, Bench], x: torch.Tensor) -> Dict[str, float]:
    """Max |mmparc - official| of the benchmarked outputs (a sanity check)."""
    out = {}
    with torch.inference_mode():
        for mode in ('fixed', 'global'):
            official = f'official-{mode}'
            if mode in benches and official in benches:
                benches[mode].model.eval()
                diff = benches[mode].forward(x) - benches[official].forward(x)
                out[mode] = diff.abs().max().item()
    return out


def run_products(args: argparse.Namespace, command: str) -> dict:
    torch.set_num_threads(args.threads[0] or os.cpu_count())
    clock_name, clock = pick_clock(args.clock, torch.device('cpu'))
    products = time_products(args.arch, clock)
    info = machine_info()
    print(f'{describe(info)}; {torch.get_num_threads()} thread(s), {clock_name} clock\n'
          + products_table(products))
    summary = {'machine': info, 'command': command, 'arch': args.arch,
               'threads': torch.get_num_threads(), 'clock': clock_name, 'products': products}
    write_json(Path(args.out) / 'products.json', summary)
    return summary


def run_onnx_profile(args: argparse.Namespace, command: str) -> dict:
    threads = args.threads[0] or os.cpu_count()
    torch.set_num_threads(threads)
    info = machine_info()
    print(describe(info), flush=True)
    profiles = []
    for config, batch, height, width, _ in select_configs(args, torch.device('cpu')):
        for name in [n for n in COMPILED if n in args.models]:
            with tempfile.TemporaryDirectory() as tmp:
                path = str(Path(tmp) / 'model.onnx')
                export_for_onnxruntime(name, args.arch, (batch, 3, height, width), path)
                summary = profile_model(path, (batch, 3, height, width), threads)
            profiles.append(dict(summary, config=config, model=name))
            print(profile_table(f'{config} {LABELS[name]}', summary), flush=True)
    result = {'machine': info, 'command': command, 'arch': args.arch, 'profiles': profiles}
    write_json(Path(args.out) / 'onnx_profile.json', result)
    if args.json:
        write_json(Path(args.json), result)
    return result


def main(argv: Optional[Sequence[str]] = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = 'tools/analysis_tools/benchmark.py ' + shlex.join(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        _fail('--device cuda, but torch sees no CUDA device')
    if device.type == 'cuda' and args.clock == 'cpu':
        _fail('--clock cpu does not time GPU work; use wall')
    if device.type == 'cpu' and 'fp16' in args.dtypes and not cpu_autocast_supports(torch.float16):
        _fail(f'--dtypes fp16 on the CPU needs float16 CPU autocast, which torch '
              f'{torch.__version__} lacks (it would time fp32); use bf16')
    if device.type == 'cuda' and set(args.backends) - {'eager'}:
        _fail('--backends compile/onnxruntime are benchmarked on the CPU only')
    if any(t < 0 for t in args.threads):
        _fail(f'--threads must be >= 0, got {args.threads}')
    if args.products and args.onnx_profile:
        _fail('--products and --onnx-profile are separate runs; choose one')
    if (args.products or args.onnx_profile) and device.type != 'cpu':
        _fail('--products and --onnx-profile run on the CPU; drop --device')
    if args.products:
        return run_products(args, command)
    if args.onnx_profile:
        return run_onnx_profile(args, command)
    configs = select_configs(args, device)
    names = [n for n in MODELS if n in args.models]
    benches: Dict[str, Bench] = {n: Bench(n, args.arch, device) for n in names}
    for backend in args.backends:
        if backend != 'eager':
            for name in [n for n in COMPILED if n in names]:
                bench = Bench(name, args.arch, device, backend=backend)
                benches[bench.label] = bench
    agreement = check_agreement(benches, torch.randn(1, 3, 224, 224, device=device))
    info = machine_info()
    where = describe(info) if device.type == 'cpu' else torch.cuda.get_device_name(device)
    print(f'{where}\nmax |mmparc - official| at 224: '
          + ', '.join(f'{k} {v:.1e}' for k, v in agreement.items()), flush=True)

    results: List[dict] = []
    memory: Dict[str, Dict[str, dict]] = {}
    calibrations = {}
    clocks = {}
    thread_counts = [t or os.cpu_count() for t in args.threads]
    for threads in dict.fromkeys(thread_counts):  # each once, in order
        torch.set_num_threads(threads)
        clock_name, clock = pick_clock(args.clock, device)
        clocks[str(threads)] = clock_name
        for dtype in args.dtypes:
            for bench in benches.values():
                bench.autocast = DTYPES[dtype]
            for config, batch, height, width, repeats in configs:
                label = config if dtype == 'fp32' else f'{config} {dtype}'
                for mode in args.modes:
                    train = mode == 'train'
                    row_benches = {k: b for k, b in benches.items()
                                   if not (train and b.backend == 'onnxruntime')
                                   and not (dtype != 'fp32' and b.backend == 'onnxruntime')}
                    count = max(1, round(repeats[train] * args.repeat_scale))
                    timings = time_config(row_benches, batch, height, width, train, count,
                                          args.max_call, clock,
                                          SETTLE_S if threads > 1 else 0.0)
                    results.append({'threads': threads, 'clock': clock_name, 'config': label,
                                    'batch': batch, 'height': height, 'width': width,
                                    'dtype': dtype, 'mode': mode, 'repeats': count,
                                    'timings': timings})
                    print(f'{threads} thr {label:<17} {mode:<8} '
                          + ' '.join(f'{n}={timings[n]["median_s"] * 1e3:.1f}ms'
                                     for n in timings), flush=True)
        from mmparc.ops.matmul import calibration
        calibrations[str(threads)] = calibration()
        memory_config = next((c for c in configs if c[0] == MEMORY_CONFIG), None)
        if (not args.no_memory and not memory and memory_config and 'train' in args.modes
                and device.type == 'cpu'):
            _, batch, height, width, _ = memory_config
            probes = {}
            for name in [n for n in ('convnext', 'fixed', 'global') if n in names]:
                probes[name] = dict(probe_memory(args.arch, name, batch, height, width, threads),
                                    config=MEMORY_CONFIG)
            memory[str(threads)] = probes

    labels = list(benches)
    cells = goal_cells(results, memory)
    report = timing_table(results, labels)
    if memory:
        report += '\n\nPeak memory of one training step (RSS growth, after a warm-up step):\n'
        report += memory_table(memory)
    report += '\n\nGoal cells (ParCNetV2 / ConvNeXt, same row):\n' + goal_table(cells)
    print('\n' + report)

    out = Path(args.out)
    summary = {'machine': info, 'command': command, 'note': args.note, 'arch': args.arch,
               'device': 'cpu' if device.type == 'cpu' else where,
               'clock': ', '.join(f'{c} ({t} thread(s))' for t, c in clocks.items()),
               'agreement_max_abs': agreement, 'results': results, 'memory': memory,
               'goal_cells': cells, 'linear_calibration': calibrations, 'table': report,
               'labels': {k: LABELS.get(k.split('@')[0], k) for k in labels}}
    write_json(out / 'benchmark.json', summary)
    if args.json:
        write_json(Path(args.json), summary)
    plot(results, labels, out / 'benchmark.png', args.arch)
    print(f'\nwrote {out / "benchmark.json"}' + (f' and {args.json}' if args.json else ''))
    return summary
