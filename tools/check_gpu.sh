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
#      ConvNeXt-T, fp32 / fp16 / bf16, 224 b64 and 800x1216 b2, one table.
#
# Usage: bash tools/check_gpu.sh [OUT_DIR]   (default outputs/gpu_check)
# Writes OUT_DIR/check_gpu.log, OUT_DIR/pytest.log and OUT_DIR/benchmark/.
# Exit status: 0 when every step passed; the first failing step is named.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${MMPARC_PYTHON:-$ROOT/.venv/bin/python}"
OUT="${1:-$ROOT/outputs/gpu_check}"
STEP=start

fail() { printf 'check_gpu: FAILED at step: %s\n' "$STEP" >&2; }
trap fail ERR

if [[ ! -x "$PY" ]]; then
  trap - ERR
  echo "check_gpu: no Python at $PY; run 'make env' first (or set MMPARC_PYTHON)" >&2
  exit 2
fi
STEP="a CUDA device"
if ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  trap - ERR
  echo "check_gpu: torch sees no CUDA device here; run this on a GPU machine" >&2
  exit 2
fi
mkdir -p "$OUT"
exec > >(tee "$OUT/check_gpu.log") 2>&1
cd "$ROOT"

STEP="1/4 environment"
echo "== $STEP"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PY" - <<'PY'
import torch, mmcv
print(f'torch {torch.__version__} (CUDA {torch.version.cuda}), GPU {torch.cuda.get_device_name(0)}, '
      f'mmcv {mmcv.__version__}')
try:  # mmcv built without its CUDA ops fails here, not mid-training
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]], device='cuda')
    nms(boxes, torch.tensor([0.9, 0.8], device='cuda'), 0.5)
    print('mmcv CUDA ops: available')
except Exception as error:  # noqa: BLE001  (one line, then a failing exit)
    raise SystemExit(f'mmcv CUDA ops unavailable ({error}); rebuild the environment on this '
                     'machine with nvcc present (tools/setup_env.sh, FORCE_CUDA branch)')
PY

STEP="2-3/4 CUDA parity and the AMP training step (pytest -k cuda)"
echo "== $STEP"
timeout 240 "$PY" -m pytest -q -n 0 -rs -p no:cacheprovider -k cuda \
  tests/test_ops.py tests/test_model_paths.py tests/test_gpu_check.py 2>&1 | tee "$OUT/pytest.log"
if grep -Eq '[0-9]+ skipped' "$OUT/pytest.log"; then
  echo "check_gpu: CUDA tests were skipped on a CUDA machine (see $OUT/pytest.log)"
  false
fi
grep -Eq '[0-9]+ passed' "$OUT/pytest.log"

STEP="4/4 benchmark (tools/analysis_tools/benchmark.py --device cuda)"
echo "== $STEP"
timeout 300 "$PY" tools/analysis_tools/benchmark.py --device cuda --threads 0 \
  --models convnext fixed global --dtypes fp32 fp16 bf16 --configs "224 b64" "800x1216 b2" \
  --no-memory --out "$OUT/benchmark"

trap - ERR
echo "check_gpu: all steps passed; log in $OUT/check_gpu.log"
