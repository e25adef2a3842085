"""Static int8 quantization of the emotion CNN (models/emotion.onnx -> models/emotion-int8.onnx).

QDQ format, int8 weights per output channel, uint8 activations with ranges from MinMax
calibration on FER-2013 *training* images (never the test split). Weights use 7 bits
(reduce_range): x86 CPUs without VNNI multiply u8 x s8 pairs with a 16-bit saturating add, which
full-range weights can overflow (ONNX Runtime's documented advice).

    python models/quantize/quantize.py --calibration ../shared/data/fer2013/train [--per-class 60]

models/quantize/run.sh sets up the Python packages and writes the model card beside the model.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnx
from PIL import Image
from onnxruntime import __version__ as ORT_VERSION
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

LABELS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']
SIDE = 64


def face_tensor(path: str) -> np.ndarray:
    """A face crop as the classifier feeds it: grey, 64x64 bilinear, (p / 255 - 0.5) * 2, NHWC."""
    grey = Image.open(path).convert('L').resize((SIDE, SIDE), Image.BILINEAR)
    return ((np.asarray(grey, np.float32) / 255.0 - 0.5) * 2.0)[..., None]


def calibration_files(folder: str, per_class: int) -> list[str]:
    """The first `per_class` files of each class folder in name order: the same set on every machine."""
    files = []
    for label in LABELS:
        names = sorted(os.listdir(os.path.join(folder, label)))
        if len(names) < per_class:
            sys.exit(f'{folder}/{label} has {len(names)} images, fewer than --per-class {per_class}')
        files += [os.path.join(folder, label, n) for n in names[:per_class]]
    return files


class FaceBatches(CalibrationDataReader):
    def __init__(self, files: list[str], input_name: str, batch: int = 32):
        self.tensors = np.stack([face_tensor(f) for f in files])
        self.input_name = input_name
        self.batch = batch
        self.at = 0

    def get_next(self):
        if self.at >= len(self.tensors):
            return None
        out = {self.input_name: self.tensors[self.at:self.at + self.batch]}
        self.at += self.batch
        return out


def sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    models = os.path.dirname(here)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--src', default=os.path.join(models, 'emotion.onnx'), help='float32 model (default: models/emotion.onnx)')
    parser.add_argument('--out', default=os.path.join(models, 'emotion-int8.onnx'), help='quantized model (default: models/emotion-int8.onnx)')
    parser.add_argument('--calibration', required=True, help='FER-2013 training folder, one subfolder per class')
    parser.add_argument('--per-class', type=int, default=60, help='calibration images per class (default 60)')
    args = parser.parse_args()

    files = calibration_files(args.calibration, args.per_class)
    prepared = args.out + '.prep.onnx'
    quant_pre_process(args.src, prepared, skip_symbolic_shape=True)
    # The softmax stays in float: its probabilities then sum to 1 instead of to 1 +- k/255.
    softmax = [n.name for n in onnx.load(prepared).graph.node if n.op_type == 'Softmax']
    try:
        quantize_static(
            prepared, args.out, FaceBatches(files, 'input_1'),
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=softmax,
        )
    finally:
        os.remove(prepared)

    card_path = os.path.splitext(args.out)[0] + '.card.json'
    card = json.load(open(card_path)) if os.path.exists(card_path) else {}
    card.update({
        'name': 'emotion-int8',
        'file': os.path.basename(args.out),
        'sha256': sha256(args.out),
        'bytes': os.path.getsize(args.out),
        'description': 'The emotion CNN (emotion.onnx) with int8 weights and uint8 activations: the same inputs, outputs, labels and preprocessing.',
        'derivedFrom': {'file': os.path.basename(args.src), 'sha256': sha256(args.src)},
        'quantization': {
            'tool': f'onnxruntime.quantization {ORT_VERSION} (models/quantize/quantize.py)',
            'format': 'QDQ; weights int8 per output channel with 7-bit range (reduce_range); activations uint8 per tensor; the final softmax in float32',
            'calibration': f'MinMax over {len(files)} FER-2013 training images ({args.per_class} per class, the first in name order); no test image',
        },
    })
    with open(card_path, 'w') as f:
        f.write(json.dumps(card, indent=2) + '\n')
    print(f'wrote {args.out} ({os.path.getsize(args.out)} bytes) and {card_path}')


if __name__ == '__main__':
    main()
