"""``mim search mmparc``: the model index, as an installed mmparc ships it.

mim (0.3.9) reads ``<installed package>/.mim/model-index.yml``, where the
package directory is taken to be beside the distribution's metadata.  A
regular install (a wheel) puts it there; the development checkout's
editable install does not (its metadata sits in site-packages, the code in
the checkout).  So the test builds the wheel from the checkout's files,
unpacks it into a temporary directory put first on ``PYTHONPATH``, and runs
``mim search`` there, as a user who ran ``pip install mmparc`` would, and
``mim run mmparc <tool>`` (the wheel ships ``tools/`` under ``.mim``).

The index's own figures are checked against the configs: parameters of
every model built from its config, the classifiers' FLOPs against
``tests/test_complexity.py``'s exact counts, and the paper's results
against the README's table.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[1]
# Every model config: the configs/*.py of the paper's main tables, and the
# research configs of the supplement's Tables 1-4 (the quickstart's toy
# configs are demos, not models of the paper).
CONFIGS = {p.stem: p.relative_to(ROOT).as_posix()
           for pattern in ('*.py', 'ablations/*.py', 'imagenet21k/*.py')
           for p in (ROOT / 'configs').glob(pattern)}


def _metafile() -> Dict[str, Any]:
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    assert index == {'Import': ['configs/metafile.yml']}
    return yaml.safe_load((ROOT / 'configs' / 'metafile.yml').read_text())


@pytest.fixture(scope='module')
def installed(tmp_path_factory) -> Path:
    """mmparc's wheel, built from the checkout's files and unpacked: a site folder."""
    tmp = tmp_path_factory.mktemp('mim')
    src = tmp / 'src'
    src.mkdir()
    for name in ('setup.py', 'setup.cfg', 'README.md', 'LICENSE', 'model-index.yml'):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns('__pycache__')
    shutil.copytree(ROOT / 'mmparc', src / 'mmparc', symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / 'configs', src / 'configs', ignore=ignore)
    shutil.copytree(ROOT / 'tools', src / 'tools', ignore=ignore)
    env = dict(os.environ, PIP_CONFIG_FILE='/dev/null', PIP_DISABLE_PIP_VERSION_CHECK='1')
    build = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
         '--no-index', '-q', '-w', str(tmp / 'dist'), str(src)],
        capture_output=True, text=True, timeout=300, env=env)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel, = (tmp / 'dist').glob('mmparc-*.whl')
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp / 'site')
    assert 'mmparc/.mim/model-index.yml' in names and 'mmparc/.mim/configs/metafile.yml' in names
    assert all(f'mmparc/.mim/{path}' in names for path in CONFIGS.values())
    tools = {p.relative_to(ROOT).as_posix() for p in (ROOT / 'tools').rglob('*.py')}
    assert tools and all(f'mmparc/.mim/{path}' in names for path in tools)
    return tmp / 'site'


@pytest.fixture(scope='module')
def searched(installed) -> Dict[str, Dict[str, Any]]:
    """``mim search mmparc --json`` against mmparc installed from its wheel."""
    tmp = installed.parent
    out = tmp / 'search.json'
    search = subprocess.run(
        [sys.executable, '-m', 'mim', 'search', 'mmparc', '--json', str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp,
        env=dict(os.environ, PYTHONPATH=str(installed)))
    assert search.returncode == 0, search.stdout[-2000:] + search.stderr[-3000:]
    columns = json.loads(out.read_text())  # pandas' to_json: {column: {model: value}}
    models = {name for column in columns.values() for name in column}
    return {name: {key: column.get(name) for key, column in columns.items()} for name in models}


@pytest.mark.slow
def test_mim_run_finds_the_tools(installed, tmp_path):
    """`mim run mmparc <tool>` runs tools/**/<tool>.py from the installed package."""
    run = subprocess.run(
        [sys.executable, '-m', 'mim', 'run', 'mmparc', 'make_toy_dataset', '--kind', 'imagenet',
         '--out', str(tmp_path / 'toy'), '--num-train', '2', '--num-val', '1', '--size', '32',
         '32'], capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(installed)))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert str(installed / 'mmparc' / '.mim' / 'tools' / 'misc') in run.stdout + run.stderr
    assert (tmp_path / 'toy' / 'meta' / 'val.txt').is_file()


@pytest.mark.slow
def test_mim_search_lists_every_config(searched):
    assert sorted(searched) == sorted(CONFIGS)
    for name, row in searched.items():
        assert row['config'] == CONFIGS[name]
        assert row['parameters'] > 1e6 and row['flops'] > 1e9, (name, row)
    assert searched['imagenet_parcnetv2_t']['imagenet-1k/top_1_accuracy'] == 83.5
    assert searched['cascade_parcnetv2_b']['coco/box_ap'] == 54.0
    assert searched['cascade_parcnetv2_b']['coco/mask_ap'] == 46.7
    assert searched['upernet_parcnetv2_s']['ade20k/miou'] == 50.0


def test_metafile_parameters_are_the_configs():
    """Parameters: each config's model (no checkpoint) counted; FLOPs of the
    classifiers: the exact counts that tests/helpers.py holds."""
    from mmengine.registry import init_default_scope

    import mmparc  # noqa: F401
    from helpers import MACS, PARAMS
    models = {m['Name']: m for m in _metafile()['Models']}
    assert sorted(models) == sorted(CONFIGS)
    for name, entry in models.items():
        assert entry['Config'] == CONFIGS[name]
        cfg = Config.fromfile(str(ROOT / entry['Config']))
        cfg.model.backbone.pop('init_cfg', None)
        init_default_scope(cfg.default_scope)
        from mmengine.registry import MODELS
        model = MODELS.build(cfg.model)
        count = sum(p.numel() for p in model.parameters())
        assert entry['Metadata']['Parameters'] == count, name
        if name.startswith('imagenet_'):
            arch = name.rsplit('_', 1)[1]
            assert count == PARAMS[arch]
            assert entry['Metadata']['FLOPs'] == MACS[arch], name
            assert entry['Metadata']['Input Size'] == '224x224'


# The paper's results as the README's table states them (main configs) or
# as the research configs' `paper` rows do: config -> metrics.
README_RESULTS = {
    'imagenet_parcnetv2_xt': {'Top 1 Accuracy': 79.4},
    'imagenet_parcnetv2_t': {'Top 1 Accuracy': 83.5},
    'imagenet_parcnetv2_s': {'Top 1 Accuracy': 84.3},
    'imagenet_parcnetv2_b': {'Top 1 Accuracy': 84.6},
    'mask_rcnn_parcnetv2_t': {'box AP': 48.9, 'mask AP': 43.7},
    'mask_rcnn_parcnetv2_s': {},
    'mask_rcnn_parcnetv2_b': {},
    'cascade_parcnetv2_t': {'box AP': 52.6, 'mask AP': 45.6},
    'cascade_parcnetv2_s': {'box AP': 53.4, 'mask AP': 46.3},
    'cascade_parcnetv2_b': {'box AP': 54.0, 'mask AP': 46.7},
    'upernet_parcnetv2_t': {'mIoU': 48.5, 'mIoU(ms+flip)': 49.4},
    'upernet_parcnetv2_s': {'mIoU': 50.0, 'mIoU(ms+flip)': 51.0},
    'upernet_parcnetv2_b': {'mIoU': 50.2, 'mIoU(ms+flip)': 51.1},
}


def _paper_rows_top1(name: str) -> Dict[str, float]:
    rows = Config.fromfile(str(ROOT / CONFIGS[name])).get('paper') or []
    return {'Top 1 Accuracy': float(rows[0]['top1'])} if rows else {}


def test_metafile_results_are_the_papers():
    models = {m['Name']: m for m in _metafile()['Models']}
    assert sorted(models) == sorted(CONFIGS)
    for name in models:
        expected = README_RESULTS[name] if name in README_RESULTS else _paper_rows_top1(name)
        metrics = {k: v for r in models[name].get('Results', []) for k, v in r['Metrics'].items()}
        assert metrics == expected, name
