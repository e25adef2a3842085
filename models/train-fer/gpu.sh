#!/usr/bin/env bash
# The paper's full-width VGG-16+SE on one GPU with no network (PyTorch with CUDA on the machine):
# the faces travel packed (.cache/fer-packed.npz.xz, 53 MiB, from pack.py), the run stops itself
# within --max-minutes (9 by default) and writes model.onnx, card.json, curve.svg under $OUT.
#   bash models/train-fer/gpu.sh [--width 1.0] [--max-minutes 9]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
packed="${EM_FER_PACKED:-$root/.cache/fer-packed.npz.xz}"
[ -f "$packed" ] || { echo "no packed faces at $packed: python3 models/train-fer/pack.py --out $packed" >&2; exit 1; }
out="${OUT:-$root/.cache}/fer-vgg-gpu"
python3 "$root/models/train-fer/train.py" --packed "$packed" --device cuda --width 1.0 --max-minutes 9 --out "$out" "$@"
