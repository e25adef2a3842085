#!/usr/bin/env bash
# Builds models/emotion-int8.onnx from models/emotion.onnx: a Python virtual environment under
# .cache/ with the pinned packages from PyPI, the quantizer, then the accuracy of both models on
# FER-2013 PublicTest written into their cards (npm run models:eval).
#   npm run models:quantize [-- --calibration <train folder>] [--per-class 60]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.cache/quantize-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r "$root/models/quantize/requirements.txt"
fi
args=("$@")
if [[ " ${args[*]-} " != *" --calibration "* ]]; then args+=(--calibration "$root/../shared/data/fer2013/train"); fi
"$venv/bin/python" "$root/models/quantize/quantize.py" "${args[@]}"
