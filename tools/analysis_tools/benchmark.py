"""Speed and memory of ParCNetV2 against ConvNeXt and the official formulation.

In one process, the backbones run side by side on the same inputs:

* ``ParCNetV2-<arch>`` (mmparc, the default fast path), ``fixed`` and
  ``global`` kernel modes;
* mmpretrain's ``ConvNeXt`` of the same size, and the same model with its
  ``nn.Linear`` layers computed by :func:`mmparc.ops.linear`
  (``convnext-onednn``: the products ParCNetV2's 1x1 convolutions run on,
  oneDNN on x86 CPUs, forward and backward), so that the ratio separates
  the architecture from the CPU's BLAS;
* the official computation as restated in ``mmparc/testing/official.py``
  (NCHW, every oversized 1-D kernel by direct ``conv2d``), in both modes,
  with the same weights as the mmparc models.

Each backbone computes the features of its last stage (with that stage's
output norm, no head), in inference mode (``forward``) and as a training
step (forward, ``mean().backward()``, gradients of every parameter).  Timed
calls are interleaved round by round after one warm-up call each; the table
gives medians and their ratios.  Peak memory of a training step is measured
in a fresh process per model (peak RSS growth during the step, with glibc's
mmap threshold pinned so that freed blocks leave the RSS).

On a GPU (``--device cuda``) the clock is the wall clock after
``torch.cuda.synchronize()``, ``--dtypes fp16 bf16`` time the same steps
under ``torch.autocast`` (fp32 is no autocast), the default configurations
are the GPU ones (224 b64, 800x1216 b2), and the RSS memory probes are
skipped (they measure host memory).

Writes ``benchmark.json`` and ``benchmark.png`` to ``--out``.

``--products`` times, instead, the op call of every 1x1 layer of the
backbone (inference, inputs laid out as the model gives them, at 224 b1 and
800x1216 b1) with its products on oneDNN (:func:`mmparc.ops.linear`) and
with ``torch.backends.mkldnn`` disabled, where the same ops run BLAS
``addmm``/``F.linear`` (what ``nn.Linear``, hence ConvNeXt's MLPs, uses),
and writes ``products.json``.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

ROOT = Path(__file__).resolve().parents[2]

CONVNEXT_ARCH = {'t': 'tiny', 's': 'small', 'b': 'base'}
MODELS = ('convnext', 'convnext-onednn', 'fixed', 'global', 'official-fixed', 'official-global')
LABELS = {'convnext': 'ConvNeXt', 'convnext-onednn': 'ConvNeXt-oneDNN', 'fixed': 'fixed',
          'global': 'global',
          'official-fixed': 'official fixed', 'official-global': 'official global'}
# name, batch, height, width, timed repeats (forward, training step).
CONFIGS = (('224 b1', 1, 224, 224, (15, 7)),
           ('224 b8', 8, 224, 224, (5, 2)),
           ('800x1216 b1', 1, 800, 1216, (5, 3)),
           ('512 b1', 1, 512, 512, (5, 3)))
QUICK_CONFIGS = (('224 b1', 1, 224, 224, (5, 2)),
                 ('800x1216 b1', 1, 800, 1216, (2, 1)))
# The default on a GPU: the sizes one GPU trains with (classification, detection).
GPU_CONFIGS = (('224 b64', 64, 224, 224, (20, 10)),
               ('800x1216 b2', 2, 800, 1216, (20, 10)))
DTYPES = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
MEMORY_CONFIG = '800x1216 b1'


def load_reference():
    """The official formulation, :mod:`mmparc.testing.official`."""
    from mmparc.testing import official
    return official


class Bench:
    """One backbone: ``step(x, train)`` runs a forward pass or a training step."""

    def __init__(self, name: str, arch: str, device: torch.device = torch.device('cpu'),
                 dtype: str = 'fp32') -> None:
        self.name = name
        self.device = device
        self.autocast = DTYPES[dtype]
        ref = load_reference()
        self.depths = ref.ARCHS[arch][0]
        if name in ('convnext', 'convnext-onednn'):
            from mmpretrain.models import ConvNeXt
            torch.manual_seed(0)
            self.model = ConvNeXt(arch=CONVNEXT_ARCH[arch], out_indices=(3, ),
                                  gap_before_final_norm=False)
            if name == 'convnext-onednn':
                for module in self.model.modules():
                    if isinstance(module, torch.nn.Linear):
                        module.forward = _rows_linear.__get__(module)
        elif name in ('fixed', 'global'):
            from mmparc.models import ParCNetV2
            self.model = ParCNetV2(arch, kernel_mode=name, out_indices=(3, ),
                                   gap_before_final_norm=False)
            state = official_weights(ref, arch)
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            assert not missing and all(k.startswith('norm') for k in unexpected), (missing,
                                                                                  unexpected)
        else:
            self.ref = ref
            self.interpolate = name == 'official-global'
            self.params = {k: v.to(device).requires_grad_(True)
                           for k, v in official_weights(ref, arch).items()}
            self.model = None
        if self.model is not None:
            self.model.to(device)

    def parameters(self) -> List[torch.Tensor]:
        if self.model is None:
            return list(self.params.values())
        return list(self.model.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.autocast,
                            enabled=self.autocast is not None):
            if self.model is None:
                return self.ref.dense(self.params, x, self.depths, (3, ), self.interpolate,
                                      prefix='')[0]
            return self.model(x)[-1]

    def step(self, x: torch.Tensor, train: bool) -> None:
        if not train:
            if self.model is not None:
                self.model.eval()
            with torch.inference_mode():
                self.forward(x)
            return
        if self.model is not None:
            self.model.train()
        for p in self.parameters():
            p.grad = None
        self.forward(x).float().mean().backward()


def _rows_linear(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``nn.Linear.forward`` by :func:`mmparc.ops.linear` (a 2-D product over rows)."""
    from mmparc.ops import linear
    return linear(x.reshape(-1, x.shape[-1]), self.weight, self.bias).view(*x.shape[:-1], -1)


def official_weights(ref, arch: str) -> Dict[str, torch.Tensor]:
    """Random weights in the official layout, output norms included (prefix '')."""
    return ref.random_official_state_dict(arch, dense_prefix='', seed=0)


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


def time_config(benches: Dict[str, Bench], batch: int, height: int, width: int, train: bool,
                repeats: int, max_call: float, clock: Callable[[], float]) -> Dict[str, dict]:
    """Interleaved timings (seconds) of one configuration.

    A model whose warm-up call took over ``max_call`` seconds is not run
    again: its one (warm-up) call is its sample, marked ``single``.
    """
    torch.manual_seed(0)
    x = torch.randn(batch, 3, height, width).to(next(iter(benches.values())).device)
    samples: Dict[str, List[float]] = {}
    single = set()
    for name, bench in benches.items():
        start = clock()
        bench.step(x, train)
        samples[name] = [clock() - start]
        if samples[name][0] > max_call:
            single.add(name)
    for name in benches:
        if name not in single:
            samples[name] = []
    for _ in range(repeats):
        for name, bench in benches.items():
            if name in single:
                continue
            start = clock()
            bench.step(x, train)
            samples[name].append(clock() - start)
    return {name: {'median_s': statistics.median(s), 'min_s': min(s), 'samples_s': s,
                   'single': name in single}
            for name, s in samples.items()}


def synchronized_clock(device: torch.device) -> Callable[[], float]:
    """Wall clock read after the GPU's queued kernels finished (they run asynchronously)."""
    def clock() -> float:
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return clock


def probe_memory(arch: str, name: str, batch: int, height: int, width: int,
                 threads: int) -> Dict[str, float]:
    """Peak RSS growth of one training step, measured in a fresh process."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='0')
    cmd = [sys.executable, str(Path(__file__).resolve()), '--probe', name, '--arch', arch,
           '--threads', str(threads), '--probe-shape', f'{batch},{height},{width}']
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_probe(args: argparse.Namespace) -> None:
    batch, height, width = (int(v) for v in args.probe_shape.split(','))
    bench = Bench(args.probe, args.arch)
    x = torch.randn(batch, 3, height, width)
    try:  # reset the high-water mark to the current RSS (Linux >= 4.0)
        Path('/proc/self/clear_refs').write_text('5')
    except OSError:
        pass
    before = _status_bytes('VmRSS')
    bench.step(x, train=True)
    peak = _status_bytes('VmHWM')
    print(json.dumps({'peak_rss_bytes': peak, 'step_bytes': peak - before}))


def _status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmHWM`` is this process's own peak,
    unlike ``ru_maxrss``, which a child inherits from the parent it was forked from)."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f'no {field} in /proc/self/status')


# ----------------------------------------------------------------- report
def fmt_ms(entry: Optional[dict]) -> str:
    if entry is None:
        return '-'
    return f"{entry['median_s'] * 1e3:.1f}{'*' if entry['single'] else ''}"


def table(results: List[dict], names: Sequence[str], arch: str) -> str:
    head = (f"{'config':<17} {'mode':<8}"
            + ''.join(f' {LABELS[n] + " ms":>18}' for n in names)
            + f" {'fixed/CNX':>9} {'global/CNX':>10} {'fixed/CNXd':>10} {'off/fixed':>9}"
            + f" {'off/global':>10}")
    lines = [head, '-' * len(head)]
    for r in results:
        t = r['timings']
        row = f"{r['config']:<17} {r['mode']:<8}" + ''.join(f' {fmt_ms(t.get(n)):>18}'
                                                            for n in names)
        ratios = [ratio(t, 'fixed', 'convnext'), ratio(t, 'global', 'convnext'),
                  ratio(t, 'fixed', 'convnext-onednn'),
                  ratio(t, 'official-fixed', 'fixed'), ratio(t, 'official-global', 'global')]
        row += ''.join(f' {v:>{w}}' for v, w in zip(
            [f'{x:.2f}x' if x else '-' for x in ratios], (9, 10, 10, 9, 10)))
        lines.append(row)
    lines.append(f'ParCNetV2-{arch.upper()} vs ConvNeXt-{arch.upper()} (CNX; CNXd: ConvNeXt-oneDNN, '
                 'its Linear layers on mmparc.ops.linear as ours); '
                 'off/x = official time / mmparc time (speed-up); * = one run only.')
    return '\n'.join(lines)


def ratio(t: Dict[str, dict], num: str, den: str) -> Optional[float]:
    if num not in t or den not in t:
        return None
    return t[num]['median_s'] / t[den]['median_s']


def targets(results: List[dict], memory: Dict[str, dict]) -> List[Tuple[str, bool, str]]:
    """The issue's targets, each with whether it is met and the figures."""
    by = {(r['config'], r['mode']): r['timings'] for r in results}
    out = []

    def check(label: str, values: List[Tuple[str, Optional[float]]], ok: Callable) -> None:
        values = [(k, v) for k, v in values if v is not None]
        if values:
            text = ', '.join(f'{k} {v:.2f}x' for k, v in values)
            out.append((label, all(ok(v) for _, v in values), text))

    check('fixed <= 1.0x ConvNeXt (224 b1/b8, 800x1216; fwd, train)',
          [(f'{c} {m}', ratio(by[(c, m)], 'fixed', 'convnext'))
           for c in ('224 b1', '224 b8', '800x1216 b1') for m in ('forward', 'train')
           if (c, m) in by], lambda v: v <= 1.0)
    check('global <= 1.3x ConvNeXt at 800x1216 (fwd, train)',
          [(m, ratio(by[('800x1216 b1', m)], 'global', 'convnext'))
           for m in ('forward', 'train') if ('800x1216 b1', m) in by], lambda v: v <= 1.3)
    check('faster than official everywhere (speed-up > 1)',
          [(f"{c} {m} {mode}", ratio(t, f'official-{mode}', mode))
           for (c, m), t in by.items() for mode in ('fixed', 'global')], lambda v: v > 1.0)
    check('>= 1.3x faster than official at 800x1216, both modes',
          [(f'{m} {mode}', ratio(by[('800x1216 b1', m)], f'official-{mode}', mode))
           for m in ('forward', 'train') for mode in ('fixed', 'global')
           if ('800x1216 b1', m) in by], lambda v: v >= 1.3)
    if 'convnext' in memory:
        base = memory['convnext']['step_bytes']
        check('training peak memory at 800x1216 <= 1.1x ConvNeXt',
              [(n, m['step_bytes'] / base) for n, m in memory.items()
               if n in ('fixed', 'global')], lambda v: v <= 1.1)
    return out


def plot(results: List[dict], names: Sequence[str], path: Path, arch: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    modes = [m for m in ('forward', 'train') if any(r['mode'] == m for r in results)]
    fig, axes = plt.subplots(1, len(modes), figsize=(7 * len(modes), 4.5), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        rows = [r for r in results if r['mode'] == mode]
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            values = [r['timings'][name]['median_s'] * 1e3 if name in r['timings'] else 0
                      for r in rows]
            ax.bar([j + i * width for j in range(len(rows))], values, width,
                   label=LABELS[name])
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))])
        ax.set_xticklabels([r['config'] for r in rows])
        ax.set_yscale('log')
        ax.set_ylabel('median time (ms, log)')
        ax.set_title(f'{mode}: ParCNetV2-{arch.upper()} vs ConvNeXt-{arch.upper()}')
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------- products
def product_shapes(arch: str, height: int, width: int) -> List[Tuple[str, int, int, int]]:
    """``(name, rows, in, out)`` of every distinct 1x1 layer of the backbone.

    Read off the model itself: its map sizes (``stage_sizes``) and the first
    block's layers of each stage.
    """
    from mmparc.models import ParCNetV2
    model = ParCNetV2(arch)
    shapes = []
    for i, ((h, w), stage) in enumerate(zip(model.stage_sizes((height, width)), model.stages)):
        block = stage[0]
        for name, layer in (('pwconv1', block.token_mixer.pwconv1),
                            ('pwconv2', block.token_mixer.pwconv2),
                            ('fc1', block.mlp.fc1), ('fc2', block.mlp.fc2)):
            shapes.append((f'stage {i} {name}', h * w, layer.in_channels, layer.out_channels))
    return shapes


def layer_call(name: str, rows: int, fan_in: int, fan_out: int) -> Callable[[], torch.Tensor]:
    """The op call one 1x1 layer makes in inference, on inputs laid out as the model's."""
    from mmparc.ops import gated_projection, pointwise_conv2d
    weight, bias = torch.randn(fan_out, fan_in) / fan_in**0.5, torch.randn(fan_out)
    pixels = torch.randn(1, rows, 1, fan_in).permute(0, 3, 1, 2)  # channels-last NCHW
    if name.endswith('pwconv1'):  # channel-major output, for the oversized convolution
        return lambda: pointwise_conv2d(pixels, weight, bias, channel_major=True)
    if name.endswith('fc1'):  # channels-last rows
        return lambda: pointwise_conv2d(pixels, weight, bias, channel_major=False)
    if name.endswith('pwconv2'):  # channel-major value and gate, from the mixer
        value, gate = torch.randn(2, fan_in, 1, rows, 1).unbind(0)
        value, gate = value.transpose(0, 1), gate.transpose(0, 1)
        return lambda: gated_projection(value, gate, weight, False)
    hidden = torch.randn(1, rows, 1, 2 * fan_in).permute(0, 3, 1, 2)  # fc1's output
    value, gate = hidden.split(fan_in, dim=1)
    return lambda: gated_projection(value, gate, weight, True)


def time_products(arch: str, clock: Callable[[], float]) -> List[dict]:
    """Median time of each 1x1 layer's op with oneDNN and with it disabled.

    With ``torch.backends.mkldnn`` disabled the ops take their BLAS path
    (``addmm``/``F.linear``), what they ran before oneDNN.
    """
    from mmparc.ops.matmul import onednn_applies
    rows_out = []
    for config, _, height, width, _ in (CONFIGS[0], CONFIGS[2]):
        for name, rows, fan_in, fan_out in product_shapes(arch, height, width):
            call = layer_call(name, rows, fan_in, fan_out)
            repeats = max(3, min(30, int(2e8 // (rows * fan_in * fan_out))))
            times: Dict[str, List[float]] = {'onednn': [], 'blas': []}
            with torch.inference_mode():
                onednn = onednn_applies(torch.empty(1, fan_in), torch.empty(fan_out, fan_in),
                                        None)
                enabled = torch.backends.mkldnn.enabled
                try:
                    for _ in range(repeats + 1):
                        for key in times:
                            torch.backends.mkldnn.enabled = key == 'onednn'
                            start = clock()
                            call()
                            times[key].append(clock() - start)
                finally:
                    torch.backends.mkldnn.enabled = enabled
            med = {k: statistics.median(v[1:]) * 1000 for k, v in times.items()}
            rows_out.append({'config': config, 'layer': name, 'rows': rows, 'in': fan_in,
                             'out': fan_out, 'onednn': onednn, 'onednn_ms': med['onednn'],
                             'blas_ms': med['blas']})
    return rows_out


def products_table(rows: List[dict]) -> str:
    lines = [f"{'config':<13} {'layer':<16} {'rows x in -> out':>20} {'oneDNN ms':>10} "
             f"{'BLAS ms':>9} {'ratio':>6}"]
    for r in rows:
        lines.append(f"{r['config']:<13} {r['layer']:<16} "
                     f"{r['rows']:>9} x {r['in']:>3} -> {r['out']:>4} {r['onednn_ms']:>10.3f} "
                     f"{r['blas_ms']:>9.3f} {r['onednn_ms'] / r['blas_ms']:>5.2f}x")
    total = sum(r['onednn_ms'] for r in rows) / sum(r['blas_ms'] for r in rows)
    ratios = sorted(r['onednn_ms'] / r['blas_ms'] for r in rows)
    lines.append(f"oneDNN {'ran' if all(r['onednn'] for r in rows) else 'did NOT run'}; "
                 f'oneDNN / BLAS per layer {ratios[0]:.2f}x-{ratios[-1]:.2f}x, '
                 f'summed over the table {total:.2f}x')
    return '\n'.join(lines)


# ------------------------------------------------------------------- main
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', default='t', choices=sorted(CONVNEXT_ARCH))
    parser.add_argument('--quick', action='store_true',
                        help='224 b1 and 800x1216 only, few repeats')
    parser.add_argument('--threads', type=int, default=1,
                        help='intra-op threads (0: torch default). Default 1: on a '
                             'machine shared with other jobs, multi-threaded timings '
                             'mostly measure OpenMP barriers waiting for the scheduler')
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
    parser.add_argument('--repeat-scale', type=float, default=1.0,
                        help='multiply the timed repeats of every config')
    parser.add_argument('--max-call', type=float, default=8.0,
                        help='seconds above which a model is timed by its warm-up call only')
    parser.add_argument('--no-memory', action='store_true', help='skip the memory probes')
    parser.add_argument('--products', action='store_true',
                        help='time the 1x1 layers\' ops with oneDNN and with BLAS only')
    parser.add_argument('--out', default=str(ROOT / 'outputs' / 'benchmark'))
    parser.add_argument('--probe', choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument('--probe-shape', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.probe:
        run_probe(args)
        return {}
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('benchmark.py: --device cuda, but torch sees no CUDA device')
    if device.type == 'cuda' and args.clock == 'cpu':
        raise SystemExit('benchmark.py: --clock cpu does not time GPU work; use wall')
    configs = QUICK_CONFIGS if args.quick else (GPU_CONFIGS if device.type == 'cuda'
                                                else CONFIGS)
    if args.configs:
        known = {c[0] for c in CONFIGS + GPU_CONFIGS}
        unknown = [c for c in args.configs if c not in known]
        if unknown:
            raise SystemExit(f'benchmark.py: unknown --configs {unknown}; known: {sorted(known)}')
        configs = [c for c in CONFIGS + GPU_CONFIGS if c[0] in args.configs]
    clock_name = args.clock
    if clock_name == 'auto':
        clock_name = 'cpu' if torch.get_num_threads() == 1 and device.type == 'cpu' else 'wall'
    clock = (synchronized_clock(device) if device.type == 'cuda'
             else time.process_time if clock_name == 'cpu' else time.perf_counter)
    if args.products:
        if device.type != 'cpu':
            raise SystemExit('benchmark.py: --products times the CPU products; drop --device')
        products = time_products(args.arch, clock)
        print(f'torch {torch.__version__}, {torch.get_num_threads()} thread(s), {clock_name} '
              f'clock, {platform.processor() or platform.machine()}\n'
              + products_table(products))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        partial = out / 'products.json.part'
        partial.write_text(json.dumps({'arch': args.arch, 'torch': torch.__version__,
                                       'products': products}, indent=1))
        os.replace(partial, out / 'products.json')
        return {'products': products}
    names = [n for n in MODELS if n in args.models]
    benches = {n: Bench(n, args.arch, device) for n in names}
    agreement = check_agreement(benches, torch.randn(1, 3, 224, 224, device=device))
    where = (platform.processor() or platform.machine() if device.type == 'cpu'
             else torch.cuda.get_device_name(device))
    print(f'torch {torch.__version__}, {torch.get_num_threads()} thread(s), {clock_name} clock, '
          f'{where}; max |mmparc - official| at 224: '
          + ', '.join(f'{k} {v:.1e}' for k, v in agreement.items()), flush=True)

    results = []
    for dtype in args.dtypes:
        for bench in benches.values():
            bench.autocast = DTYPES[dtype]
        for config, batch, height, width, repeats in configs:
            # fp32 rows keep the plain config name (the targets look them up)
            label = config if dtype == 'fp32' else f'{config} {dtype}'
            for mode in args.modes:
                train = mode == 'train'
                count = max(1, round(repeats[train] * args.repeat_scale))
                timings = time_config(benches, batch, height, width, train, count,
                                      args.max_call, clock)
                results.append({'config': label, 'batch': batch, 'height': height,
                                'width': width, 'dtype': dtype, 'mode': mode,
                                'repeats': count, 'timings': timings})
                print(f'{label:<17} {mode:<8} '
                      + ' '.join(f'{n}={fmt_ms(timings[n])}ms' for n in names), flush=True)

    memory: Dict[str, dict] = {}
    memory_config = next((c for c in configs if c[0] == MEMORY_CONFIG), None)
    if (not args.no_memory and memory_config and 'train' in args.modes
            and device.type == 'cpu' and args.dtypes == ['fp32']):
        _, batch, height, width, _ = memory_config
        for name in [n for n in names if not n.startswith('official') and n != 'convnext-onednn']:
            memory[name] = probe_memory(args.arch, name, batch, height, width,
                                        torch.get_num_threads())

    report = table(results, names, args.arch)
    if memory:
        base = memory.get('convnext', {}).get('step_bytes')
        report += f'\n\nPeak memory of one training step at {MEMORY_CONFIG} (RSS growth):\n'
        report += '\n'.join(
            f"  {LABELS[n]:<10} {m['step_bytes'] / 2**20:8.0f} MiB"
            + (f'  ({m["step_bytes"] / base:.2f}x ConvNeXt)' if base else '')
            for n, m in memory.items())
    checks = targets(results, memory)
    report += '\n\nTargets:\n' + '\n'.join(
        f"  [{'met' if ok else 'MISSED'}] {label}: {text}" for label, ok, text in checks)
    print('\n' + report)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'clock': clock_name,
               'device': where if device.type == 'cuda' else 'cpu',
               'arch': args.arch, 'agreement_max_abs': agreement, 'results': results,
               'memory': memory, 'targets': [{'target': label, 'met': ok, 'figures': text}
                                             for label, ok, text in checks],
               'table': report}
    (out / 'benchmark.json').write_text(json.dumps(summary, indent=1))
    plot(results, names, out / 'benchmark.png', args.arch)
    print(f'\nwrote {out / "benchmark.json"} and {out / "benchmark.png"}')
    return summary


if __name__ == '__main__':
    main()
