"""A check of the checks: planted bugs that the test named beside each must catch.

Each entry plants one bug in a copy of the package (and of ``tests/`` and
``tools/``) by a textual replacement that must match exactly once, so that the
list fails loudly when the code it names changes, and runs the one test that
should catch the bug, in a subprocess that imports the copy's ``mmparc`` (it
checks that it does).  The entry fails if that test passes.  The targets are
also run unmutated in the same kind of copy: a target that fails there would
"catch" anything.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple

import pytest

from helpers import INDUCTOR_ONE_THREAD_WRONG, INDUCTOR_ONE_THREAD_WRONG_REASON, REPO

pytestmark = pytest.mark.slow

# Copied (the bugs are planted there); everything else the tests read is linked.
COPIED = ('mmparc', 'tests', 'tools')
LINKED = ('configs', 'demo', 'docs', 'requirements', 'setup.cfg', 'setup.py', 'model-index.yml',
          'README.md')
PYTEST_ARGS = ['-p', 'no:cacheprovider', '-n', '0', '-x', '-q', '--no-header']
TIMEOUT = 600


class Mutation(NamedTuple):
    name: str  # what the bug is
    path: str  # file it is planted in, relative to the checkout
    old: str  # text that must occur exactly once there
    new: str  # what replaces it
    test: str  # the test id that must fail with the bug


ABLATIONS = 'tests/test_ablations.py'
BACKBONE = 'tests/test_backbone.py'
MUTATIONS: List[Mutation] = [
    # -------------------------------------------- the eight
    Mutation(
        'cascade_dw_v_h_runs_as_v_h_dw', 'mmparc/models/parcnetv2.py',
        'return self.dwconv1(self.dwconv2(gate))', 'return self.dwconv2(self.dwconv1(gate))',
        f'{ABLATIONS}::test_cascades_order_their_convolutions[cascade_dw_v_h]'),
    Mutation(
        'block_ignores_with_cp', 'mmparc/models/parcnetv2.py',
        'if self.with_cp and x.requires_grad:', 'if False:',
        f'{BACKBONE}::test_with_cp_checkpoints_each_block_with_the_same_results[0]'),
    Mutation(  # the runner checkpoint's weights never reach the resumed model
        'resume_loader_drops_the_state_dict', 'mmparc/checkpoint/schemes.py',
        'return _checked(load_checkpoint_file(filename, map_location), str(filename))',
        'return _checked({k: v for k, v in load_checkpoint_file(filename, map_location).items()'
        " if k != 'state_dict'}, str(filename))",
        'tests/test_checkpoint_loading.py::test_resume_from_runner_checkpoint'),
    Mutation(  # http:// checkpoints keep mmengine's loader (torch.hub, weights_only=False)
        'http_scheme_left_to_torch_hub', 'mmparc/checkpoint/schemes.py',
        '        CheckpointLoader.register_scheme(prefixes=prefix, loader=ours, force=True)',
        "        if prefix.startswith('http'):\n            continue\n"
        '        CheckpointLoader.register_scheme(prefixes=prefix, loader=ours, force=True)',
        'tests/test_crafted_checkpoints.py::test_code_payloads_through_every_entry_point'),
    Mutation(  # `mim test --checkpoint` evaluates a model that loaded nothing
        'mim_test_checkpoint_loads_nothing', 'mmparc/checkpoint/schemes.py',
        'return _checked(load_checkpoint_file(filename, map_location), str(filename))',
        'return _checked({k: v for k, v in load_checkpoint_file(filename, map_location).items()'
        " if k != 'state_dict'}, str(filename))",
        'tests/test_configs.py::test_mim_test_upernet_tta'),
    Mutation(
        'onnx_check_compares_onnxruntime_with_itself', 'tools/deployment/export_onnx.py',
        'float(np.abs(g - e).max())', 'float(np.abs(g - g).max())',
        'tests/test_onnx.py::test_tool_refuses_a_graph_with_a_tampered_initializer'),
    Mutation(
        'amp_wrapper_drops_dtype', 'mmparc/engine/amp.py',
        'loss_scale=loss_scale, dtype=dtype,', 'loss_scale=loss_scale, dtype=None,',
        'tests/test_amp_fallback.py::test_accelerator_gets_the_real_amp_wrapper'
        '[512.0-scaler_kwargs0]'),
    Mutation(
        'compiled_l2_norm_drops_the_mean_gradient', 'mmparc/ops/l2_norm.py',
        'centred = x - x.mean(-1, keepdim=True)', 'centred = x - x.mean(-1, keepdim=True).detach()',
        'tests/test_model_paths.py::test_torch_compile_inductor_matches_eager'),
    # ------------------------------------------------------ more
    Mutation(
        'layer_decay_rate_below_one_inverted', 'mmparc/engine/layer_decay.py',
        'self.decay_rate = float(rate)', 'self.decay_rate = float(max(rate, 1 / rate))',
        'tests/test_layer_decay.py::test_lr_by_value_at_a_realistic_rate'),
    Mutation(
        'frozen_stages_freeze_one_stage_less', 'mmparc/models/parcnetv2.py',
        'range(max(self.frozen_stages, 0))', 'range(max(self.frozen_stages - 1, 0))',
        f'{BACKBONE}::test_frozen_stages_unchanged_by_a_training_step'),
    Mutation(
        # (Not "reads the largest rstd": where torch's layer norm gives NaN rather than
        # 0 for an overflowing row, as 2.1 does, NaN propagates to the largest too.)
        'l2_norm_overflow_check_misses_a_zero_rstd', 'mmparc/ops/l2_norm.py',
        'not smallest.item() > 0', 'smallest.item() < 0',
        'tests/test_ops.py::test_l2_norm_layer_falls_back_when_one_row_overflows'),
    Mutation(
        'global_kernels_two_taps_too_long', 'mmparc/models/layers/oversized_conv.py',
        'resample_kernel(self.weight.flatten(1), 2 * size - 1)',
        'resample_kernel(self.weight.flatten(1), 2 * size + 1)',
        f'{BACKBONE}::test_dense_outputs_match_official_beyond_training_size[size1-global]'),
    Mutation(
        'depthwise_input_gradient_kernel_not_flipped', 'mmparc/ops/depthwise_conv.py',
        '_depthwise(grad, weight.to(grad.dtype).flip(2, 3))',
        '_depthwise(grad, weight.to(grad.dtype))',
        'tests/test_ops.py::test_depthwise_conv_fast_backward[kernel0-1-contiguous]'),
    Mutation(
        'toeplitz_matrix_not_flipped', 'mmparc/ops/oversized_conv.py',
        'return kernel.unfold(1, size, 1).flip(1)', 'return kernel.unfold(1, size, 1)',
        'tests/test_ops.py::test_toeplitz_matrix_is_the_convolution'),
    Mutation(
        'strided_conv_bias_gradient_averaged', 'mmparc/ops/strided_conv.py',
        'grad_b = grad.sum((0, 2, 3)).to(weight.dtype)',
        'grad_b = grad.mean((0, 2, 3)).to(weight.dtype)',
        'tests/test_ops.py::test_strided_conv_fast_weight_gradient[geometry0]'),
    Mutation(
        'gated_projection_backward_skips_gelu', 'mmparc/ops/gating.py',
        'grad_b = torch.ops.aten.gelu_backward(grad_b, b_)', 'grad_b = grad_b',
        'tests/test_ops.py::test_gated_projection_recomputes_and_matches[channel_major-True]'),
    Mutation(
        'gated_projection_gelu_in_place_on_the_callers_gate', 'mmparc/ops/gating.py',
        'torch.ops.aten.gelu_(b.contiguous())', 'torch.ops.aten.gelu_(b)',
        'tests/test_ops.py::test_gated_projection_inference_leaves_its_inputs[channels_last-dtype0]'),
    Mutation(
        'toeplitz_kernel_gradient_rows_unflipped', 'mmparc/ops/oversized_conv.py',
        'F.pad(grad_matrix.flip(1).float(), (0, size))', 'F.pad(grad_matrix.float(), (0, size))',
        'tests/test_ops.py::test_toeplitz_kernel_gradient_sums_the_diagonals[dtype0-7]'),
    Mutation(
        'checkpoint_getattr_allows_any_name', 'mmparc/checkpoint/standins.py',
        ' or name not in STATISTICS:', ':',
        'tests/test_checkpoint_loading.py::test_getattr_stand_in_refuses_other_attributes'),
    Mutation(
        'kernel_picture_transposed', 'mmparc/visualization/kernels.py',
        'outer = np.outer(kernel_h[c], kernel_w[c])', 'outer = np.outer(kernel_w[c], kernel_h[c])',
        'tests/test_research_tools.py::test_vis_kernels_draws_a_known_kernel[column]'),
]


def make_copy(root: Path) -> Path:
    """A copy of the checkout's code and tests under ``root`` (caches left out)."""
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info')
    for name in COPIED:
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    for name in LINKED:
        if (REPO / name).exists():
            (root / name).symlink_to(REPO / name)
    return root


def plant(root: Path, mutation: Mutation) -> None:
    target = root / mutation.path
    text = target.read_text()
    count = text.count(mutation.old)
    if count != 1:
        pytest.fail(f'{mutation.name}: the snippet to replace occurs {count} times in '
                    f'{mutation.path} (must be once); update the entry in {__file__}:\n'
                    f'{mutation.old}')
    target.write_text(text.replace(mutation.old, mutation.new))


def run_tests(root: Path, test_ids: List[str]) -> subprocess.CompletedProcess:
    """pytest on ``test_ids`` in ``root``, with the copy's ``mmparc`` imported (asserted)."""
    code = ('import sys, mmparc, pytest\n'
            f'assert mmparc.__file__.startswith({str(root)!r}), mmparc.__file__\n'
            'sys.exit(pytest.main(sys.argv[1:]))\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]),
        PYTHONDONTWRITEBYTECODE='1')
    env.pop('PYTEST_XDIST_WORKER', None)
    return subprocess.run([sys.executable, '-c', code, *PYTEST_ARGS, *test_ids], cwd=root,
                          env=env, capture_output=True, text=True, timeout=TIMEOUT)


def tail(result: subprocess.CompletedProcess, size: int = 3000) -> str:
    return (result.stdout + result.stderr)[-size:]


def test_mutation_list_is_sound():
    """Distinct names, and every snippet found exactly once in the checkout."""
    assert len({m.name for m in MUTATIONS}) == len(MUTATIONS)
    for mutation in MUTATIONS:
        count = (REPO / mutation.path).read_text().count(mutation.old)
        assert count == 1, f'{mutation.name}: snippet found {count} times in {mutation.path}'




def _runs_here(mutation: Mutation) -> bool:
    """Whether the target can pass unmutated on this torch (the inductor test is an
    expected failure where torch's inductor itself is wrong)."""
    return not (INDUCTOR_ONE_THREAD_WRONG and 'inductor' in mutation.test)


RUNNABLE = [m for m in MUTATIONS if _runs_here(m)]
TARGET_FILES = sorted({m.test.split('::')[0] for m in RUNNABLE})


@pytest.fixture(scope='module')
def pristine(tmp_path_factory) -> Path:
    return make_copy(tmp_path_factory.mktemp('pristine'))


@pytest.mark.parametrize('test_file', TARGET_FILES)
def test_targets_pass_unmutated(pristine, test_file):
    """The targets of one test file pass in an unmutated copy, run as the mutated
    ones are (one process per file, as the suite groups them): a target failing
    there would "catch" any bug."""
    targets = sorted({m.test for m in RUNNABLE if m.test.split('::')[0] == test_file})
    result = run_tests(pristine, targets)
    assert result.returncode == 0, f'targets fail without any bug:\n{tail(result)}'
    assert f'{len(targets)} passed' in result.stdout, tail(result)


@pytest.mark.parametrize('mutation', [
    pytest.param(m, id=m.name, marks=() if _runs_here(m) else pytest.mark.skip(
        reason=INDUCTOR_ONE_THREAD_WRONG_REASON)) for m in MUTATIONS])
def test_planted_bug_is_caught(tmp_path, mutation):
    root = make_copy(tmp_path)
    plant(root, mutation)
    result = run_tests(root, [mutation.test])
    assert result.returncode != 0, f'{mutation.name} was not caught by {mutation.test}'
    # Caught by a failing test, not by a crash of the run or a stale test id.
    assert result.returncode == 1 and '1 failed' in result.stdout, tail(result)
