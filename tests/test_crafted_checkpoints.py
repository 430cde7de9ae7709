"""Crafted checkpoints: refused with a clear message, no crash, no side effects.

Each file is loaded in a fresh subprocess that has imported mmparc, through
every public path (plain ``torch.load``; :func:`mmparc.checkpoint.load_checkpoint_file`;
mmengine's ``_load_checkpoint``), and whatever loads is then used as user
code would (field access, ``deepcopy``, HistoryBuffer statistics).  The
subprocess reports, and the test asserts: every path refused the file, with a
one-line message from mmparc's loader; no signal killed the process; the
marker file the payload would write does not exist; HistoryBuffer's
class-level ``_statistics_methods`` and torch's safe globals are unchanged;
plain ``torch.load`` still refuses numpy content while mmparc still loads a
genuine Runner-style checkpoint.  Files that could corrupt memory each get
their own process; the others share one per group.

The second half (``ENTRY``) runs files through the entry points users reach
them by: Runner ``resume=True`` and ``load_from`` (training), ``init_cfg=
dict(type='Pretrained')`` ``init_weights()``, an ``http://`` checkpoint (torch
hub's download patched to serve the file), and an mmengine ``BaseInferencer``
with ``model=None, weights=path``, under a memory limit (``RLIMIT_DATA``)
and a timeout, timing each load: code payloads, config text that would run
code, content whose ``repr`` is exponential, sizes beyond the budget,
``_metadata`` flags, non-tensor weights, and meta/optimizer/scheduler state
that does not fit the resuming run.
"""
import copy
import copyreg
import json
import os
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

ROOT = Path(__file__).resolve().parents[1]


def _env() -> Dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get('PYTHONPATH')) if p)
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS='1')


class Reduce:
    """Pickles as ``func(*args)``, then ``BUILD state``: what a crafted file says."""

    def __init__(self, func: Any, args: tuple, state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is None:
            return self.func, self.args
        return self.func, self.args, self.state


def crafted_dtype(code: str, state: tuple) -> Reduce:
    return Reduce(np.dtype, (code, False, True), state)


def crafted_array(dtype: Any, shape: tuple, data: Any) -> Reduce:
    from numpy.core.multiarray import _reconstruct
    return Reduce(_reconstruct, (np.ndarray, (0,), b'b'), (1, shape, dtype, False, data))


def crafted_history_buffer(state: Optional[Dict[str, Any]]) -> HistoryBuffer:
    """Pickles as a HistoryBuffer (``NEWOBJ``) with ``state`` (``BUILD``), as mmengine's."""
    buffer = HistoryBuffer.__new__(HistoryBuffer)
    reduce = (copyreg.__newobj__, (HistoryBuffer,)) + (() if state is None else (state,))
    buffer.__reduce_ex__ = lambda protocol: reduce
    return buffer


def hb_state(**extra: Any) -> Dict[str, Any]:
    state = {'max_length': 10, '_log_history': np.array([1.0, 2.0]),
             '_count_history': np.array([1, 1])}
    state.update(extra)
    return state


def stat(name: str) -> Reduce:
    return Reduce(getattr, (HistoryBuffer, name))


def save_pickle_bytes(path: Path, data: bytes) -> Path:
    """A torch zip checkpoint whose ``data.pkl`` is exactly ``data``."""
    torch.save({'x': 1}, path)
    with zipfile.ZipFile(path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        for name, content in entries.items():
            archive.writestr(name, data if name.endswith('/data.pkl') else content)
    return path


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b'X' + struct.pack('<I', len(raw)) + raw


# A union dtype ('i8' with a field) whose field is forged to be an object
# pointer over the raw int64 bytes 0x4141...: reading it dereferences them.
def _object_field_over_bytes() -> Any:
    object_dtype = Reduce(np.dtype, ('O8', False, True))  # no BUILD needed
    forged = crafted_dtype('i8', (3, '<', None, ('a',), {'a': (object_dtype, 0)}, 8, 8, 0))
    return {'message_hub': {'runtime_info': {'x': crafted_array(forged, (1,), b'A' * 8)}}}


def _field_at_offset() -> Any:
    """The same forgery with an int field (as the object one, minus the pointer)."""
    forged = crafted_dtype('i8', (3, '<', None, ('a',), {'a': (np.dtype('i4'), 4)}, 8, 8, 0))
    return {'runtime_info': crafted_array(forged, (1,), b'A' * 8)}


def _out_of_bounds_offset() -> Any:
    forged = crafted_dtype('i8', (3, '<', None, ('a',), {'a': (np.dtype('i8'), 1 << 24)},
                                  8, 8, 0))
    return {'runtime_info': crafted_array(forged, (1,), b'B' * 8)}


def _object_array() -> Any:
    return {'runtime_info': {'x': np.array([1, 'text', None], dtype=object)}}


def _object_scalar_in_buffer() -> Any:
    return {'log_scalars': {'loss': crafted_history_buffer(
        hb_state(_log_history=np.array([{'a': 1}], dtype=object),
                 _count_history=np.array([1])))}}


def _structured_array() -> Any:
    return {'x': np.zeros(2, dtype=[('a', 'f8'), ('b', 'i4')])}


def _subarray_dtype() -> Any:
    return {'x': np.zeros(2, dtype=[('a', 'f8', (3,))])}


def _poison_statistics() -> Any:
    """Extra statistics names first, then getattr of dunder names (old stand-in hole)."""
    buffer = crafted_history_buffer(hb_state(statistics_methods={
        '__init__': stat('mean'), '__class__': stat('mean'), '__subclasses__': stat('mean'),
        '__dict__': stat('mean')}))
    return {'log_scalars': {'loss': buffer},
            'later': [stat('__init__'), stat('__class__'), stat('__subclasses__'),
                      stat('__dict__')]}


def _break_mean() -> Any:
    """statistics_methods replacing 'mean' for every HistoryBuffer in the process."""
    return {'log_scalars': {'loss': crafted_history_buffer(
        hb_state(statistics_methods={'mean': stat('max')}))}}


# Files that could corrupt memory (forged field layouts over raw bytes): one process each.
CRASH_CASES = {
    'object field over raw bytes': (_object_field_over_bytes, "numpy dtype 'O8'"),
    'int field at an offset': (_field_at_offset, 'fields, subarrays, offsets'),
    'out-of-bounds field offset': (_out_of_bounds_offset, 'fields, subarrays, offsets'),
}
# Files that could change process state or smuggle objects: one process for all,
# which then checks that the state is unchanged.
STATE_CASES = {
    'object dtype array': (_object_array, "numpy dtype 'O8'"),
    'object array in a HistoryBuffer': (_object_scalar_in_buffer, "numpy dtype 'O8'"),
    'structured dtype': (_structured_array, "numpy dtype 'V12'"),
    'subarray dtype': (_subarray_dtype, "numpy dtype 'V24'"),
    'HistoryBuffer statistics poisoning': (_poison_statistics, 'statistics_methods'),
    'HistoryBuffer mean replaced': (_break_mean, 'statistics_methods'),
}


def _marker_payloads(marker: Path) -> Dict[str, Any]:
    import builtins
    import subprocess as sp
    touch = f'open({str(marker)!r}, "w").write("pwned")'
    return {
        'os.system reduce': (Reduce(os.system, (f'touch {marker}',)), 'posix.system'),
        'eval reduce': (Reduce(builtins.eval, (touch,)), 'eval'),
        'exec reduce': (Reduce(builtins.exec, (touch,)), 'exec'),
        'subprocess reduce': (Reduce(sp.call, (['touch', str(marker)],)), '.call,'),
        'getattr of a dunder': (stat('__init__'), 'only HistoryBuffer statistics'),
        'getattr chain mean.__globals__': (
            Reduce(getattr, (stat('mean'), '__globals__')), 'only HistoryBuffer statistics'),
        'getattr chain via statistics': (
            {'g': Reduce(getattr, (Reduce(getattr, (stat('mean'), '__globals__')), 'get'))},
            'only HistoryBuffer statistics'),
        'getattr of numpy': (Reduce(getattr, (np.ndarray, 'tofile')),
                             'only HistoryBuffer statistics'),
        'HistoryBuffer with arguments': (Reduce(HistoryBuffer, ([1.0], [1], 5)),
                                         'HistoryBuffer created with arguments'),
        'HistoryBuffer without state': (crafted_history_buffer(None),
                                        'HistoryBuffer without its state'),
        'HistoryBuffer with extra state': (crafted_history_buffer(hb_state(evil=1)),
                                           'HistoryBuffer state with keys'),
        'HistoryBuffer huge max_length type': (
            crafted_history_buffer(hb_state(max_length=True)), 'max_length'),
        'array data as a list': (crafted_array(np.dtype('f8'), (1,), [1.0]),
                                 'only raw bytes'),
        'array shorter than its shape': (crafted_array(np.dtype('f8'), (1 << 40,), b'C' * 8),
                                         'needs'),
        'scalar of object dtype': (Reduce(np.core.multiarray.scalar,
                                          (np.dtype('O'), 'x')), "numpy dtype 'O8'"),
        'numpy dtype class': (np.dtypes.Float64DType, 'numpy.dtypes.Float64DType'),
        'numpy fromfile': (Reduce(np.fromfile, ('/etc/passwd',)), 'numpy.fromfile'),
    }


def _raw_payloads(marker: Path) -> Dict[str, Any]:
    cmd = _unicode(f'touch {marker}')
    return {
        # protocol 0: MARK, the command, INST os.system, STOP
        'INST os.system': (b'(' + cmd + b'ios\nsystem\n.', 'INST'),
        'INST builtins.eval': (b'(' + _unicode(f'open({str(marker)!r}, "w")') +
                               b'ibuiltins\neval\n.', 'INST'),
        # protocol 4: module and name from the stack, then REDUCE
        'STACK_GLOBAL os.system': (b'\x80\x04' + _unicode('os') + _unicode('system') +
                                   b'\x93' + cmd + b'\x85R.', 'STACK_GLOBAL'),
        'OBJ opcode': (b'(cos\nsystem\n' + cmd + b'o.', 'os.system'),
        'protocol 0 string': (b"(S'ls'\nios\nsystem\n.", 'STRING'),
    }


RUNNER_LIKE = {
    'meta': {'epoch': 1, 'iter': 2, 'seed': np.int64(3)},
    'message_hub': {'log_scalars': {}, 'runtime_info': {'lr': np.float32(0.5)},
                    'resumed_keys': {}},
    'state_dict': {'w': torch.ones(2)},
}

PROBE = r'''
import copy, json, os, sys, traceback
import numpy as np, torch

def safe_globals():
    # torch registers its own entries (nested tensors, meshes) as its modules
    # load; everything else in the list is what other code (mmparc) added.
    names = [g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
             for g in getattr(torch.serialization, 'get_safe_globals', list)()]
    return sorted(n for n in names if not n.startswith('torch.'))

globals_before_import = safe_globals()
import mmparc
from mmparc.checkpoint import load_checkpoint_file
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint
HistoryBuffer()  # mmengine's default statistics, as in any Runner process
stats_before = dict(HistoryBuffer._statistics_methods)
globals_after_import = safe_globals()

def use(obj, seen=None):
    """What user code does with a loaded checkpoint."""
    copy.deepcopy(obj)
    repr(obj)
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, np.ndarray):
            value.tolist()
            for name in (value.dtype.names or ()):
                value[name].tolist()
        elif isinstance(value, HistoryBuffer):
            for name in ('min', 'max', 'current', 'mean'):
                value.statistics(name)
        elif callable(value):
            value

loaders = {
    # weights_only=True as torch >= 2.6 defaults to (torch 2.1 defaults to False:
    # plain torch.load there is plain pickle, which mmparc does not change)
    'torch.load': lambda p: torch.load(p, map_location='cpu', weights_only=True),
    'mmparc': lambda p: load_checkpoint_file(p),
    'mmengine': lambda p: _load_checkpoint(p, map_location='cpu', logger='silent'),
}
report = {}
for path in sys.argv[2:]:
    for how, load in loaders.items():
        try:
            obj = load(path)
        except Exception as err:
            report[f'{path}|{how}'] = ['refused', type(err).__name__, str(err)]
        else:
            use(obj)
            report[f'{path}|{how}'] = ['loaded', '', '']
buffer = HistoryBuffer()
buffer.update(1.0)
buffer.update(3.0)
state = {
    'report': report,
    'stats_unchanged': dict(HistoryBuffer._statistics_methods) == stats_before,
    'mean_works': float(buffer.statistics('mean')) == 2.0,
    'import_left_globals': globals_after_import == globals_before_import,
    'globals_unchanged': safe_globals() == globals_before_import,
}
genuine = sys.argv[1]
try:
    torch.load(genuine, weights_only=True)
    state['plain_refuses_numpy'] = False
except Exception:
    state['plain_refuses_numpy'] = True
loaded = load_checkpoint_file(genuine)
state['genuine_loads'] = (type(loaded['meta']['seed']) is np.int64
                          and float(loaded['message_hub']['runtime_info']['lr']) == 0.5)
print('REPORT ' + json.dumps(state))
'''


def probe(paths: List[Path], tmp_path: Path) -> Dict[str, Any]:
    genuine = tmp_path / 'genuine.pth'
    if not genuine.exists():
        torch.save(RUNNER_LIKE, genuine)
    env = _env()
    proc = subprocess.run([sys.executable, '-c', PROBE, str(genuine), *map(str, paths)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode >= 0, (f'killed by signal {-proc.returncode} loading '
                                  f'{[p.name for p in paths]}:\n{proc.stderr[-3000:]}')
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith('REPORT '))
    state = json.loads(line[len('REPORT '):])
    assert state['stats_unchanged'], 'HistoryBuffer._statistics_methods was changed'
    assert state['mean_works']
    assert state['import_left_globals'], 'import mmparc changed torch.serialization safe globals'
    assert state['globals_unchanged'], 'loading changed torch.serialization safe globals'
    assert state['plain_refuses_numpy'], 'plain torch.load accepted numpy after import mmparc'
    assert state['genuine_loads']
    return state['report']


def check_refused(report: Dict[str, Any], path: Path, fragment: str) -> None:
    for how in ('torch.load', 'mmparc', 'mmengine'):
        outcome, kind, message = report[f'{path}|{how}']
        assert outcome == 'refused', f'{path.name} loaded through {how}'
        if how != 'torch.load':
            assert kind == 'CheckpointError', (how, kind, message)
            assert '\n' not in message and message.startswith(str(path)), message
            assert fragment in message, (fragment, message)


@pytest.mark.parametrize('case', sorted(CRASH_CASES))
def test_memory_cases_refused_each_in_own_process(case, tmp_path):
    build, fragment = CRASH_CASES[case]
    path = tmp_path / 'crafted.pth'
    torch.save(build(), path)
    check_refused(probe([path], tmp_path), path, fragment)


def test_state_and_dtype_cases_refused(tmp_path):
    cases = {}
    for i, (name, (build, fragment)) in enumerate(sorted(STATE_CASES.items())):
        path = tmp_path / f'crafted{i}.pth'
        torch.save(build(), path)
        cases[name] = (path, fragment)
    report = probe([p for p, _ in cases.values()], tmp_path)
    for name, (path, fragment) in cases.items():
        try:
            check_refused(report, path, fragment)
        except AssertionError as err:
            raise AssertionError(f'{name}: {err}') from None


def test_code_execution_payloads_refused(tmp_path):
    marker = tmp_path / 'marker'
    cases = {}
    for i, (name, (payload, fragment)) in enumerate(_marker_payloads(marker).items()):
        path = tmp_path / f'payload{i}.pth'
        torch.save({'state_dict': {}, 'x': payload}, path)
        cases[name] = (path, fragment)
    for i, (name, (data, fragment)) in enumerate(_raw_payloads(marker).items()):
        cases[name] = (save_pickle_bytes(tmp_path / f'raw{i}.pth', data), fragment)
    report = probe([p for p, _ in cases.values()], tmp_path)
    assert not marker.exists(), 'a payload ran'
    for name, (path, fragment) in cases.items():
        try:
            check_refused(report, path, fragment)
        except AssertionError as err:
            raise AssertionError(f'{name}: {err}') from None


RESUME = r'''
import sys
import torch, torch.nn as nn
import mmparc
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.logging import HistoryBuffer
HistoryBuffer()
before = dict(HistoryBuffer._statistics_methods)

class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
    def forward(self, inputs, labels, mode='tensor'):
        return {'loss': (self.linear(inputs) - labels).pow(2).mean()}

data = [dict(inputs=torch.randn(2), labels=torch.randn(1)) for _ in range(4)]
for i, path in enumerate(sys.argv[1:]):
    runner = Runner(model=Toy(), work_dir=f'work{i}', experiment_name=f'r{i}',
                    train_dataloader=dict(dataset=data, batch_size=2,
                                          sampler=dict(type='DefaultSampler', shuffle=False),
                                          collate_fn=dict(type='default_collate')),
                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
                    train_cfg=dict(by_epoch=True, max_epochs=1), resume=True, load_from=path,
                    default_hooks=dict(checkpoint=None, logger=None), log_level='ERROR')
    try:
        runner.train()
    except Exception as err:
        print('REFUSED', type(err).__name__, str(err).splitlines()[0])
    else:
        print('RESUMED', path)
print('STATS', dict(HistoryBuffer._statistics_methods) == before)
'''


def test_runner_resume_refuses_crafted_and_empty_checkpoints(tmp_path):
    """``--resume`` on the segfaulting file, the poisoning file and a 0-byte file."""
    paths = []
    for name, build in (('forged.pth', _object_field_over_bytes),
                        ('poison.pth', _poison_statistics)):
        torch.save(build(), tmp_path / name)
        paths.append(tmp_path / name)
    (tmp_path / 'empty.pth').write_bytes(b'')
    paths.append(tmp_path / 'empty.pth')
    env = _env()
    proc = subprocess.run([sys.executable, '-c', RESUME, *map(str, paths)], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f'returncode {proc.returncode}:\n{proc.stderr[-3000:]}'
    lines = [l for l in proc.stdout.splitlines() if l.startswith(('REFUSED', 'RESUMED'))]
    assert len(lines) == 3 and all(l.startswith('REFUSED CheckpointError') for l in lines), \
        proc.stdout[-2000:]
    assert "numpy dtype 'O8'" in lines[0]
    assert 'statistics_methods' in lines[1]
    assert 'empty file (0 bytes)' in lines[2]
    assert 'STATS True' in proc.stdout


# ---------------------------------------------------- the scope, in process
def test_import_adds_nothing_to_torch_allow_list():
    code = ('import torch, mmengine.runner, mmengine.logging\n'
            'get = getattr(torch.serialization, "get_safe_globals", list)\n'
            'before = get()\n'
            'import mmparc\n'
            'after = get()\n'
            'added = [g for g in after if g not in before]\n'
            'assert all(getattr(g, "__module__", "").startswith("torch.") for g in added), added\n'
            'assert all(g in after for g in before)\n'
            'print("same")')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=_env())
    assert proc.stdout.strip() == 'same', proc.stderr[-2000:]


#: torch >= 2.4 has a user allow-list (add_safe_globals); torch 2.1 has none to disturb.
HAS_SAFE_GLOBALS = hasattr(torch.serialization, 'add_safe_globals')
needs_safe_globals = pytest.mark.skipif(not HAS_SAFE_GLOBALS,
                                        reason='this torch has no add_safe_globals')


@needs_safe_globals
def test_other_codes_safe_globals_neither_break_nor_widen_loading(tmp_path):
    """``safe_globals`` blocks, ``clear_safe_globals`` and a user allow-listing the
    real ``getattr`` change nothing about what mmparc loads, and are restored."""
    import pickle

    from mmparc.checkpoint import CheckpointError, load_checkpoint_file
    genuine = tmp_path / 'genuine.pth'
    torch.save(RUNNER_LIKE, genuine)
    sneaky = tmp_path / 'sneaky.pth'
    torch.save({'x': stat('__init__')}, sneaky)

    class Mine:
        pass

    with torch.serialization.safe_globals([Mine]):
        assert load_checkpoint_file(genuine)['meta']['seed'] == 3
        assert Mine in torch.serialization.get_safe_globals()
    assert load_checkpoint_file(genuine)['meta']['seed'] == 3
    torch.serialization.clear_safe_globals()
    assert load_checkpoint_file(genuine)['meta']['seed'] == 3
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([getattr, HistoryBuffer])
    try:
        with pytest.raises(CheckpointError, match='only HistoryBuffer statistics'):
            load_checkpoint_file(sneaky)
        assert getattr in torch.serialization.get_safe_globals()
        # plain torch.load is exactly torch's business: the user's own entries apply
        with pytest.raises(pickle.UnpicklingError):
            torch.load(genuine, weights_only=True)
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


def test_loaded_history_buffer_is_genuine(tmp_path):
    from mmengine.logging import MessageHub

    from mmparc.checkpoint import load_checkpoint_file
    hub = MessageHub('crafted_test_hub')
    for value in (1.0, 2.0, 6.0):
        hub.update_scalar('train/loss', value)
    hub.update_info('arr', np.arange(6, dtype=np.int16).reshape(2, 3).T)
    hub.update_info('flag', np.bool_(True))
    path = tmp_path / 'hub.pth'
    torch.save({'message_hub': hub.state_dict()}, path)
    loaded = load_checkpoint_file(path)['message_hub']
    buffer = loaded['log_scalars']['train/loss']
    assert type(buffer) is HistoryBuffer
    assert buffer.statistics('mean') == 3.0 and buffer.max() == 6.0
    assert type(buffer._log_history) is np.ndarray and buffer._log_history.dtype == np.float64
    arr = loaded['runtime_info']['arr']
    np.testing.assert_array_equal(arr, np.arange(6, dtype=np.int16).reshape(2, 3).T)
    assert arr.flags.writeable and loaded['runtime_info']['flag'] is not True
    assert bool(loaded['runtime_info']['flag']) is True
    resumed = MessageHub('crafted_test_resumed')
    resumed.load_state_dict(copy.deepcopy(loaded))
    assert resumed.get_scalar('train/loss').current() == 6.0


# ----------------------------------------------- every entry point, bounded
#: The toy run of ENTRY, also run here to write the genuine checkpoint.
TOY_RUN = r'''
import torch, torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from mmengine.runner import Runner


@MODELS.register_module(name='CraftedToy', force=True)
class CraftedToy(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs)
        return {'loss': (out - labels).pow(2).mean()} if mode == 'loss' else out


def toy_runner(work_dir, max_epochs=3, **extra):
    gen = torch.Generator().manual_seed(0)
    data = [dict(inputs=torch.randn(2, generator=gen), labels=torch.randn(1, generator=gen))
            for _ in range(4)]
    return Runner(model=CraftedToy(), work_dir=str(work_dir), experiment_name='toy',
                  train_dataloader=dict(dataset=data, batch_size=2,
                                        sampler=dict(type='DefaultSampler', shuffle=False),
                                        collate_fn=dict(type='default_collate')),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
                  param_scheduler=dict(type='MultiStepLR', milestones=[2], by_epoch=True),
                  train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
                  default_hooks=dict(logger=None, checkpoint=dict(type='CheckpointHook',
                                                                  interval=1)),
                  randomness=dict(seed=0), log_level='ERROR', **extra)
'''

ENTRY = TOY_RUN + r'''
import json, os, resource, shutil, sys, time
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
import mmparc
from mmengine.hooks import Hook
from mmengine.infer import BaseInferencer
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import _load_checkpoint
from mmparc.checkpoint import load_checkpoint_file

marker = sys.argv[2]
torch.hub.set_dir(os.path.abspath('hub'))
served = {}
torch.hub.download_url_to_file = lambda url, dst, hash_prefix=None, progress=True: \
    shutil.copyfile(served[url], dst)


class Net(BaseModule):
    def __init__(self, checkpoint):
        super().__init__(init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
        self.linear = nn.Linear(2, 1)


class Inferencer(BaseInferencer):
    def _init_pipeline(self, cfg):
        return lambda x: x

    def visualize(self, *args, **kwargs):
        return None

    def postprocess(self, *args, **kwargs):
        return None


def resume(path, i):
    runner = toy_runner(f'resume{i}', load_from=path, resume=True)
    runner.train()
    return f'epoch {runner.epoch}'


class LoadedProbe(Hook):
    """After Runner.train built the optimizer and loaded the file: the weight as loaded,
    and whether it is the very parameter the optimizer steps."""

    def before_train(self, runner):
        self.loaded = runner.model.linear.weight.detach().clone()
        params = [p for g in runner.optim_wrapper.optimizer.param_groups for p in g['params']]
        self.stepped = any(p is runner.model.linear.weight for p in params)


def load_from(path, i):
    probe = LoadedProbe()
    runner = toy_runner(f'load{i}', load_from=path, custom_hooks=[probe])
    runner.train()
    changed = not torch.equal(probe.loaded, runner.model.linear.weight.detach())
    return 'trained' if probe.stepped and changed else 'frozen'


def http(path, i):
    url = f'http://example.invalid/ckpt/{i}_{os.path.basename(path)}'
    served[url] = path
    Net(url).init_weights()
    return 'loaded'


ENTRIES = {
    'mmparc': lambda p, i: type(load_checkpoint_file(p)).__name__,
    'mmengine': lambda p, i: type(_load_checkpoint(p, map_location='cpu')).__name__,
    'resume': resume, 'load_from': load_from,
    'pretrained': lambda p, i: Net(p).init_weights() or 'loaded',
    'http': http,
    'inferencer': lambda p, i: type(Inferencer(model=None, weights=p).model).__name__,
}
report = []
for i, item in enumerate(json.loads(sys.argv[3])):
    path, entries = item
    for entry in entries:
        start = time.time()
        try:
            outcome = ['ok', ENTRIES[entry](path, i)]
        except Exception as err:
            text = str(err) if type(err).__name__ == 'CheckpointError' else ''
            outcome = ['refused', type(err).__name__, text]
        report.append([path, entry, outcome, time.time() - start, os.path.exists(marker)])
# Peak resident memory of this process image: VmHWM starts anew at exec, while
# ru_maxrss carries the parent's peak across it (a pytest worker's, after a Runner).
rss = next(int(line.split()[1]) for line in open('/proc/self/status')
           if line.startswith('VmHWM:'))
print('ENTRIES ' + json.dumps({'report': report, 'max_rss_kb': rss}))
'''

#: Address space the subprocess may take for data beyond what importing torch
#: and mmengine takes (about 0.9 GB): what "a few hundred MB" leaves room for.
DATA_LIMIT = 2 << 30
SECONDS_PER_LOAD = 10


@pytest.fixture(scope='module')
def genuine_runner_checkpoint(tmp_path_factory) -> Path:
    """Epoch 1 of 3 of the toy run: meta, message hub, SGD momentum, MultiStepLR."""
    work = tmp_path_factory.mktemp('genuine')
    namespace: Dict[str, Any] = {}
    exec(TOY_RUN, namespace)  # noqa: S102  (our own source: the same run as ENTRY's)
    runner = namespace['toy_runner'](work, max_epochs=1)
    runner.train()
    return work / 'epoch_1.pth'


def _variant(genuine: Path, path: Path, change) -> Path:
    from mmparc.checkpoint import load_checkpoint_file
    checkpoint = load_checkpoint_file(genuine)
    change(checkpoint)
    torch.save(checkpoint, path)
    return path


def run_entries(cases: Dict[str, tuple], tmp_path: Path, marker: Path) -> Dict[tuple, list]:
    """Run each case's file through its entry points in one limited subprocess;
    returns (path, entry) -> [outcome, seconds, whether the marker existed after]."""
    items = [[str(path), list(expected)] for path, expected in cases.values()]
    proc = subprocess.run([sys.executable, '-c', ENTRY, str(DATA_LIMIT), str(marker),
                           json.dumps(items)], capture_output=True, text=True, cwd=tmp_path,
                          env=_env(), timeout=600)
    assert proc.returncode >= 0, f'killed by signal {-proc.returncode}:\n{proc.stderr[-3000:]}'
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith('ENTRIES '))
    result = json.loads(line[len('ENTRIES '):])
    assert result['max_rss_kb'] * 1024 < DATA_LIMIT
    return {(path, entry): [outcome, seconds, marked]
            for path, entry, outcome, seconds, marked in result['report']}


def check_entries(cases: Dict[str, tuple], outcomes: Dict[tuple, list], marker: Path) -> None:
    """Assert each case's expectations.

    ``cases``: name -> (path, {entry: expected}) where expected is ``'ok'``,
    ``'ok:<result>'``, or ``'refused'``/``'refused:<fragment>'`` (a
    CheckpointError naming the file, one line, containing the fragment), or
    ``'failed'`` (any exception; for the inferencer on a dropped config).
    """
    assert not marker.exists(), 'a payload ran'
    problems = []
    for name, (path, expected) in cases.items():
        for entry, want in expected.items():
            outcome, seconds, marked = outcomes[(str(path), entry)]
            where = f'{name} through {entry}: {outcome}'
            if marked:
                problems.append(f'{where}: the marker was written')
            if seconds > SECONDS_PER_LOAD:
                problems.append(f'{where}: took {seconds:.1f}s')
            kind, _, fragment = want.partition(':')
            if kind == 'ok' and (outcome[0] != 'ok' or fragment not in outcome[1]):
                problems.append(f'{where}: expected {want}')
            elif kind == 'failed' and outcome[0] != 'refused':
                problems.append(f'{where}: expected a failure')
            elif kind == 'refused' and not (
                    outcome[0] == 'refused' and outcome[1] == 'CheckpointError'
                    and '\n' not in outcome[2] and fragment in outcome[2]
                    # the file (for http://, its copy in the hub cache) comes first
                    and outcome[2].split(': ')[0].endswith(path.name)):
                problems.append(f'{where}: expected a one-line CheckpointError naming the '
                                f'file and saying {fragment!r}')
    assert not problems, '\n'.join(problems)


#: The ways users reach a checkpoint that mmparc's loader must guard.
LOADING_PATHS = ('resume', 'load_from', 'pretrained', 'http')


def _payload_cases(tmp_path: Path, marker: Path, genuine: Path) -> Dict[str, tuple]:
    """Issue-19 item 4: each payload through Runner resume/load_from, Pretrained and http."""
    cases = {}
    for i, (name, (payload, fragment)) in enumerate(_marker_payloads(marker).items()):
        path = tmp_path / f'payload{i}.pth'
        torch.save({'state_dict': {}, 'x': payload}, path)
        cases[name] = (path, {entry: f'refused:{fragment}' for entry in LOADING_PATHS})
    for i, (name, (data, fragment)) in enumerate(_raw_payloads(marker).items()):
        path = save_pickle_bytes(tmp_path / f'raw{i}.pth', data)
        cases[name] = (path, {entry: f'refused:{fragment}' for entry in LOADING_PATHS})
    return cases


def _payload(marker: Path) -> str:
    return f"__import__('os').system('touch {marker}')\n"


def _config_cases(tmp_path: Path, marker: Path, genuine: Path) -> Dict[str, tuple]:
    """``meta['config']`` (Runner.resume) and the message hub's ``cfg`` / ``meta['cfg']``
    (BaseInferencer with ``model=None``) keep only literal assignments."""
    base = tmp_path / 'base_config.py'
    base.write_text(_payload(marker))

    def meta_config(c):
        c['meta']['config'] = _payload(marker) + 'gpu_ids = []\n'

    def hub_cfg(c):
        c['message_hub']['runtime_info']['cfg'] = _payload(marker) + \
            "model = dict(type='CraftedToy')\n"

    def meta_cfg(c):
        c['message_hub']['runtime_info'].pop('cfg', None)
        c['meta']['cfg'] = "model = dict(type='CraftedToy')\n" + _payload(marker)

    def base_file(c):
        c['message_hub']['runtime_info']['cfg'] = \
            f"_base_ = [{str(base)!r}]\nmodel = dict(type='CraftedToy')\n"

    def type_call(c):
        c['message_hub']['runtime_info']['cfg'] = \
            f"model = dict(type='subprocess.run', args=['touch', {str(marker)!r}])\n"

    def lambda_call(c):
        c['meta']['config'] = f"gpu_ids = (lambda: __import__('os').system('touch {marker}'))()"

    build = {'meta config': (meta_config, {'resume': 'ok:epoch 3', 'load_from': 'ok',
                                           'mmengine': 'ok'}),
             'hub cfg': (hub_cfg, {'inferencer': 'ok:CraftedToy', 'resume': 'ok:epoch 3'}),
             'meta cfg': (meta_cfg, {'inferencer': 'ok:CraftedToy'}),
             '_base_ file': (base_file, {'inferencer': 'ok:CraftedToy'}),
             'type is a dotted path': (type_call, {'inferencer': 'failed'}),
             'call in the value': (lambda_call, {'resume': 'ok:epoch 3'})}
    cases = {name: (_variant(genuine, tmp_path / f'config{i}.pth', change), expected)
             for i, (name, (change, expected)) in enumerate(build.items())}
    return cases


def _shared_tuple(levels: int = 40) -> tuple:
    """A tuple whose repr doubles with each level (2**40 leaves), pickled in a few KB."""
    value: Any = ()
    for _ in range(levels):
        value = (value, value)
    return value


def _repr_cases(tmp_path: Path, marker: Path, genuine: Path) -> Dict[str, tuple]:
    """Content reaching a message (stand-ins, meta['seed']) is described, not repr'd."""
    bomb = _shared_tuple()
    from numpy.core.multiarray import scalar
    payloads = {
        'dtype argument': (Reduce(np.dtype, (bomb, False, True)), 'numpy dtype'),
        'array shape': (crafted_array(np.dtype('f8'), bomb, b''), 'numpy array shape'),
        'scalar bytes': (Reduce(scalar, (np.dtype('f8'), bomb)), 'numpy scalar'),
        'getattr name': (Reduce(getattr, (HistoryBuffer, bomb)), 'getattr'),
        'HistoryBuffer state': (crafted_history_buffer(bomb), 'HistoryBuffer state'),
    }
    cases = {}
    for i, (name, (payload, fragment)) in enumerate(payloads.items()):
        path = tmp_path / f'bomb{i}.pth'
        torch.save({'state_dict': {}, 'x': payload}, path)
        cases[name] = (path, {'mmparc': f'refused:{fragment}', 'resume': 'refused'})

    def seed(c):
        c['meta']['seed'] = bomb

    cases["meta['seed']"] = (_variant(genuine, tmp_path / 'seed.pth', seed),
                             {'resume': "refused:meta['seed']", 'mmparc': 'refused'})
    return cases


def _inflated_record(path: Path, declared: int) -> Path:
    """A checkpoint whose tensor record claims ``declared`` bytes once decompressed."""
    torch.save({'w': torch.zeros(4)}, path)
    with zipfile.ZipFile(path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith('data/0'))
    # each central directory entry's uncompressed size (offset 24 of its header)
    position = data.find(b'PK\x01\x02')
    while position >= 0:
        length = struct.unpack('<H', data[position + 28:position + 30])[0]
        name = bytes(data[position + 46:position + 46 + length]).decode()
        if name == info.filename:
            data[position + 24:position + 28] = struct.pack('<I', declared)
        position = data.find(b'PK\x01\x02', position + 4)
    path.write_bytes(bytes(data))
    return path


def _short_record(path: Path) -> Path:
    """A storage of 16 bytes whose record holds 4."""
    torch.save({'w': torch.ones(4)}, path)
    with zipfile.ZipFile(path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content[:4] if name.endswith('data/0') else content)
    return path


def _many_records(path: Path, count: int) -> Path:
    torch.save({'w': torch.ones(1)}, path)
    with zipfile.ZipFile(path, 'a', zipfile.ZIP_STORED) as archive:
        prefix = archive.namelist()[0].split('/')[0]
        for i in range(count):
            archive.writestr(f'{prefix}/extra/{i}', b'')
    return path


def _size_cases(tmp_path: Path, marker: Path, genuine: Path) -> Dict[str, tuple]:
    from mmparc.checkpoint import MAX_RECORDS
    files = {
        'record inflating to 2 GB': (_inflated_record(tmp_path / 'inflate.pth', 2 << 30),
                                     'memory budget'),
        'bytearray(1.6e9)': (save_pickle_bytes(
            tmp_path / 'bytearray.pth', b'\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x60'
            b'\x85R.'), 'bytearray'),
        f'{MAX_RECORDS + 1} records': (_many_records(tmp_path / 'records.pth', MAX_RECORDS),
                                       'archive records'),
        'storage larger than its record': (_short_record(tmp_path / 'short.pth'),
                                           'larger than its record'),
        'Tensor.__new__(Tensor, 2**30)': (save_pickle_bytes(
            tmp_path / 'newobj.pth', b'\x80\x02ctorch\nTensor\nJ\x00\x00\x00\x40\x85\x81.'),
            'created with'),
        'UntypedStorage(2**40)': (tmp_path / 'storage.pth', 'may not make'),
        'tuples nested 200000 deep': (save_pickle_bytes(
            tmp_path / 'nested.pth', b'\x80\x02)' + b'\x85' * 200000 + b'.'), 'nested deeper'),
    }
    torch.save({'x': Reduce(torch.UntypedStorage, (1 << 40,))}, tmp_path / 'storage.pth')
    cases = {name: (path, {'mmparc': f'refused:{fragment}', 'load_from': 'refused'})
             for name, (path, fragment) in files.items()}
    return cases


def _training_cases(tmp_path: Path, marker: Path, genuine: Path) -> Dict[str, tuple]:
    """``_metadata`` flags never reach ``load_state_dict``; non-tensor weights are refused."""
    def assign(c):
        c['state_dict']._metadata = OrderedDict(
            [('', {'version': 1, 'assign_to_params_buffers': True}),
             ('linear', {'version': 1, 'assign_to_params_buffers': True})])

    def none_weight(c):
        c['state_dict']['linear.weight'] = None

    def numpy_weight(c):
        c['state_dict']['linear.weight'] = np.ones((1, 2), np.float32)

    build = {'assign_to_params_buffers': (assign, {'load_from': 'ok:trained',
                                                   'resume': 'ok:epoch 3'}),
             'None weight': (none_weight, {e: "refused:state_dict['linear.weight']"
                                           for e in ('load_from', 'pretrained', 'resume')}),
             'numpy weight': (numpy_weight, {e: "refused:state_dict['linear.weight']"
                                             for e in ('load_from', 'pretrained')})}
    cases = {name: (_variant(genuine, tmp_path / f'train{i}.pth', change), expected)
             for i, (name, (change, expected)) in enumerate(build.items())}
    return cases


def _resume_cases(tmp_path: Path, marker: Path, genuine: Path) -> Dict[str, tuple]:
    def meta(field, value):
        return lambda c: c['meta'].__setitem__(field, value)

    def momentum(value):
        def change(c):
            state = next(iter(c['optimizer']['state'].values()))
            state['momentum_buffer'] = value
        return change

    build = {
        'iter 10**18': (meta('iter', 10 ** 18), "meta['iter']"),
        'epoch as a string': (meta('epoch', '1'), "meta['epoch']"),
        'epoch past max_epochs': (meta('epoch', 10), 'max_epochs'),
        'meta as a list': (lambda c: c.__setitem__('meta', [1, 2]), 'meta is'),
        'shortened param_schedulers': (lambda c: c.__setitem__('param_schedulers', []),
                                       'param_schedulers holds 0'),
        'scheduler of another kind': (lambda c: c['param_schedulers'][0].__setitem__(
            'by_epoch', False), 'by_epoch'),
        'momentum of another shape': (momentum(torch.zeros(3)), 'has shape (3,)'),
        'NaN momentum': (momentum(torch.full((1, 2), float('nan'))), 'not finite'),
        'lr 1e30': (lambda c: c['optimizer']['param_groups'][0].__setitem__('lr', 1e30), 'lr'),
        'two param groups': (lambda c: c['optimizer']['param_groups'].append(
            dict(c['optimizer']['param_groups'][0])), '2 param groups'),
    }
    cases = {name: (_variant(genuine, tmp_path / f'resume{i}.pth', change),
                    {'resume': f'refused:{fragment}'})
             for i, (name, (change, fragment)) in enumerate(build.items())}
    cases['genuine'] = (genuine, {'resume': 'ok:epoch 3'})
    return cases


#: Each group's cases, built into one folder and run in one subprocess.
ENTRY_GROUPS = {'payloads': _payload_cases, 'config': _config_cases, 'repr': _repr_cases,
                'size': _size_cases, 'training': _training_cases, 'resume': _resume_cases}


@pytest.fixture(scope='module')
def entry_runs(tmp_path_factory, genuine_runner_checkpoint):
    """(group -> cases, outcomes, marker): every group's files through their entry points,
    in one subprocess under a memory limit (one process start instead of six)."""
    folder = tmp_path_factory.mktemp('entries')
    marker = folder / 'marker'
    groups = {}
    for name, build in ENTRY_GROUPS.items():
        (folder / name).mkdir()
        groups[name] = build(folder / name, marker, genuine_runner_checkpoint)
    every = {f'{g}/{name}': case for g, cases in groups.items() for name, case in cases.items()}
    return groups, run_entries(every, folder, marker), marker


def test_code_payloads_through_every_entry_point(entry_runs):
    """Issue-19 item 4: each payload through Runner resume/load_from, Pretrained and http."""
    groups, outcomes, marker = entry_runs
    check_entries(groups['payloads'], outcomes, marker)


def test_config_text_never_runs(entry_runs):
    """``meta['config']`` (Runner.resume) and the message hub's ``cfg`` / ``meta['cfg']``
    (BaseInferencer with ``model=None``) keep only literal assignments."""
    groups, outcomes, marker = entry_runs
    check_entries(groups['config'], outcomes, marker)


def test_exponential_repr_is_never_built(entry_runs):
    """Content reaching a message (stand-ins, meta['seed']) is described, not repr'd."""
    groups, outcomes, marker = entry_runs
    for path, _ in groups['repr'].values():
        assert path.stat().st_size < 64 << 10
    check_entries(groups['repr'], outcomes, marker)


def test_sizes_beyond_the_budget_are_refused_before_they_are_built(entry_runs):
    groups, outcomes, marker = entry_runs
    check_entries(groups['size'], outcomes, marker)


def test_content_that_would_change_training(entry_runs):
    """``_metadata`` flags never reach ``load_state_dict``; non-tensor weights are refused."""
    groups, outcomes, marker = entry_runs
    check_entries(groups['training'], outcomes, marker)


def test_resume_checks_the_file_against_the_run(entry_runs):
    """Meta, optimizer and scheduler state that does not fit the resuming run is refused
    before any of it is applied; the genuine file resumes."""
    groups, outcomes, marker = entry_runs
    check_entries(groups['resume'], outcomes, marker)


# ------------------------------------------------- the scope is this thread's
def test_a_load_leaves_other_threads_and_registrations_alone(tmp_path, monkeypatch):
    """While one thread is inside mmparc's loader, another thread's plain
    ``torch.load`` of a Runner checkpoint is refused as without mmparc, its
    ``add_safe_globals`` entries stay visible, and its own mmparc load of
    another file (even an http:// one whose download hangs) is not blocked."""
    import threading

    from mmparc.checkpoint import load_checkpoint_file, standins
    genuine = tmp_path / 'genuine.pth'
    torch.save(RUNNER_LIKE, genuine)
    inside, release = threading.Event(), threading.Event()
    real_build = standins._HistoryBuffer._build

    def slow_build(self, state):
        inside.set()
        assert release.wait(30)
        return real_build(self, state)

    hub = tmp_path / 'hub.pth'
    torch.save({'message_hub': {'log_scalars': {'loss': crafted_history_buffer(hb_state())}}},
               hub)
    monkeypatch.setattr(standins._HistoryBuffer, '_build', slow_build)
    errors: List[BaseException] = []

    def load_in_thread():
        try:
            load_checkpoint_file(hub)
        except BaseException as err:  # noqa: BLE001  (reported below)
            errors.append(err)

    class Mine:
        pass

    before = torch.serialization.get_safe_globals() if HAS_SAFE_GLOBALS else []
    worker = threading.Thread(target=load_in_thread)
    worker.start()
    try:
        assert inside.wait(30)
        if HAS_SAFE_GLOBALS:
            torch.serialization.add_safe_globals([Mine])
            assert Mine in torch.serialization.get_safe_globals()
        with pytest.raises(Exception):
            torch.load(genuine, weights_only=True)
        monkeypatch.setattr(standins._HistoryBuffer, '_build', real_build)
        assert load_checkpoint_file(genuine)['meta']['seed'] == 3  # not blocked
    finally:
        release.set()
        worker.join(30)
        if HAS_SAFE_GLOBALS:
            torch.serialization.clear_safe_globals()
            torch.serialization.add_safe_globals(before)
    assert not errors, errors


def test_http_download_holds_no_lock(tmp_path, monkeypatch):
    import threading

    from mmengine.runner.checkpoint import _load_checkpoint

    from mmparc.checkpoint import load_checkpoint_file
    genuine = tmp_path / 'genuine.pth'
    torch.save(RUNNER_LIKE, genuine)
    downloading, release = threading.Event(), threading.Event()

    def download(url, dst, hash_prefix=None, progress=True):
        downloading.set()
        assert release.wait(30)
        import shutil
        shutil.copyfile(genuine, dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    results: List[Any] = []
    worker = threading.Thread(target=lambda: results.append(
        _load_checkpoint('http://example.invalid/x/slow.pth', map_location='cpu')))
    worker.start()
    try:
        assert downloading.wait(30)
        assert load_checkpoint_file(genuine)['meta']['epoch'] == 1
    finally:
        release.set()
        worker.join(30)
    assert results and results[0]['meta']['iter'] == 2


@needs_safe_globals
def test_other_codes_torch_registrations_are_not_honoured(tmp_path):
    """``add_safe_globals`` of a torch class lets plain ``torch.load`` read it; mmparc's
    loader still allows only its own list."""
    from mmparc.checkpoint import CheckpointError, load_checkpoint_file
    path = tmp_path / 'module.pth'
    torch.save({'m': torch.nn.Linear(2, 1)}, path)
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([torch.nn.Linear])
    try:
        assert isinstance(torch.load(path, weights_only=True)['m'], torch.nn.Linear)
        with pytest.raises(CheckpointError, match='torch.nn.modules.linear.Linear'):
            load_checkpoint_file(path)
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)
