#!/usr/bin/env bash
# Publishes a finished student run (models/train-fer/student.sh; default .cache/fer-student) as
# served emotion models, with their cards:
#   models/emotion-student.onnx         the student (48x48 in), float32
#   models/emotion-student-int8.onnx    the same, quantized like the others (models/quantize)
#   models/emotion-student-fer.onnx     mean of the student (int8) and fer's model on the input
#                                       resized to 64x64 in the graph (models/fer/ensemble.py)
#   models/emotion-student48.onnx       mean of the student (int8) and emotion48-int8.onnx, both at 48x48
# and the run's card and curve under models/train-fer/runs/student-cpu-<date>/; then measures the
# four on PublicTest into their cards (npm run models:eval -- --models student,...).
#   bash models/train-fer/publish-student.sh [run folder]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
run="${1:-$root/.cache/fer-student}"
py="$root/.cache/quantize-venv/bin/python"
m="$root/models"
[ -f "$run/model.onnx" ] && [ -f "$run/card.json" ] || { echo "publish-student: no finished run in $run (model.onnx and card.json)" >&2; exit 2; }
"$py" -c 'import json, sys; c = json.load(open(sys.argv[1])); sys.exit(0 if c["finished"] else "publish-student: the run in " + sys.argv[1] + " has not finished its schedule (" + str(c["epochs"]) + " epochs): run models:student again first")' "$run/card.json"
cp "$run/model.onnx" "$m/emotion-student.onnx"
"$py" "$m/quantize/quantize.py" --src "$m/emotion-student.onnx" --out "$m/emotion-student-int8.onnx" --calibration "$root/../shared/data/fer2013/train"
"$py" "$m/fer/ensemble.py" --a "$m/emotion-student-int8.onnx" --b "$m/emotion-fer.onnx" --out "$m/emotion-student-fer.onnx"
"$py" "$m/fer/ensemble.py" --a "$m/emotion-student-int8.onnx" --b "$m/emotion48-int8.onnx" --out "$m/emotion-student48.onnx"
"$py" "$root/models/train-fer/student_cards.py" --run "$run" --models "$m" --runs "$root/models/train-fer/runs"
cd "$root" && npx tsx models/evaluate-card.ts --models student,student-int8,student-fer,student48
