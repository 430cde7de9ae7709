"""Both ends of the supported torch range: each newer-torch feature mmparc uses
has a fallback, and each fallback is run here on whichever torch is installed
(the attribute taken away where the running torch has it).

* ``torch.compiler.is_compiling`` (torch 2.3+) -> ``torch._utils.is_compiling``
  (:func:`mmparc.ops.dispatch.compile_probe`);
* ``torch.is_autocast_enabled('cpu')`` / ``torch.get_autocast_dtype('cpu')``
  (torch 2.4+) -> ``torch.is_autocast_cpu_enabled()`` /
  ``torch.get_autocast_cpu_dtype()`` (:data:`mmparc.ops.dispatch.CPU_AUTOCAST`);
* ``torch.onnx.export(dynamo=...)`` -> no keyword
  (``tools/deployment/export_onnx.py``);
* float16 CPU autocast (torch 2.1: bfloat16 only) -> detected
  (:func:`mmparc.engine.cpu_autocast_supports`);
* the declared range (``setup.cfg``) and the set-up of both stacks
  (``tools/setup_env.sh``, ``requirements/``).

oneDNN's product (``mmparc/ops/matmul.py``) has its own fallback tests in
``tests/test_ops.py``.
"""
import configparser
import importlib.util
import inspect
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Dict

import pytest
import torch
from packaging.requirements import Requirement
from packaging.version import Version

from mmparc.engine import cpu_autocast_supports
from mmparc.ops import dispatch

ROOT = Path(__file__).resolve().parents[1]
TORCH = Version(torch.__version__.split('+')[0])


# ------------------------------------------------- torch.compile's probe
def test_compile_probe_prefers_torch_compiler():
    def own() -> bool:
        return False

    assert dispatch.compile_probe(SimpleNamespace(is_compiling=own)) is own
    assert dispatch.compile_probe(SimpleNamespace()) is torch._utils.is_compiling
    expected = getattr(torch.compiler, 'is_compiling', torch._utils.is_compiling)
    assert dispatch._is_compiling is expected


@pytest.mark.parametrize('fallback', [False, True], ids=['installed', 'pre-2.3-fallback'])
def test_compile_probe_sees_torch_compile(monkeypatch, fallback):
    """Under ``torch.compile`` ops see a recording (and take their reference
    formulas), with torch's own probe and with the one torch 2.1/2.2 have."""
    if fallback:
        monkeypatch.setattr(dispatch, '_is_compiling', dispatch.compile_probe(SimpleNamespace()))

    def shifted(x: torch.Tensor) -> torch.Tensor:
        return x + float(dispatch.is_recording())

    torch._dynamo.reset()
    x = torch.zeros(3)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch 2.13 deprecates the fallback, which still works
        assert torch.equal(shifted(x), x)
        assert torch.equal(torch.compile(shifted, backend='eager')(x), x + 1)
        assert not dispatch.is_recording()


# ------------------------------------------------------ CPU autocast's state
def _pre_2_4_is_autocast_enabled() -> bool:
    """torch 2.1's ``torch.is_autocast_enabled``: no device argument."""
    return torch.is_autocast_enabled()


@pytest.mark.parametrize('fallback', [False, True], ids=['installed', 'pre-2.4-fallback'])
def test_cpu_autocast_queries(fallback):
    """The state ops read (oneDNN's product stays off, inference casts the weight
    once), eagerly and inside ``torch.compile``, with either set of queries."""
    queries = (dispatch.cpu_autocast_queries(_pre_2_4_is_autocast_enabled) if fallback
               else dispatch.CPU_AUTOCAST)
    assert (queries.enabled is torch.is_autocast_cpu_enabled) == (
        fallback or TORCH < Version('2.4'))

    def state(x: torch.Tensor) -> torch.Tensor:
        on = queries.enabled()
        return x + (10.0 if on else 0.0) + (queries.dtype() == torch.bfloat16 and on)

    torch._dynamo.reset()
    compiled = torch.compile(state, backend='eager')
    x = torch.zeros(2)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch 2.13 deprecates the pre-2.4 queries
        for run in (state, compiled):
            assert torch.equal(run(x), x)
            with torch.autocast('cpu', dtype=torch.bfloat16):
                assert torch.equal(run(x), x + 11)


# ------------------------------------------------------------- the exporter
@pytest.fixture(scope='module')
def export_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        'export_onnx', ROOT / 'tools' / 'deployment' / 'export_onnx.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _legacy_export(model, args, f, export_params=True, verbose=False, training=None,
                   input_names=None, output_names=None, operator_export_type=None,
                   opset_version=None, do_constant_folding=True, dynamic_axes=None,
                   keep_initializers_as_inputs=None, custom_opsets=None,
                   export_modules_as_functions=False):
    """torch 2.1's ``torch.onnx.export`` signature (no ``dynamo``), run by the installed one."""
    real = _REAL_EXPORT
    options = {'dynamo': False} if 'dynamo' in inspect.signature(real).parameters else {}
    return real(model, args, f, export_params=export_params, verbose=verbose,
                input_names=input_names, output_names=output_names,
                opset_version=opset_version, do_constant_folding=do_constant_folding,
                dynamic_axes=dynamic_axes, **options)


_REAL_EXPORT = torch.onnx.export


def test_exporter_keyword_only_where_accepted(export_tool):
    installed = 'dynamo' in inspect.signature(torch.onnx.export).parameters
    assert export_tool.torchscript_exporter_options(torch.onnx.export) == (
        {'dynamo': False} if installed else {})
    assert export_tool.torchscript_exporter_options(_legacy_export) == {}


def test_export_through_an_exporter_without_dynamo(export_tool, monkeypatch, tmp_path):
    """A whole export with torch 2.1's exporter signature: a ``dynamo`` keyword
    would be a TypeError here."""
    onnx = pytest.importorskip('onnx')
    from mmparc.models import ParCNetV2
    calls = []

    def recording(*args, **kwargs):
        calls.append(sorted(kwargs))
        return _legacy_export(*args, **kwargs)

    recording.__signature__ = inspect.signature(_legacy_export)
    monkeypatch.setattr(torch.onnx, 'export', recording)
    torch.manual_seed(0)
    model = ParCNetV2(arch={'depths': [1, 1], 'dims': [8, 16]}, kernel_sizes=[7, 3],
                      out_indices=(0, 1), gap_before_final_norm=False).eval()
    out = tmp_path / 'tiny.onnx'
    export_tool.export(model, (32, 32), str(out))
    assert len(calls) == 1 and 'dynamo' not in calls[0]
    graph = onnx.load(str(out)).graph
    assert [o.name for o in graph.output] == ['stage0', 'stage1']


# ------------------------------------------------------------ CPU autocast
def test_cpu_autocast_support_is_detected():
    """bfloat16 on every supported torch; float16 from torch 2.13 but not on
    2.1 (which warns, turns autocast off and would compute in float32); an
    unsupported dtype never."""
    assert cpu_autocast_supports(torch.bfloat16)
    assert not cpu_autocast_supports(torch.float64)
    if TORCH < Version('2.2'):
        assert not cpu_autocast_supports(torch.float16)
    elif TORCH >= Version('2.13'):
        assert cpu_autocast_supports(torch.float16)
    # Asked inside an autocast block, the block stays as it was.
    x = torch.ones(2, 2)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert not cpu_autocast_supports(torch.float64)
        assert torch.mm(x, x).dtype == torch.bfloat16
    assert torch.mm(x, x).dtype == torch.float32


# ------------------------------------------- the declared range and the stacks
def _pins(name: str) -> Dict[str, Version]:
    pins = {}
    for line in (ROOT / 'requirements' / name).read_text().splitlines():
        line = line.split('#')[0].strip()
        if '==' in line:
            package, version = line.split('==')
            pins[package.strip()] = Version(version.strip())
    return pins


def test_setup_cfg_range_holds_both_tested_stacks():
    """``install_requires`` admits the torch and numpy of both CI stacks, and
    the mmcv and mmengine they are built with."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'setup.cfg')
    requires = {Requirement(line).name: Requirement(line).specifier
                for line in cfg['options']['install_requires'].strip().splitlines()}
    default, oldest = _pins('constraints.txt'), _pins('constraints-torch21.txt')
    assert oldest['torch'] < default['torch']
    for stack in (default, oldest):
        assert stack['torch'] in requires['torch'], stack['torch']
    assert oldest['numpy'] in requires['numpy']
    assert Version('2.1.0') in requires['mmcv']  # tools/setup_env.sh MMCV_VERSION
    env_pins = _pins('env.txt')
    assert env_pins['mmengine'] in requires['mmengine']
    setup_script = (ROOT / 'tools' / 'setup_env.sh').read_text()
    assert 'MMCV_VERSION=2.1.0\n' in setup_script


def test_setup_env_refuses_an_unknown_stack(tmp_path):
    proc = subprocess.run(['bash', str(ROOT / 'tools' / 'setup_env.sh'), 'newest'],
                          capture_output=True, text=True, timeout=60,
                          env={'PATH': '/usr/bin:/bin', 'MMPARC_CACHE': str(tmp_path / 'c'),
                               'MMPARC_VENV': str(tmp_path / 'venv')})
    assert proc.returncode == 2 and proc.stdout == ''
    assert proc.stderr.strip().splitlines() == [
        "[setup] unknown stack 'newest': use 'default' or 'oldest'"]
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(cpu_autocast_supports(torch.float16),
                    reason='needs a torch without float16 CPU autocast (torch 2.1)')
def test_benchmark_refuses_fp16_where_cpu_autocast_lacks_it(tmp_path):
    """Rather than time float32 under an fp16 label."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'analysis_tools' / 'benchmark.py'),
         '--out', str(tmp_path), '--configs', '224 b1', '--models', 'fixed',
         '--dtypes', 'fp32', 'fp16'],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        'benchmark.py: --dtypes fp16 on the CPU needs float16 CPU autocast'), proc.stderr[-2000:]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize('value,message', [
    ('x', "check_gpu: MMPARC_CHECK_OLDEST must be auto, 0 or 1, got 'x'"),
    ('1', 'check_gpu: MMPARC_CHECK_OLDEST=1 but there is no {venv}/bin/python; '
          "run 'make env-oldest' first")])
def test_check_gpu_oldest_stack_option(tmp_path, value, message):
    """``tools/check_gpu.sh``'s step on .venv-torch21: a bad setting, or a
    required environment that is absent, is one line before anything runs."""
    fake_root = tmp_path / 'checkout'
    (fake_root / 'tools').mkdir(parents=True)
    script = fake_root / 'tools' / 'check_gpu.sh'
    script.write_text((ROOT / 'tools' / 'check_gpu.sh').read_text())
    proc = subprocess.run(['bash', str(script), str(tmp_path / 'out')], capture_output=True,
                          text=True, timeout=60,
                          env=dict(os.environ, MMPARC_PYTHON=sys.executable,
                                   MMPARC_CHECK_OLDEST=value))
    assert proc.returncode == 2 and proc.stdout == ''
    venv = fake_root / '.venv-torch21'
    assert proc.stderr.strip().splitlines() == [message.format(venv=venv)]
    assert not (tmp_path / 'out').exists()
