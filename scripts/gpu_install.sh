#!/usr/bin/env bash
# Install the harness on a machine that brings its own torch (a CUDA image, a cluster node):
# the project's pinned dependencies except torch, with --no-deps so that pip never replaces the
# machine's torch (nor pulls a CUDA wheel of its own), then the project itself.
#
#   scripts/gpu_install.sh                          # every pin, from PyPI
#   scripts/gpu_install.sh --only-missing           # keep what the image has; add what it lacks
#   scripts/gpu_install.sh --wheels DIR [...]       # offline, from wheels (make wheels, elsewhere)
#
# requirements/gpu.txt is the whole pinned set (pyproject.toml's pins and what they need) without
# torch; tests/test_packaging.py checks that it agrees with pyproject.toml. With --only-missing,
# packages the image already has stay at its versions, and the ones that differ from the pins are
# listed (the harness has run on such an image: README, "On a GPU machine").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
FIND=()
ONLY_MISSING=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --wheels)
            [[ -d "${2:-}" ]] || { echo "gpu_install: --wheels needs a folder of wheels, got '${2:-}'" >&2; exit 2; }
            FIND=(--no-index --find-links "$2"); shift 2 ;;
        --only-missing) ONLY_MISSING=1; shift ;;
        *) echo "usage: scripts/gpu_install.sh [--only-missing] [--wheels DIR]" >&2; exit 2 ;;
    esac
done
"$PYTHON" -c "import torch" 2>/dev/null || {
    echo "gpu_install: this Python has no torch; install your platform's torch first (or use make venv on a CPU)" >&2
    exit 2
}
REQUIREMENTS=requirements/gpu.txt
if [[ $ONLY_MISSING == 1 ]]; then
    REQUIREMENTS="$(mktemp)"
    "$PYTHON" scripts/missing_requirements.py requirements/gpu.txt > "$REQUIREMENTS"
fi
"$PYTHON" -m pip install --no-deps "${FIND[@]}" -r "$REQUIREMENTS"
"$PYTHON" -m pip install --no-deps --no-build-isolation -e .
"$PYTHON" -c "import torch, harness.config.experiment, training; print('harness installed; torch', torch.__version__, \
'with CUDA' if torch.cuda.is_available() else 'without CUDA')"
