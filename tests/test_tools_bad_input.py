"""Tools on bad input: one line naming the file, non-zero exit, nothing written.

Most cases call a tool's ``main`` in this process under
:func:`mmparc.fileio.run_tool` (what ``python tools/...`` runs); one case per
tool runs the script itself, as a user does.
"""
import importlib.util
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, List, Tuple

import numpy as np
import pytest
import torch

from mmparc.testing import official as ref
from mmparc.fileio import ToolError, atomic_output_file, run_tool, staged_output_dir

ROOT = Path(__file__).resolve().parents[1]
CLS_XT = str(ROOT / 'configs' / 'imagenet_parcnetv2_xt.py')
DET_TOY = str(ROOT / 'configs' / 'quickstart' / 'mask_rcnn_parcnetv2_toy.py')


def load_tool(relpath: str) -> ModuleType:
    path = ROOT / 'tools' / relpath
    spec = importlib.util.spec_from_file_location(f'tool_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def convert_tool() -> ModuleType:
    return load_tool('model_converters/convert_official.py')


@pytest.fixture(scope='module')
def export_tool() -> ModuleType:
    return load_tool('deployment/export_onnx.py')


@pytest.fixture(scope='module')
def infer_tool() -> ModuleType:
    return load_tool('infer.py')


def run(main: Callable[[], object], capsys) -> Tuple[int, str]:
    """Exit status and stderr of ``run_tool(main)``."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_tool(lambda: (main(), 0)[1])
    code = info.value.code
    err = capsys.readouterr().err
    if isinstance(code, str):  # SystemExit('error: ...') prints its message itself
        err, code = err + code + '\n', 1
    return code, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    # (stderr here also holds mmengine's log records; the scripts' own stderr
    # is checked line for line by the *_script_* tests)
    assert code not in (0, None), err
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def files_in(folder: Path) -> List[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob('*'))


@pytest.fixture
def bad_files(tmp_path) -> dict:
    text = tmp_path / 'notes.pth'
    text.write_text('these are notes, not weights\n')
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    return {'text': text, 'empty': empty}


def save_official(path: Path, state: dict) -> Path:
    torch.save({'model': state}, path)
    return path


# ------------------------------------------------------- convert_official
def test_convert_refuses_non_checkpoints(convert_tool, bad_files, tmp_path, capsys):
    dst = tmp_path / 'out' / 'x.pth'
    dst.parent.mkdir()
    for kind, fragment in (('text', 'not a PyTorch checkpoint'),
                           ('empty', 'empty file (0 bytes)')):
        src = str(bad_files[kind])
        code, err = run(lambda: convert_tool.main([src, str(dst)]), capsys)
        assert_one_line_error(code, err, src, fragment)
    assert files_in(dst.parent) == []


def test_convert_validates_against_the_architecture(convert_tool, tmp_path, capsys):
    out = tmp_path / 'out'
    out.mkdir()
    official = ref.random_official_state_dict('xt', num_classes=10)
    wrong = dict(official)
    wrong['stages.2.1.mlp.fc1.weight'] = torch.zeros(7, 192)
    missing_stage = {k: v for k, v in official.items()
                     if not k.startswith(('stages.3.', 'downsample_layers.3.'))}
    cases = [(wrong, 'classifier', None, ('stages.2.1.mlp.fc1.weight', '(7, 192)')),
             (wrong, 'backbone', None, ('stages.2.1.mlp.fc1.weight',)),
             (missing_stage, 'backbone', None, ('[3, 3, 9]', 'no ParCNetV2 arch')),
             (official, 'classifier', 't', ('does not fit ParCNetV2-t',))]
    for i, (state, target, arch, fragments) in enumerate(cases):
        src = str(save_official(tmp_path / f'official{i}.pth', state))
        argv = [src, str(out / 'x.pth'), '--target', target] + (['--arch', arch] if arch else [])
        code, err = run(lambda: convert_tool.main(argv), capsys)
        assert_one_line_error(code, err, src, *fragments)
    assert files_in(out) == []
    # the genuine one converts, and nothing else is left next to it
    src = str(save_official(tmp_path / 'good.pth', official))
    code, err = run(lambda: convert_tool.main([src, str(out / 'x.pth'), '--target',
                                               'classifier']), capsys)
    assert code == 0, err
    assert files_in(out) == ['x.pth']
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out / 'x.pth').st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_convert_checks_the_output_folder_first(convert_tool, tmp_path, capsys):
    src = str(save_official(tmp_path / 'good.pth', ref.random_official_state_dict('xt')))
    dst = str(tmp_path / 'no' / 'such' / 'x.pth')
    code, err = run(lambda: convert_tool.main([src, dst]), capsys)
    assert_one_line_error(code, err, dst, 'does not exist')


@pytest.mark.parametrize('tool', ['convert', 'export', 'infer'])
def test_script_prints_one_line(tool, bad_files, tmp_path):
    """The scripts as a user runs them: exactly one line on stderr, exit 1, no output."""
    text, empty = str(bad_files['text']), str(bad_files['empty'])
    argv = {
        'convert': ['model_converters/convert_official.py', text, str(tmp_path / 'x.pth')],
        'export': ['deployment/export_onnx.py', CLS_XT, '--shape', '-32', '64',
                   str(tmp_path / 'x.onnx')],
        'infer': ['infer.py', str(_image(tmp_path / 'a.jpg')), '--config', DET_TOY,
                  '--checkpoint', empty, '--out', str(tmp_path / 'out')],
    }[tool]
    expected = {'convert': f'error: {text}: not a PyTorch checkpoint',
                'export': 'error: --shape -32 64: height and width must be positive',
                'infer': f'error: {empty}: empty file (0 bytes)'}[tool]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    before = files_in(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / argv[0]), *argv[1:]],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(expected), proc.stderr
    assert files_in(tmp_path) == before


# ----------------------------------------------------------- export_onnx
def test_export_refuses_bad_arguments_before_work(export_tool, bad_files, tmp_path, capsys):
    out = tmp_path / 'out'
    out.mkdir()
    onnx = str(out / 'x.onnx')
    cases = [
        (['--shape', '-32', '64', onnx], ('--shape -32 64', 'positive')),
        (['--shape', '64', '64', '--atol', '-1', onnx], ('--atol',)),
        (['--shape', '64', '64', str(tmp_path / 'none' / 'x.onnx')], ('does not exist',)),
        (['--shape', '64', '64', '--checkpoint', str(bad_files['text']), onnx],
         (str(bad_files['text']), 'not a PyTorch checkpoint')),
        (['--shape', '64', '64', '--checkpoint', str(bad_files['empty']), onnx],
         (str(bad_files['empty']), 'empty file')),
        (['--shape', '64', '64', '--checkpoint', str(tmp_path / 'missing.pth'), onnx],
         ('missing.pth', 'not found')),
    ]
    for argv, fragments in cases:
        code, err = run(lambda: export_tool.main([CLS_XT] + argv), capsys)
        assert_one_line_error(code, err, *fragments)
    assert files_in(out) == []


def test_export_refuses_a_checkpoint_that_does_not_fit(export_tool, tmp_path, capsys):
    from mmparc import ParCNetV2
    bare = ParCNetV2('xt', out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    path = tmp_path / 'backbone_only.pth'
    torch.save({'state_dict': bare.state_dict()}, path)
    code, err = run(lambda: export_tool.main([CLS_XT, '--checkpoint', str(path), '--shape',
                                              '64', '64', str(tmp_path / 'x.onnx')]), capsys)
    assert_one_line_error(code, err, str(path), 'does not fit the classifier')
    assert not (tmp_path / 'x.onnx').exists()


def test_export_beyond_atol_leaves_no_file(export_tool, tmp_path, capsys, monkeypatch):
    """``--atol 0``: the export happens, the check fails, no ``.onnx`` remains."""
    monkeypatch.setattr(export_tool, 'compare', lambda path, x, expected: {'logits': 1e-6})
    out = tmp_path / 'out'
    out.mkdir()
    code, err = run(lambda: export_tool.main([CLS_XT, '--shape', '64', '64', '--atol', '0',
                                              str(out / 'x.onnx')]), capsys)
    assert_one_line_error(code, err, 'differs from PyTorch by more than 0', 'not written')
    assert files_in(out) == []


# ----------------------------------------------------------------- infer
def _image(path: Path) -> Path:
    import cv2
    cv2.imwrite(str(path), np.full((64, 64, 3), 128, np.uint8))
    return path


def test_infer_refuses_bad_input_before_writing(infer_tool, bad_files, tmp_path, capsys):
    images = tmp_path / 'images'
    images.mkdir()
    _image(images / 'a.jpg')
    (images / 'b.jpg').write_text('not an image')
    out = tmp_path / 'out'
    good = [str(images / 'a.jpg')]
    cases = [
        ([str(images)], str(bad_files['text']), (str(images / 'b.jpg'), 'not a readable image')),
        (good, str(bad_files['text']), (str(bad_files['text']), 'not a PyTorch checkpoint')),
        (good, str(bad_files['empty']), (str(bad_files['empty']), 'empty file')),
    ]
    for inputs, checkpoint, fragments in cases:
        argv = inputs + ['--config', DET_TOY, '--checkpoint', checkpoint, '--out', str(out)]
        code, err = run(lambda: infer_tool.main(argv), capsys)
        assert_one_line_error(code, err, *fragments)
    assert not out.exists()


def test_infer_refuses_a_checkpoint_of_another_model(infer_tool, tmp_path, capsys):
    """A backbone-only file for a detector: keys match none of the model's."""
    from mmparc import ParCNetV2
    bare = ParCNetV2(dict(depths=[1, 1, 3, 1], dims=[32, 64, 128, 192]),
                     out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    path = tmp_path / 'backbone_only.pth'
    torch.save({'state_dict': bare.state_dict()}, path)
    image = _image(tmp_path / 'a.jpg')
    out = tmp_path / 'out'
    argv = [str(image), '--config', DET_TOY, '--checkpoint', str(path), '--out', str(out)]
    code, err = run(lambda: infer_tool.main(argv), capsys)
    assert_one_line_error(code, err, str(path), 'does not fit the model of', 'none of its')
    assert not out.exists()


# ------------------------------------------------------ atomic helpers
def test_atomic_output_file_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / 'x.pth'
    target.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_output_file(target) as tmp:
            tmp.write_text('half')
            raise RuntimeError('boom')
    assert target.read_text() == 'old' and files_in(tmp_path) == ['x.pth']
    with atomic_output_file(target) as tmp:
        tmp.write_text('new')
    assert target.read_text() == 'new' and files_in(tmp_path) == ['x.pth']


def test_staged_output_dir_moves_only_on_success(tmp_path):
    out = tmp_path / 'a' / 'b'
    with pytest.raises(RuntimeError):
        with staged_output_dir(out) as stage:
            (stage / 'vis').mkdir()
            (stage / 'vis' / '1.jpg').write_text('x')
            raise RuntimeError('boom')
    assert files_in(tmp_path) == []
    with staged_output_dir(out) as stage:
        (stage / 'vis').mkdir()
        (stage / 'vis' / '1.jpg').write_text('x')
    assert files_in(tmp_path) == ['a', 'a/b', 'a/b/vis', 'a/b/vis/1.jpg']


def test_infer_accepts_a_checkpoint_of_its_model(infer_tool, tmp_path, capsys):
    """The fit check passes a checkpoint of the config's own model; outputs land in
    ``--out`` with no staging folder left beside them."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(DET_TOY)
    init_default_scope('mmdet')
    from mmengine.registry import MODELS
    model = MODELS.build(cfg.model)
    path = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': dict(cfg.metainfo)}}, path)
    images = tmp_path / 'images'
    images.mkdir()
    _image(images / 'a.jpg')
    out = tmp_path / 'out'
    argv = [str(images), '--config', DET_TOY, '--checkpoint', str(path), '--out', str(out)]
    code, err = run(lambda: infer_tool.main(argv), capsys)
    assert code == 0, err
    assert (out / 'vis' / 'a.jpg').is_file() and (out / 'preds' / 'a.json').is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['images', 'model.pth', 'out']


# ------------------------------------------------- outputs: regular files only
def _special_files(tmp_path: Path) -> dict:
    """A FIFO, a socket, a folder and a character device (``/dev/null``) as outputs."""
    import socket
    fifo = tmp_path / 'fifo.pth'
    os.mkfifo(fifo)
    sock = tmp_path / 'sock.pth'
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    server.close()
    folder = tmp_path / 'folder.pth'
    folder.mkdir()
    link = tmp_path / 'link_to_null.pth'
    link.symlink_to('/dev/null')
    return {'FIFO': fifo, 'socket': sock, 'folder': folder, 'device': Path('/dev/null'),
            'link to a device': link}


def test_outputs_never_replace_special_files(convert_tool, tmp_path, capsys):
    import stat
    src = str(save_official(tmp_path / 'good.pth', ref.random_official_state_dict('xt')))
    specials = _special_files(tmp_path)
    kinds = {path: os.lstat(path).st_mode for path in specials.values()}
    for name, path in specials.items():
        code, err = run(lambda: convert_tool.main([src, str(path)]), capsys)
        line = assert_one_line_error(code, err, str(path))
        assert 'folder' in line if name == 'folder' else 'not a regular file' in line, line
        with pytest.raises(ToolError):
            with atomic_output_file(path) as tmp:
                tmp.write_text('x')
    assert {path: os.lstat(path).st_mode for path in specials.values()} == kinds
    assert stat.S_ISCHR(os.stat('/dev/null').st_mode)
    assert not [p for p in tmp_path.iterdir() if '.part' in p.name]


def test_outputs_write_through_symlinks(convert_tool, tmp_path, capsys):
    """A symlinked output is resolved: the file it points to is replaced, the link stays."""
    src = str(save_official(tmp_path / 'good.pth', ref.random_official_state_dict('xt')))
    target = tmp_path / 'store' / 'real.pth'
    target.parent.mkdir()
    target.write_text('old')
    link = tmp_path / 'link.pth'
    link.symlink_to(target)
    code, err = run(lambda: convert_tool.main([src, str(link), '--target', 'backbone']), capsys)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.stat().st_size > 1000 and files_in(target.parent) == ['real.pth']
    # a staged folder's files obey the same rule
    out = tmp_path / 'out'
    out.mkdir()
    os.mkfifo(out / 'taken.txt')
    with pytest.raises(ToolError, match='not a regular file'):
        with staged_output_dir(out) as stage:
            (stage / 'taken.txt').write_text('x')
            (stage / 'other.txt').write_text('x')
    assert files_in(out) == ['taken.txt']


def test_convert_refuses_implausible_indices_within_bounded_memory(tmp_path):
    """``stages.3000000000.0.w`` once made the converter build a 3e9-long list."""
    import resource
    official = ref.random_official_state_dict('xt')
    official['stages.3000000000.0.w'] = torch.zeros(1)
    src = save_official(tmp_path / 'huge_index.pth', official)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')

    def limit():
        resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))

    tool = ROOT / 'tools' / 'model_converters' / 'convert_official.py'
    proc = subprocess.run([sys.executable, str(tool), str(src), str(tmp_path / 'x.pth')],
                          capture_output=True, text=True, env=env, timeout=120,
                          preexec_fn=limit)
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'stage index 3000000000 is not plausible' in lines[0], lines
    assert not (tmp_path / 'x.pth').exists()


# ------------------------------------------------------- infer: untrusted input
def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width`` x ``height`` (its data is a few bytes)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))

    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header)
                     + chunk(b'IDAT', zlib.compress(b'\x00' * 16)) + chunk(b'IEND', b''))
    return path


def test_infer_reads_only_bounded_regular_files(infer_tool, bad_files, tmp_path, capsys):
    """A FIFO named a.jpg (which once hung the tool), a link to /dev/zero (read until
    MemoryError) and a 20000x20000 PNG header (decoded by OpenCV) are refused first."""
    fifo_dir = tmp_path / 'fifo'
    fifo_dir.mkdir()
    _image(fifo_dir / 'a.jpg')
    os.mkfifo(fifo_dir / 'b.jpg')
    zero = tmp_path / 'zero.jpg'
    zero.symlink_to('/dev/zero')
    huge = _png_header(tmp_path / 'huge.png', 20000, 20000)
    out = tmp_path / 'out'
    cases = [([str(fifo_dir)], (str(fifo_dir / 'b.jpg'), 'not a regular file')),
             ([str(zero)], (str(zero), 'not a regular file')),
             ([str(huge)], (str(huge), 'pixels'))]
    for inputs, fragments in cases:
        argv = inputs + ['--config', DET_TOY, '--checkpoint', str(bad_files['text']),
                         '--out', str(out)]
        code, err = run(lambda: infer_tool.main(argv), capsys)
        assert_one_line_error(code, err, *fragments)
    assert not out.exists()


def test_infer_refuses_class_names_that_do_not_fit_the_head(infer_tool, tmp_path, capsys):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(DET_TOY)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    classes = list(cfg.metainfo['classes'])
    path = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': classes[:-1]}}}, path)
    image = _image(tmp_path / 'a.jpg')
    out = tmp_path / 'out'
    argv = [str(image), '--config', DET_TOY, '--checkpoint', str(path), '--out', str(out)]
    code, err = run(lambda: infer_tool.main(argv), capsys)
    assert_one_line_error(code, err, str(path), f'names {len(classes) - 1} classes',
                          f'predicts {len(classes)}')
    assert not out.exists()


class _System:
    """Pickles as ``os.system(command)``: what a crafted checkpoint would run."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_tools_refuse_code_payloads(convert_tool, export_tool, infer_tool, tmp_path, capsys):
    """Each tool that reads a checkpoint refuses one that would run a command."""
    marker = tmp_path / 'marker'
    payload = tmp_path / 'payload.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': _System(f'touch {marker}')}, payload)
    image = _image(tmp_path / 'a.jpg')
    calls = {
        'convert': lambda: convert_tool.main([str(payload), str(tmp_path / 'x.pth')]),
        'export': lambda: export_tool.main([CLS_XT, '--checkpoint', str(payload), '--shape',
                                            '64', '64', str(tmp_path / 'x.onnx')]),
        'infer': lambda: infer_tool.main([str(image), '--config', DET_TOY, '--checkpoint',
                                          str(payload), '--out', str(tmp_path / 'out')]),
    }
    for tool, call in calls.items():
        code, err = run(call, capsys)
        assert_one_line_error(code, err, str(payload), 'posix.system')
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.jpg', 'payload.pth']
