#!/usr/bin/env bash
# Builds the 48x48 emotion models: fine-tunes models/emotion.onnx for 48x48 input on the FER-2013
# training images (models/emotion48.onnx and its card), quantizes it (models/emotion48-int8.onnx),
# and measures every emotion model on FER-2013 PublicTest into its card.
#   npm run models:finetune [-- --epochs 12 --lr 2e-4 ...]   (finetune.py --help lists them; these are the defaults)
# About 25 minutes on two CPU cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
source training/python-env.sh
args=("$@")
if [[ " ${args[*]-} " == *" --help "* || " ${args[*]-} " == *" -h "* ]]; then exec $PY models/finetune/finetune.py --help; fi
if [[ " ${args[*]-} " != *" --data "* ]]; then args+=(--data "../shared/data/fer2013/train"); fi
$PY models/finetune/finetune.py --out models/emotion48.onnx "${args[@]}"
bash models/quantize/run.sh --src models/emotion48.onnx --out models/emotion48-int8.onnx
npx tsx models/evaluate-card.ts
