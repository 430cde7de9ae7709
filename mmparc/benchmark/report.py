"""Text tables of a benchmark run, and its goal cells: each measured ratio beside its target.

A result row is one (threads, dtype, config, mode) with the median time of
every model label (``fixed``, ``convnext``, ``fixed@compile``,
``convnext@onnxruntime``, ...).  Ratios are always taken within a row, i.e.
between models timed interleaved in the same process.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .models import LABELS

GOAL_CONFIGS = ('224 b1', '224 b8', '800x1216 b1')
ONNX_GOAL_CONFIGS = ('224 b1', '800x1216 b1')
TIME_TARGET = 0.9  # ParCNetV2-T time / ConvNeXt-T time
MEMORY_TARGET = 1.0  # peak training-step memory, ParCNetV2-T / ConvNeXt-T


def ratio(timings: Dict[str, dict], num: str, den: str) -> Optional[float]:
    if num not in timings or den not in timings:
        return None
    return timings[num]['median_s'] / timings[den]['median_s']


def _split(label: str):
    name, _, backend = label.partition('@')
    return name, backend or 'eager'


def label_text(label: str) -> str:
    name, backend = _split(label)
    return LABELS.get(name, name) + ('' if backend == 'eager' else f' ({backend})')


def goal_cells(results: List[dict], memory: Dict[str, Dict[str, dict]]) -> List[dict]:
    """Every goal cell that was measured: ParCNetV2 / ConvNeXt time (or memory) and target.

    Time cells: {224 b1, 224 b8, 800x1216 b1} x {forward, train} x {fixed,
    global}, per thread count, dtype and backend (eager, compile; onnxruntime
    forward at 224 b1 and 800x1216 b1); memory cells: peak training-step
    memory per thread count.
    """
    cells = []
    for row in results:
        base_config = row['config'].rsplit(' ', 1)[0] if row['dtype'] != 'fp32' else row['config']
        for label in row['timings']:
            name, backend = _split(label)
            if name not in ('fixed', 'global'):
                continue
            configs = ONNX_GOAL_CONFIGS if backend == 'onnxruntime' else GOAL_CONFIGS
            if base_config not in configs:
                continue
            den = 'convnext' if backend == 'eager' else f'convnext@{backend}'
            value = ratio(row['timings'], label, den)
            if value is None:
                continue
            cells.append({'kind': 'time', 'threads': row['threads'], 'dtype': row['dtype'],
                          'backend': backend, 'config': base_config, 'mode': row['mode'],
                          'model': name, 'ratio': value, 'target': TIME_TARGET,
                          'met': value <= TIME_TARGET})
    for threads, probes in memory.items():
        base = probes.get('convnext', {}).get('step_bytes')
        for name in ('fixed', 'global'):
            if base and name in probes:
                value = probes[name]['step_bytes'] / base
                cells.append({'kind': 'memory', 'threads': int(threads), 'dtype': 'fp32',
                              'backend': 'eager', 'config': probes[name]['config'],
                              'mode': 'train', 'model': name, 'ratio': value,
                              'target': MEMORY_TARGET, 'met': value <= MEMORY_TARGET})
    return cells


def fmt_ms(entry: Optional[dict]) -> str:
    if entry is None:
        return '-'
    return f"{entry['median_s'] * 1e3:.1f}{'*' if entry['single'] else ''}"


def _short(label: str) -> str:
    name, backend = _split(label)
    short = {'convnext': 'CNX', 'convnext-onednn': 'CNXd'}.get(name, name)
    return short if backend == 'eager' else f'{short}@{backend}'


def timing_table(results: List[dict], labels: Sequence[str]) -> str:
    """Medians (ms) of every model and the ratios within each row, one line per row.

    The eager ratios always have their columns (``-`` where a model was not
    run): ``fixed/CNX``, ``global/CNX`` (ConvNeXt), ``fixed/CNXd``
    (ConvNeXt-oneDNN), ``off/fixed``, ``off/global`` (official / mmparc, a
    speed-up); compiled and onnxruntime ratios follow where they were run.
    """
    ratio_columns = [('fixed', 'convnext'), ('global', 'convnext'), ('fixed', 'convnext-onednn'),
                     ('official-fixed', 'fixed'), ('official-global', 'global')]
    for backend in ('compile', 'onnxruntime'):
        for name in ('fixed', 'global'):
            if f'{name}@{backend}' in labels:
                ratio_columns.append((f'{name}@{backend}', f'convnext@{backend}'))
    titles = [f'{_short(n)}/{_short(d)}' if not n.startswith('official')
              else f"off/{n.split('-')[1]}" for n, d in ratio_columns]
    head = f"{'config':<17} {'mode':<8} {'thr':>3}" + ''.join(
        f' {label_text(n) + " ms":>22}' for n in labels) + ''.join(
            f' {t:>{max(10, len(t))}}' for t in titles)
    lines = [head, '-' * len(head)]
    for r in results:
        t = r['timings']
        row = f"{r['config']:<17} {r['mode']:<8} {r['threads']:>3}" + ''.join(
            f' {fmt_ms(t.get(n)):>22}' for n in labels)
        for (n, d), title in zip(ratio_columns, titles):
            value = ratio(t, n, d)
            row += f" {(f'{value:.2f}x' if value else '-'):>{max(10, len(title))}}"
        lines.append(row)
    lines.append('CNX: ConvNeXt; CNXd: ConvNeXt with its Linear layers on mmparc.ops.linear; '
                 'off: official formulation; x/y = time of x / time of y in the same row '
                 '(timed interleaved, one process); thr: intra-op threads; * = one run only.')
    return '\n'.join(lines)


def goal_table(cells: List[dict]) -> str:
    """The goal cells: measured ratio, target, met or not."""
    lines = [f"{'threads':>7} {'dtype':<5} {'backend':<11} {'config':<12} {'mode':<8} "
             f"{'model':<7} {'what':<7} {'ParCNetV2/ConvNeXt':>18} {'target':>7}  met"]
    for c in cells:
        lines.append(f"{c['threads']:>7} {c['dtype']:<5} {c['backend']:<11} {c['config']:<12} "
                     f"{c['mode']:<8} {c['model']:<7} {c['kind']:<7} {c['ratio']:>17.2f}x "
                     f"{c['target']:>6.2f}x  {'yes' if c['met'] else 'NO'}")
    met = sum(c['met'] for c in cells)
    lines.append(f'{met} of {len(cells)} goal cells met')
    return '\n'.join(lines)


def memory_table(memory: Dict[str, Dict[str, dict]]) -> str:
    lines = []
    for threads, probes in memory.items():
        base = probes.get('convnext', {}).get('step_bytes')
        for name, m in probes.items():
            lines.append(f"  {threads} thread(s) {m['config']} {LABELS.get(name, name):<10} "
                         f"{m['step_bytes'] / 2**20:8.0f} MiB"
                         + (f"  ({m['step_bytes'] / base:.2f}x ConvNeXt)" if base else ''))
    return '\n'.join(lines)


def plot(results: List[dict], labels: Sequence[str], path: Path, arch: str) -> None:
    """Bar chart of the medians (log scale), one panel per mode."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    modes = [m for m in ('forward', 'train') if any(r['mode'] == m for r in results)]
    fig, axes = plt.subplots(1, len(modes), figsize=(8 * len(modes), 4.5), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        rows = [r for r in results if r['mode'] == mode]
        width = 0.8 / len(labels)
        for i, label in enumerate(labels):
            values = [r['timings'][label]['median_s'] * 1e3 if label in r['timings'] else 0
                      for r in rows]
            ax.bar([j + i * width for j in range(len(rows))], values, width,
                   label=label_text(label))
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))])
        ax.set_xticklabels([f"{r['config']}\n{r['threads']} thr" for r in rows], fontsize=7)
        ax.set_yscale('log')
        ax.set_ylabel('median time (ms, log)')
        ax.set_title(f'{mode}: ParCNetV2-{arch.upper()} vs ConvNeXt-{arch.upper()}')
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
