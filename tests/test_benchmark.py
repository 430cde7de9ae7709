"""The benchmark's reports: goal cells from its results, docs tables from its JSON.

(The command-line runs of ``tools/analysis_tools/benchmark.py`` are tested
in ``test_gpu_check.py``; these tests build summaries by hand, so they run
in milliseconds.)
"""
import json

import pytest

from mmparc.benchmark import docs, machine_info
from mmparc.benchmark.report import goal_cells, goal_table, timing_table


def timing(ms: float) -> dict:
    return {'median_s': ms / 1000, 'min_s': ms / 1000, 'samples_s': [ms / 1000],
            'single': False}


def row(threads: int, config: str, mode: str, dtype: str = 'fp32', **ms: float) -> dict:
    return {'threads': threads, 'clock': 'cpu', 'config': config, 'dtype': dtype, 'mode': mode,
            'batch': 1, 'height': 224, 'width': 224, 'repeats': 1,
            'timings': {k.replace('_at_', '@'): timing(v) for k, v in ms.items()}}


RESULTS = [
    row(1, '224 b1', 'forward', convnext=100, fixed=80, **{'global': 95}),
    row(2, '224 b1', 'train', convnext=100, fixed=91, **{'global': 90}),
    row(1, '512 b1', 'forward', convnext=100, fixed=99),  # not a goal configuration
    row(1, '224 b1 bf16', 'forward', 'bf16', convnext=50, fixed=60),
    row(1, '224 b1', 'forward', convnext_at_onnxruntime=10, fixed_at_onnxruntime=8),
    row(1, '224 b8', 'forward', convnext_at_onnxruntime=10, fixed_at_onnxruntime=8),
]
MEMORY = {'1': {'convnext': {'step_bytes': 100 * 2**20, 'config': '800x1216 b1'},
                'fixed': {'step_bytes': 101 * 2**20, 'config': '800x1216 b1'}}}


def test_goal_cells_are_ratios_within_a_row_beside_their_targets():
    cells = goal_cells(RESULTS, MEMORY)
    found = {(c['threads'], c['dtype'], c['backend'], c['config'], c['mode'], c['model']):
             (round(c['ratio'], 3), c['met']) for c in cells if c['kind'] == 'time'}
    assert found == {
        (1, 'fp32', 'eager', '224 b1', 'forward', 'fixed'): (0.8, True),
        (1, 'fp32', 'eager', '224 b1', 'forward', 'global'): (0.95, False),
        (2, 'fp32', 'eager', '224 b1', 'train', 'fixed'): (0.91, False),
        (2, 'fp32', 'eager', '224 b1', 'train', 'global'): (0.9, True),
        (1, 'bf16', 'eager', '224 b1', 'forward', 'fixed'): (1.2, False),
        (1, 'fp32', 'onnxruntime', '224 b1', 'forward', 'fixed'): (0.8, True),
    }  # 512 b1 and onnxruntime at 224 b8 are no goal cells
    (memory, ) = [c for c in cells if c['kind'] == 'memory']
    assert memory['ratio'] == pytest.approx(1.01) and not memory['met']
    table = goal_table(cells)
    assert table.splitlines()[-1] == f'3 of {len(cells)} goal cells met'


def test_timing_table_names_every_ratio_column():
    text = timing_table(RESULTS[:2], ['convnext', 'fixed', 'global'])
    head, _, first = text.splitlines()[:3]
    assert head.split()[:3] == ['config', 'mode', 'thr']
    assert 'fixed/CNX' in head and 'global/CNX' in head and 'fixed/CNXd' in head
    assert first.split()[-5:] == ['0.80x', '0.95x', '-', '-', '-']


def summary() -> dict:
    return {'machine': machine_info(), 'command': 'tools/analysis_tools/benchmark.py --quick',
            'note': 'two other jobs running', 'clock': 'cpu (1 thread(s))',
            'results': RESULTS, 'memory': MEMORY, 'goal_cells': goal_cells(RESULTS, MEMORY)}


def test_machine_info_names_cpu_versions_and_date(monkeypatch):
    from mmparc.benchmark.machine import describe
    monkeypatch.delenv('MALLOC_MMAP_THRESHOLD_', raising=False)
    info = machine_info()
    assert info['cpu'] and info['cores'] >= 1 and info['torch']
    assert info['date'].endswith('UTC')
    assert 'MALLOC_MMAP_THRESHOLD_' not in info['environment']
    json.dumps(info)
    monkeypatch.setenv('MALLOC_MMAP_THRESHOLD_', '33554432')
    monkeypatch.setenv('HOME_AWAY', 'not a tuning variable')
    info = machine_info()
    assert info['environment']['MALLOC_MMAP_THRESHOLD_'] == '33554432'
    assert 'HOME_AWAY' not in info['environment']
    assert 'MALLOC_MMAP_THRESHOLD_=33554432' in describe(info)


def test_docs_tables_are_rendered_from_the_json(tmp_path):
    path = tmp_path / 'cpu.json'
    path.write_text(json.dumps(summary()))
    target = tmp_path / 'performance.md'
    target.write_text(f'# Performance\n\nprose\n\n{docs.BEGIN}\nstale table\n{docs.END}\n\nmore prose\n')
    assert docs.main([str(path), '--write', str(target)]) == 0
    text = target.read_text()
    assert text.startswith('# Performance\n\nprose\n\n') and text.endswith('\n\nmore prose\n')
    assert 'stale table' not in text
    info = machine_info()
    assert f"### {info['cpu']}, {info['cores']} cores" in text
    assert '`tools/analysis_tools/benchmark.py --quick`' in text
    assert 'load: two other jobs running' in text
    assert '| 224 b1 | forward | 100.0 | 80.0 | 95.0 | **0.80x** | 0.95x |' in text
    assert '| 512 b1 (no goal) | forward |' in text
    assert '**1 thread(s), bf16, eager**' in text and '**1 thread(s), fp32, onnxruntime**' in text
    assert 'fixed 101 MiB (1.01x)' in text
    assert not list(tmp_path.glob('*.part'))


def test_docs_refuse_a_file_without_markers(tmp_path):
    path = tmp_path / 'cpu.json'
    path.write_text(json.dumps(summary()))
    target = tmp_path / 'performance.md'
    target.write_text('# Performance\n')
    with pytest.raises(ValueError, match='markers'):
        docs.main([str(path), '--write', str(target)])
    assert target.read_text() == '# Performance\n'


def test_settle_pause_comes_before_each_timed_call_and_outside_it(monkeypatch):
    """With ``settle_s`` every sample reads: sleep, clock, one step, clock (in that
    order), so the pause that lets other models' threads stop spinning is never timed."""
    import torch

    from mmparc.benchmark import timing as timing_module
    events = []

    class Fake:
        device = torch.device('cpu')

        def __init__(self, name: str) -> None:
            self.name = name

        def step(self, x: torch.Tensor, train: bool) -> None:
            events.append(('step', self.name))

    monkeypatch.setattr(timing_module.time, 'sleep', lambda s: events.append(('sleep', s)))
    ticks = iter(range(100))

    def clock() -> float:
        events.append(('clock', ))
        return float(next(ticks))

    out = timing_module.time_config({'a': Fake('a'), 'b': Fake('b')}, 1, 4, 4, False,
                                    repeats=3, max_call=10.0, clock=clock, settle_s=0.25)
    assert [len(v['samples_s']) for v in out.values()] == [3, 3]
    timed = [i for i, e in enumerate(events) if e == ('clock', )][::2]  # each sample's start
    assert len(timed) == 6
    for start in timed:
        assert events[start - 1] == ('sleep', 0.25)
        assert events[start + 1][0] == 'step' and events[start + 2] == ('clock', )


def test_onnx_profile_classes_nodes_and_counts_their_multiply_adds(tmp_path):
    """A graph with one node of each class, run under onnxruntime's profiler."""
    pytest.importorskip('onnxruntime')
    import torch

    from mmparc.benchmark.models import export_onnx
    from mmparc.benchmark.onnx_profile import profile_model, profile_table

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pointwise = torch.nn.Conv2d(16, 32, 1)
            self.depthwise = torch.nn.Conv2d(32, 32, 3, padding=1, groups=32)
            self.dense = torch.nn.Conv2d(32, 16, 3, padding=1)  # (NCHWc pads to 16)
            self.matrix = torch.nn.Parameter(torch.randn(8, 5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.matmul(self.dense(self.depthwise(self.pointwise(x))), self.matrix)

    path = str(tmp_path / 'tiny.onnx')
    export_onnx(Tiny().eval(), torch.zeros(1, 16, 6, 8), path)
    summary = profile_model(path, (1, 16, 6, 8), threads=1, runs=3, warmup=1)
    classes = summary['classes']
    assert classes['Conv 1x1']['macs'] == 32 * 48 * 16
    assert classes['Conv depthwise']['macs'] == 32 * 48 * 9
    assert classes['Conv']['macs'] == 16 * 48 * 32 * 9
    assert classes['MatMul']['macs'] == 16 * 6 * 5 * 8
    assert all(c['ms'] > 0 and c['nodes'] == 1 for c in classes.values() if c['macs'])
    table = profile_table('tiny', summary)
    assert 'Conv 1x1' in table and 'GMAC/s' in table


def test_onnx_profile_command_writes_its_json(tmp_path):
    """``benchmark.py --onnx-profile``: the deployed ParCNetV2-T, profiled, in JSON."""
    pytest.importorskip('onnxruntime')
    from mmparc.benchmark import cli
    result = cli.main(['--onnx-profile', '--configs', '224 b1', '--models', 'fixed',
                       '--threads', '1', '--out', str(tmp_path)])
    written = json.loads((tmp_path / 'onnx_profile.json').read_text())
    assert written['profiles'][0]['model'] == 'fixed' == result['profiles'][0]['model']
    classes = written['profiles'][0]['classes']
    assert classes['Conv 1x1']['macs'] > 3e9  # ParCNetV2-T's 1x1 layers at 224: 3.74 GMAC
    assert 'MatMul' in classes  # the deployed oversized kernels, as Toeplitz products
    with pytest.raises(SystemExit, match='separate runs'):
        cli.main(['--onnx-profile', '--products', '--out', str(tmp_path)])
