#!/usr/bin/env bash
# Installs the training toolkit's Python environment (training/python-env.sh: Debian's CPU-only
# PyTorch, NumPy, ONNX and OpenBLAS) and runs it:
#   bash training/run.sh [--size full|small|smoke] [run.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
source training/python-env.sh
exec $PY training/run.py "$@"
