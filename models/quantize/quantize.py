"""Static int8 quantization of an emotion CNN (models/emotion.onnx -> models/emotion-int8.onnx, and
models/emotion48.onnx -> models/emotion48-int8.onnx with --src/--out).

QDQ format, int8 weights per output channel, uint8 activations with ranges from MinMax
calibration on FER-2013 *training* images (never the test split). Weights use 7 bits
(reduce_range): x86 CPUs without VNNI multiply u8 x s8 pairs with a 16-bit saturating add, which
full-range weights can overflow (ONNX Runtime's documented advice).

    python models/quantize/quantize.py --calibration ../shared/data/fer2013/train [--per-class 60] [--src M.onnx --out M-int8.onnx]

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


def face_tensor(path: str, side: int) -> np.ndarray:
    """A face crop as the classifier feeds it: grey, side x side bilinear, (p / 255 - 0.5) * 2, NHWC."""
    grey = Image.open(path).convert('L')
    if grey.size != (side, side):
        grey = grey.resize((side, side), Image.BILINEAR)
    return ((np.asarray(grey, np.float32) / 255.0 - 0.5) * 2.0)[..., None]


def input_side(model_path: str) -> int:
    """The side of the model's square NHWC input."""
    dims = onnx.load(model_path).graph.input[0].type.tensor_type.shape.dim
    return dims[1].dim_value


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
    def __init__(self, files: list[str], input_name: str, side: int, batch: int = 32):
        self.tensors = np.stack([face_tensor(f, side) for f in files])
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
            prepared, args.out, FaceBatches(files, onnx.load(args.src).graph.input[0].name, input_side(args.src)),
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=softmax,
        )
    finally:
        os.remove(prepared)

    card_path = os.path.splitext(args.out)[0] + '.card.json'
    card = json.load(open(card_path)) if os.path.exists(card_path) else {}
    card.update({
        'name': os.path.splitext(os.path.basename(args.out))[0],
        'file': os.path.basename(args.out),
        'sha256': sha256(args.out),
        'bytes': os.path.getsize(args.out),
        'description': f'The emotion CNN ({os.path.basename(args.src)}) with int8 weights and uint8 activations: the same inputs, outputs, labels and preprocessing.',
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
