#!/usr/bin/env bash
# Create or refresh an environment with one of the two stacks mmparc is tested
# on, the ends of its supported range:
#
#   bash tools/setup_env.sh [default]   .venv          torch 2.13 (requirements/constraints.txt)
#   bash tools/setup_env.sh oldest      .venv-torch21  torch 2.1  (requirements/constraints-torch21.txt)
#
# (or MMPARC_STACK=default|oldest; MMPARC_VENV overrides the directory).  The
# stack's constraints file pins torch, torchvision and numpy; both share
# requirements/env.txt and mmcv 2.1.0 built here with ops.
#
# Idempotent: a stamp (hash of this script, requirements/env.txt and the
# stack's constraints) marks a finished set-up, so a second run returns at once.  The mmcv build (ops, ~10 min on
# 2 cores) is cached as a wheel outside the checkout, keyed by mmcv, torch and
# the Python ABI, because pip's own wheel cache is keyed by the sdist alone.
#
# mmcv's CUDA ops (RoIAlign, NMS, ... on the GPU) are built when a GPU is
# visible to torch and a CUDA toolkit (nvcc on PATH or in $CUDA_HOME/bin) is
# installed, or when FORCE_CUDA=1 (e.g. on a build node without a GPU);
# FORCE_CUDA=0 builds the CPU ops only.  The toolkit's major version must be
# the one torch was built with (torch.version.cuda).  That wheel is cached
# under its own key, which adds the toolkit release (and TORCH_CUDA_ARCH_LIST
# when set).  A machine with a toolkit but no GPU builds the CPU ops, as
# before.
#
# MMPARC_SETUP_DRY_RUN=1 prints the mmcv build decision and its cache
# directory for the existing .venv, and changes nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${1:-${MMPARC_STACK:-default}}"
case "$STACK" in
  default) CONSTRAINTS="$ROOT/requirements/constraints.txt"; VENV_NAME=.venv ;;
  oldest) CONSTRAINTS="$ROOT/requirements/constraints-torch21.txt"; VENV_NAME=.venv-torch21 ;;
  *) echo "[setup] unknown stack '$STACK': use 'default' or 'oldest'" >&2; exit 2 ;;
esac
VENV="${MMPARC_VENV:-$ROOT/$VENV_NAME}"
PYTHON_BIN="${MMPARC_PYTHON:-python3.11}"
# torch and torchvision: the exact pins of the stack's constraints file.
pinned() { sed -n "s/^$1==\([^ ;#]*\).*/\1/p" "$CONSTRAINTS"; }
TORCH_VERSION="$(pinned torch)"
TORCHVISION_VERSION="$(pinned torchvision)"
if [[ -z "$TORCH_VERSION" || -z "$TORCHVISION_VERSION" ]]; then
  echo "[setup] $CONSTRAINTS must pin torch==X and torchvision==Y" >&2
  exit 2
fi
MMCV_VERSION=2.1.0
OPENMIM_VERSION=0.3.9
CACHE="${MMPARC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmparc}"

step() { printf '\n[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { printf '\n[setup] FAILED at step: %s\n' "$CURRENT_STEP" >&2; }
trap fail ERR
CURRENT_STEP=start

# This machine's pip config prefers a local CPU-only torch wheel that no
# torchvision matches: keep it (and any extra local index) out of resolution.
export PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL=
export PIP_DISABLE_PIP_VERSION_CHECK=1

# mmcv: CPU or CUDA ops, and the wheel cache directory.  Needs torch in $1.
# Sets MMCV_OPS (cpu|cuda), CUDA_RELEASE and WHEEL_DIR; returns 1 with one
# line on stderr when the requested CUDA build cannot be made.
mmcv_plan() {
  local py="$1" torch_cuda gpu nvcc_bin="" abi torch_tag
  # One interpreter start: ABI tag, torch version tag, torch's CUDA, a visible GPU.
  read -r abi torch_tag torch_cuda gpu < <("$py" -c 'import sys, torch
print(f"cp{sys.version_info[0]}{sys.version_info[1]}", torch.__version__.replace("+", "_"),
      torch.version.cuda or "-", int(torch.cuda.is_available()))')
  [[ "$torch_cuda" == - ]] && torch_cuda=""
  WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$torch_tag-$abi"
  MMCV_OPS=cpu
  CUDA_RELEASE=""
  case "${FORCE_CUDA:-auto}" in
    0) return 0 ;;
    1|auto) ;;
    *) echo "[setup] FORCE_CUDA must be 0 or 1 (or unset), got '${FORCE_CUDA}'" >&2; return 1 ;;
  esac
  if [[ -n "${CUDA_HOME:-}" && -x "$CUDA_HOME/bin/nvcc" ]]; then
    nvcc_bin="$CUDA_HOME/bin/nvcc"
  elif command -v nvcc >/dev/null 2>&1; then
    nvcc_bin="$(command -v nvcc)"
  fi
  if [[ "${FORCE_CUDA:-auto}" == auto && ( "$gpu" != 1 || -z "$nvcc_bin" ) ]]; then
    return 0
  fi
  if [[ -z "$nvcc_bin" ]]; then
    echo "[setup] FORCE_CUDA=1 needs a CUDA toolkit: no nvcc on PATH or in \$CUDA_HOME/bin" >&2
    return 1
  fi
  CUDA_RELEASE="$("$nvcc_bin" --version | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')"
  if [[ -z "$CUDA_RELEASE" ]]; then
    echo "[setup] cannot read the CUDA release from '$nvcc_bin --version'" >&2
    return 1
  fi
  if [[ -z "$torch_cuda" ]]; then
    echo "[setup] torch $torch_tag is a CPU-only build; mmcv's CUDA ops need a CUDA build of torch" >&2
    return 1
  fi
  if [[ "${CUDA_RELEASE%%.*}" != "${torch_cuda%%.*}" ]]; then
    echo "[setup] nvcc ($nvcc_bin) is CUDA $CUDA_RELEASE but torch was built with CUDA $torch_cuda;"\
         "install toolkit ${torch_cuda%%.*}.x or point CUDA_HOME at it" >&2
    return 1
  fi
  MMCV_OPS=cuda
  WHEEL_DIR="$WHEEL_DIR-cuda$CUDA_RELEASE"
  if [[ -n "${TORCH_CUDA_ARCH_LIST:-}" ]]; then
    WHEEL_DIR="$WHEEL_DIR-arch$(echo "$TORCH_CUDA_ARCH_LIST" | tr -c 'A-Za-z0-9.+\n' '_')"
  fi
}

if [[ "${MMPARC_SETUP_DRY_RUN:-0}" == 1 ]]; then
  trap - ERR
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "[setup dry-run] no environment at $VENV yet: the mmcv plan needs its torch" >&2
    exit 1
  fi
  mmcv_plan "$VENV/bin/python" || exit 1
  echo "[setup dry-run] mmcv $MMCV_VERSION ops: $MMCV_OPS${CUDA_RELEASE:+ (CUDA $CUDA_RELEASE, FORCE_CUDA=1)}"
  echo "[setup dry-run] mmcv wheel cache: $WHEEL_DIR"
  exit 0
fi

stamp_key="$(cat "$0" "$ROOT/requirements/env.txt" "$ROOT/requirements/deploy.txt" "$CONSTRAINTS" \
  | sha256sum | cut -c1-16)"
STAMP="$VENV/.mmparc-env-$stamp_key"
if [[ -f "$STAMP" ]]; then
  echo "[setup] environment up to date ($VENV)"
  exit 0
fi

CURRENT_STEP="create virtual environment"
if [[ ! -x "$VENV/bin/python" ]]; then
  step "$CURRENT_STEP at $VENV ($STACK stack: torch $TORCH_VERSION)"
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
mmcv_plan "$PY"
CURRENT_STEP="mmcv==$MMCV_VERSION with $MMCV_OPS ops"
build_env=(MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)")
reinstall=()
# An installed mmcv counts only with the ops this machine needs.
ops_check="import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')"
if [[ "$MMCV_OPS" == cuda ]]; then
  # torch's extension builder finds the toolkit as mmcv_plan did ($CUDA_HOME, then nvcc on PATH).
  build_env+=(FORCE_CUDA=1)
  ops_check="$ops_check or mmcv.ops.get_compiling_cuda_version() == 'not available'"
  reinstall=(--force-reinstall)  # over a CPU-ops mmcv of the same version
fi
if ! "$PY" -c "$ops_check" 2>/dev/null; then
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    step "building $CURRENT_STEP from source into $WHEEL_DIR;"\
         "this takes about 10 minutes on 2 cores (CPU ops; longer with CUDA) and happens"\
         "once per torch/Python/toolkit"
    mkdir -p "$WHEEL_DIR"
    tmp="$(mktemp -d)"
    # Build deps of mmcv's setup.py (pkg_resources, torch) come from this venv.
    "${PIP[@]}" -q packaging addict yapf pyyaml opencv-python "numpy<2"
    env "${build_env[@]}" "$PY" -m pip wheel --no-deps \
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
  "${PIP[@]}" -q "${reinstall[@]}" "$WHEEL_DIR"/mmcv-*.whl
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

CURRENT_STEP="mmdeploy (requirements/deploy.txt, without resolving its protobuf<=3.20.2 pin)"
step "$CURRENT_STEP"
# The file lists everything mmdeploy's ONNX Runtime path imports beyond the
# stack above; see its comments for why nothing is resolved.
"${PIP[@]}" -q --no-deps -r "$ROOT/requirements/deploy.txt"

CURRENT_STEP="mmparc (editable)"
step "$CURRENT_STEP"
"${PIP[@]}" -q --no-build-isolation --no-deps -e "$ROOT"

CURRENT_STEP="import check"
step "$CURRENT_STEP"
MMPARC_TORCH="$TORCH_VERSION" MMPARC_TORCHVISION="$TORCHVISION_VERSION" "$PY" - <<'PY'
import os
import setuptools, torch, torchvision, mmcv, mmcv.ops, mmengine, mmdet, mmseg, mmpretrain, mim
assert 77 <= int(setuptools.__version__.split('.')[0]) < 81, setuptools.__version__
for module, pin in ((torch, os.environ['MMPARC_TORCH']),
                    (torchvision, os.environ['MMPARC_TORCHVISION'])):
    assert module.__version__.split('+')[0] == pin, (module.__name__, module.__version__, pin)
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, mmcv {mmcv.__version__}, "
      f"mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, "
      f"mmpretrain {mmpretrain.__version__}, setuptools {setuptools.__version__}")
PY

rm -f "$VENV"/.mmparc-env-*
touch "$STAMP"
step "environment ready at $VENV"
