#!/usr/bin/env bash
# The GPU check: run it on a CUDA machine once `make env` (tools/setup_env.sh,
# which builds mmcv with its CUDA ops where nvcc exists) has made .venv.  It
# builds nothing and takes a few minutes:
#
#   1. what the machine has: GPU, driver, torch's CUDA, mmcv's CUDA ops;
#   2. parity of the CUDA paths against the CPU reference, forward and
#      gradients, both kernel modes, fp32 and fp16/bf16 autocast
#      (pytest -k cuda over tests/test_ops.py, tests/test_model_paths.py and
#      tests/test_gpu_check.py); a skipped test fails the check;
#   3. one AMP training step of the quickstart Mask R-CNN through
#      mmparc.FallbackAmpOptimWrapper (part of step 2: test_gpu_check.py);
#   4. tools/analysis_tools/benchmark.py: ParCNetV2-T (fixed, global) vs
#      ConvNeXt-T, fp32 / fp16 / bf16, 224 b64 and 800x1216 b2, one table;
#   5. the oldest supported stack (torch 2.1, .venv-torch21 from
#      `make env-oldest`), where that environment exists: steps 1-3 again.
#      Its mmcv has CUDA ops only when a CUDA 12 toolkit (torch 2.1's CUDA)
#      was found at set-up (on a machine whose nvcc is another major, set it
#      up with FORCE_CUDA=0); without them the Mask R-CNN step is left out
#      there, and the log says so.
#
# Usage: bash tools/check_gpu.sh [OUT_DIR]   (default outputs/gpu_check)
# MMPARC_CHECK_OLDEST=auto (default: step 5 where .venv-torch21 exists),
# 1 (step 5 required) or 0 (no step 5).
# Writes OUT_DIR/check_gpu.log, OUT_DIR/pytest.log, OUT_DIR/benchmark/ and
# OUT_DIR/torch21/pytest.log.
# Exit status: 0 when every step passed; the first failing step is named.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${MMPARC_PYTHON:-$ROOT/.venv/bin/python}"
OLDEST_PY="$ROOT/.venv-torch21/bin/python"
OLDEST="${MMPARC_CHECK_OLDEST:-auto}"
OUT="${1:-$ROOT/outputs/gpu_check}"
STEP=start

fail() { printf 'check_gpu: FAILED at step: %s\n' "$STEP" >&2; }
trap fail ERR

if [[ ! -x "$PY" ]]; then
  trap - ERR
  echo "check_gpu: no Python at $PY; run 'make env' first (or set MMPARC_PYTHON)" >&2
  exit 2
fi
case "$OLDEST" in
  auto) [[ -x "$OLDEST_PY" ]] || OLDEST=0 ;;
  1) if [[ ! -x "$OLDEST_PY" ]]; then
       trap - ERR
       echo "check_gpu: MMPARC_CHECK_OLDEST=1 but there is no $OLDEST_PY; run 'make env-oldest' first" >&2
       exit 2
     fi ;;
  0) ;;
  *) trap - ERR
     echo "check_gpu: MMPARC_CHECK_OLDEST must be auto, 0 or 1, got '$OLDEST'" >&2
     exit 2 ;;
esac
STEP="a CUDA device"
if ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  trap - ERR
  echo "check_gpu: torch sees no CUDA device here; run this on a GPU machine" >&2
  exit 2
fi
mkdir -p "$OUT"
exec > >(tee "$OUT/check_gpu.log") 2>&1
cd "$ROOT"

# environment PYTHON REQUIRE_MMCV_CUDA: step 1 for one environment.  With
# REQUIRE_MMCV_CUDA=0, mmcv without CUDA ops is reported and exits 3.
environment() {
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  MMPARC_REQUIRE_MMCV_CUDA="$2" "$1" - <<'PY'
import os, torch, mmcv
print(f'torch {torch.__version__} (CUDA {torch.version.cuda}), GPU {torch.cuda.get_device_name(0)}, '
      f'mmcv {mmcv.__version__}')
try:  # mmcv built without its CUDA ops fails here, not mid-training
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]], device='cuda')
    nms(boxes, torch.tensor([0.9, 0.8], device='cuda'), 0.5)
    print('mmcv CUDA ops: available')
except Exception as error:  # noqa: BLE001  (one line, then a failing exit)
    if os.environ['MMPARC_REQUIRE_MMCV_CUDA'] == '0':
        print(f'mmcv CUDA ops: unavailable ({error})')
        raise SystemExit(3)
    raise SystemExit(f'mmcv CUDA ops unavailable ({error}); rebuild the environment on this '
                     'machine with nvcc present (tools/setup_env.sh, FORCE_CUDA branch)')
PY
}

# cuda_tests PYTHON LOG [PYTEST ARGS]: steps 2-3; a skipped test fails them.
cuda_tests() {
  local py="$1" log="$2"
  shift 2
  timeout 240 "$py" -m pytest -q -n 0 -rs -p no:cacheprovider "$@" \
    tests/test_ops.py tests/test_model_paths.py tests/test_gpu_check.py 2>&1 | tee "$log"
  if grep -Eq '[0-9]+ skipped' "$log"; then
    echo "check_gpu: CUDA tests were skipped on a CUDA machine (see $log)"
    false
  fi
  grep -Eq '[0-9]+ passed' "$log"
}

STEP="1/5 environment"
echo "== $STEP"
environment "$PY" 1

STEP="2-3/5 CUDA parity and the AMP training step (pytest -k cuda)"
echo "== $STEP"
cuda_tests "$PY" "$OUT/pytest.log" -k cuda

STEP="4/5 benchmark (tools/analysis_tools/benchmark.py --device cuda)"
echo "== $STEP"
timeout 300 "$PY" tools/analysis_tools/benchmark.py --device cuda --threads 0 \
  --models convnext fixed global --dtypes fp32 fp16 bf16 --configs "224 b64" "800x1216 b2" \
  --no-memory --out "$OUT/benchmark"

if [[ "$OLDEST" == 0 ]]; then
  echo "== 5/5 oldest stack: not checked (no .venv-torch21, or MMPARC_CHECK_OLDEST=0)"
else
  STEP="5/5 oldest stack (.venv-torch21): environment, CUDA parity, AMP step"
  echo "== $STEP"
  mkdir -p "$OUT/torch21"
  tests_k=(-k cuda)
  if environment "$OLDEST_PY" 0; then :; else
    status=$?
    [[ "$status" == 3 ]] || false
    echo "check_gpu: .venv-torch21's mmcv has no CUDA ops: its Mask R-CNN AMP step is left out"
    tests_k=(-k "cuda and not mask_rcnn")
  fi
  cuda_tests "$OLDEST_PY" "$OUT/torch21/pytest.log" "${tests_k[@]}"
fi

trap - ERR
echo "check_gpu: all steps passed; log in $OUT/check_gpu.log"
