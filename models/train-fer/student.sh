#!/usr/bin/env bash
# The CPU student (npm run models:student): models/train-fer/train.py --arch resnet, distilled from
# the float ensemble (models/emotion-ensemble.onnx) on the same augmented faces, into
# .cache/fer-student. Resumable: run it again after an interruption and it goes on from the last
# epoch's checkpoint. The teacher runs in ONNX Runtime, installed here (no dependencies: Debian's
# numpy serves it) under .cache/train-ort with the pip of the quantizer's environment.
#   npm run models:student [-- --max-minutes 30 ...]   (train.py --help lists them; 26 epochs, about 50 minutes here)
#   npm run models:student -- --publish    the finished run to models/emotion-student(-int8).onnx, cards, PublicTest
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
source training/python-env.sh
out="${EM_STUDENT_OUT:-.cache/fer-student}"
if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then
  sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  echo; echo "train.py's options (student.sh passes --arch resnet --teacher models/emotion-ensemble.onnx --out $out; yours come after and win):"
  exec $PY models/train-fer/train.py --help
fi
if [ ! -d .cache/train-ort/onnxruntime ]; then
  if [ ! -x .cache/quantize-venv/bin/pip ]; then
    python3 -m venv .cache/quantize-venv
    .cache/quantize-venv/bin/pip install --quiet -r models/quantize/requirements.txt
  fi
  .cache/quantize-venv/bin/pip install --quiet --no-deps --target .cache/train-ort "$(grep '^onnxruntime==' models/quantize/requirements.txt)"
fi
if [[ " $* " == *" --publish "* ]]; then
  exec bash models/train-fer/publish-student.sh "$out"
fi
PYTHONPATH="$root/.cache/train-ort" exec $PY models/train-fer/train.py --arch resnet --teacher models/emotion-ensemble.onnx --out "$out" "$@"
