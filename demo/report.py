"""What the demo's runs reached: metrics from their logs, and the summary table.

mmengine's Runner writes every logged scalar to ``<timestamp>/vis_data/
scalars.json``; the last validation there is the run's result, compared with
the demo's targets.
"""
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

from demo.jobs import Metric, cpu_seconds, format_duration

PathLike = Union[str, Path]
Records = List[Dict[str, float]]
#: Targets on the generated val splits (fractions, IoU 0.5 for the mAPs).
TARGETS = {'box mAP@0.5': 0.5, 'mask mAP@0.5': 0.4, 'mIoU': 0.6}


def find_scalars(work_dir: PathLike) -> Path:
    """The newest ``<timestamp>/vis_data/scalars.json`` that a Runner wrote."""
    candidates = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    if not candidates:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir}: '
                                'was the run trained with a LocalVisBackend?')
    return candidates[-1]


def read_scalars(path: PathLike) -> Tuple[Records, Records]:
    """Split a Runner's ``scalars.json`` into training and validation records.

    Training records carry ``loss``; validation records are the others (their
    keys are metric names).  ``step`` is the iteration for both.
    """
    train: Records = []
    val: Records = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        (train if 'loss' in record else val).append(record)
    return train, val


def final_metrics(work_dir: Path, metrics: Sequence[Metric]
                  ) -> Tuple[Dict[str, float], Tuple[Records, Records]]:
    """The last validation's metrics (as fractions) and the run's records."""
    train, val = read_scalars(find_scalars(work_dir))
    found: Dict[str, float] = {}
    for record in val:
        for key, label, scale in metrics:
            if key in record:
                found[label] = float(record[key]) * scale
    return found, (train, val)


def summary_row(task: str, model: str, data: str, work_dir: Path, train_seconds: float,
                metrics: Dict[str, float], records: Tuple[Records, Records]) -> Dict[str, Any]:
    """One run's line of the summary (and of ``summary.json``)."""
    train, _ = records
    return dict(task=task, model=model, data=data,
                iters=int(max((r['step'] for r in train), default=0)),
                train_seconds=train_seconds, cpu_seconds=cpu_seconds(work_dir),
                metrics=metrics, targets=TARGETS)


def targets_met(rows: Sequence[Dict[str, Any]]) -> Dict[str, bool]:
    """Each metric of the rows: whether it reached its target."""
    return {name: value >= TARGETS[name] for row in rows for name, value in row['metrics'].items()}


def summary_table(rows: Sequence[Dict[str, Any]]) -> str:
    """A plain-text table of the runs' metrics against the targets."""
    header = ('task', 'model', 'data', 'iters', 'train time', 'cpu time', 'metric', 'value',
              'target', 'met')
    lines = []
    for row in rows:
        first = True
        for metric, value in row['metrics'].items():
            target = row['targets'].get(metric)
            met = '' if target is None else ('yes' if value >= target else 'NO')
            cells = ((row['task'], row['model'], row['data'], str(row['iters']),
                      format_duration(row['train_seconds']),
                      format_duration(row['cpu_seconds']))
                     if first else ('',) * 6)
            lines.append(cells + (metric, f'{value:.3f}',
                                  '' if target is None else f'{target:.2f}', met))
            first = False
    widths = [max(len(str(r[i])) for r in [header] + lines) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        return '  '.join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return '\n'.join([fmt(header), fmt(['-' * w for w in widths])] + [fmt(r) for r in lines])


def print_report(rows: Sequence[Dict[str, Any]], times: Mapping[str, float], toy: bool,
                 quick: bool, outputs: Mapping[str, PathLike]) -> None:
    """Step 4's console output: times, the table, the verdict, where things are."""
    print(f'== 4/4 summary (total {format_duration(times["total"])}: '
          f'data {format_duration(times["data"])}, '
          f'training {format_duration(times["training"])}, '
          f'pictures {format_duration(times["pictures"])})')
    print()
    print(summary_table(rows))
    print()
    if toy:
        missed = [name for name, ok in targets_met(rows).items() if not ok]
        print('All targets met.' if not missed else f'Targets missed: {", ".join(missed)}.')
    elif quick:
        print('(--quick checks the flow only: a few iterations cannot reach the targets.)')
    width = max(len(k) for k in outputs)
    print('Outputs:')
    for key, path in outputs.items():
        print(f'  {key:<{width}}  {_relative(path)}')


def _relative(path: PathLike) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)
