#!/usr/bin/env bash
# Create or refresh the project's .venv with the stack mmparc is tested on.
#
# Idempotent: a stamp (hash of this script and requirements/) marks a finished
# set-up, so a second run returns at once.  The mmcv build (ops, ~10 min on
# 2 cores) is cached as a wheel outside the checkout, keyed by mmcv, torch and
# the Python ABI, because pip's own wheel cache is keyed by the sdist alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMPARC_VENV:-$ROOT/.venv}"
PYTHON_BIN="${MMPARC_PYTHON:-python3.11}"
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
MMCV_VERSION=2.1.0
OPENMIM_VERSION=0.3.9
CACHE="${MMPARC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmparc}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"

step() { printf '\n[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { printf '\n[setup] FAILED at step: %s\n' "$CURRENT_STEP" >&2; }
trap fail ERR
CURRENT_STEP=start

# This machine's pip config prefers a local CPU-only torch wheel that no
# torchvision matches: keep it (and any extra local index) out of resolution.
export PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL=
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp_key="$(cat "$0" "$ROOT"/requirements/*.txt | sha256sum | cut -c1-16)"
STAMP="$VENV/.mmparc-env-$stamp_key"
if [[ -f "$STAMP" ]]; then
  echo "[setup] environment up to date ($VENV)"
  exit 0
fi

CURRENT_STEP="create virtual environment"
if [[ ! -x "$VENV/bin/python" ]]; then
  step "$CURRENT_STEP at $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --progress-bar off -c "$CONSTRAINTS")

CURRENT_STEP="base tooling (pip, setuptools>=77,<81, wheel)"
step "$CURRENT_STEP"
"$PY" -m pip install --progress-bar off -q -U pip "setuptools>=77,<81" wheel ninja

CURRENT_STEP="torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION (registry builds; large download the first time)"
step "$CURRENT_STEP"
"${PIP[@]}" -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

CURRENT_STEP="mmcv==$MMCV_VERSION with ops"
abi="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
torch_tag="$("$PY" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$torch_tag-$abi"
if ! "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    step "building $CURRENT_STEP from source against torch $torch_tag ($abi);"\
         "this takes about 10 minutes on 2 cores and happens once per torch/Python"
    mkdir -p "$WHEEL_DIR"
    tmp="$(mktemp -d)"
    # Build deps of mmcv's setup.py (pkg_resources, torch) come from this venv.
    "${PIP[@]}" -q packaging addict yapf pyyaml opencv-python "numpy<2"
    MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" "$PY" -m pip wheel --no-deps \
      --no-build-isolation --no-cache-dir --no-binary mmcv -w "$tmp" \
      "mmcv==$MMCV_VERSION" 2>&1 | while IFS= read -r line; do
        # One progress line per compiled file keeps the log readable.
        case "$line" in *"Building wheel"*|*"Created wheel"*|*"error"*|*"Error"*) echo "  $line";; esac
      done
    test "${PIPESTATUS[0]}" -eq 0
    mv "$tmp"/mmcv-*.whl "$WHEEL_DIR"/
    rm -rf "$tmp"
  else
    step "installing cached mmcv wheel from $WHEEL_DIR"
  fi
  "${PIP[@]}" -q "$WHEEL_DIR"/mmcv-*.whl
fi

CURRENT_STEP="OpenMMLab stack and test tools (requirements/env.txt)"
step "$CURRENT_STEP"
"${PIP[@]}" -q -r "$ROOT/requirements/env.txt"

CURRENT_STEP="openmim==$OPENMIM_VERSION (without its setuptools-pinning dataset extras)"
step "$CURRENT_STEP"
# openmim -> opendatalab -> openxlab pins an ancient setuptools; mim's
# train/test/run commands need none of that chain.
"${PIP[@]}" -q --no-deps "openmim==$OPENMIM_VERSION"
"${PIP[@]}" -q Click colorama model-index pandas requests rich tabulate

CURRENT_STEP="mmparc (editable)"
step "$CURRENT_STEP"
"${PIP[@]}" -q --no-build-isolation --no-deps -e "$ROOT"

CURRENT_STEP="import check"
step "$CURRENT_STEP"
"$PY" - <<'PY'
import setuptools, torch, torchvision, mmcv, mmcv.ops, mmengine, mmdet, mmseg, mmpretrain, mim
assert 77 <= int(setuptools.__version__.split('.')[0]) < 81, setuptools.__version__
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, mmcv {mmcv.__version__}, "
      f"mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, "
      f"mmpretrain {mmpretrain.__version__}, setuptools {setuptools.__version__}")
PY

rm -f "$VENV"/.mmparc-env-*
touch "$STAMP"
step "environment ready at $VENV"
