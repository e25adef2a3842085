"""
Fine-tunes the emotion CNN (models/emotion.onnx, trained at 64x64) for 48x48 input, the size of the
crops edge clients send, so that the classifier no longer upsamples every crop and runs the model
on 78% more pixels than it has.

The ONNX graph runs in PyTorch as it is (OnnxGraph: its convolutions, pooling, additions and
activations, with the initializers as parameters); the student starts from the packaged weights
and learns from the FER-2013 training labels and from the original model's answers on the same
faces upsampled to 64x64 (knowledge distillation). One tenth of the training images (by a hash of
their file name) is held out for choosing the epoch; no test image is read. The result is the
same graph with the new weights and a 48x48 input, and its model card (how it was made).

  python3 models/finetune/finetune.py --data ../shared/data/fer2013/train --out models/emotion48.onnx
"""
import argparse, hashlib, json, math, os, time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from PIL import Image

LABELS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']


def same_pad(x, kernel, strides, auto_pad, value, pads=None):
    """The padding of ONNX's auto_pad for this input size (SAME_UPPER: the odd pixel at the end),
    or the explicit `pads` ([h begin, w begin, h end, w end]) where the node gives them."""
    if auto_pad in (b'VALID', 'VALID', b'NOTSET', 'NOTSET'):
        if pads and any(pads):
            return F.pad(x, [pads[1], pads[3], pads[0], pads[2]], value=value)
        return x
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(strides)):
        total = max(0, (math.ceil(size / s) - 1) * s + k - size)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class OnnxGraph(torch.nn.Module):
    """An emotion graph in PyTorch: by default the logits that feed its final softmax; with
    output=True the graph's output itself (an ensemble's mean probabilities, for instance)."""

    OPS = {'Transpose', 'Conv', 'MaxPool', 'Relu', 'Add', 'Mul', 'ReduceMean', 'Softmax', 'Identity', 'BatchNormalization', 'GlobalAveragePool', 'Flatten'}

    def __init__(self, model):
        super().__init__()
        g = model.graph
        unknown = {n.op_type for n in g.node} - self.OPS
        if unknown:
            raise SystemExit(f'the graph has ops this runner does not know: {sorted(unknown)}')
        self.nodes = [(n.op_type, list(n.input), list(n.output), {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}) for n in g.node]
        self.names = [i.name for i in g.initializer]
        self.index = {name: k for k, name in enumerate(self.names)}
        self.weights = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(numpy_helper.to_array(i).copy())) for i in g.initializer])
        self.input = g.input[0].name
        self.output = g.output[0].name

    def forward(self, x, output=False):
        env = {self.input: x}
        get = lambda name: self.weights[self.index[name]] if name in self.index else env[name]
        logits = None
        for op, ins, outs, at in self.nodes:
            a = get(ins[0])
            if op == 'Transpose':
                y = a.permute(*at['perm'])
            elif op == 'Conv':
                k, s = at['kernel_shape'], at.get('strides', [1, 1])
                y = F.conv2d(same_pad(a, k, s, at.get('auto_pad', b'NOTSET'), 0.0, at.get('pads')), get(ins[1]), get(ins[2]) if len(ins) > 2 else None, stride=s, groups=at.get('group', 1))
            elif op == 'MaxPool':
                k, s = at['kernel_shape'], at.get('strides', [1, 1])
                y = F.max_pool2d(same_pad(a, k, s, at.get('auto_pad', b'NOTSET'), float('-inf'), at.get('pads')), k, s)
            elif op == 'Relu':
                y = F.relu(a)
            elif op == 'Add':
                y = a + get(ins[1])
            elif op == 'Mul':
                y = a * get(ins[1])
            elif op == 'BatchNormalization':
                y = F.batch_norm(a, get(ins[3]), get(ins[4]), get(ins[1]), get(ins[2]), False, 0.0, at.get('epsilon', 1e-5))
            elif op == 'GlobalAveragePool':
                y = a.mean(dim=(2, 3), keepdim=True)
            elif op == 'Flatten':
                y = a.flatten(at.get('axis', 1))
            elif op == 'ReduceMean':
                y = a.mean(dim=at['axes'], keepdim=bool(at.get('keepdims', 1)))
            elif op == 'Softmax':
                logits = a
                y = F.softmax(a, dim=at.get('axis', -1))
            else:
                y = a
            env[outs[0]] = y
        return env[self.output] if output else logits


def load_faces(root, cache):
    """Every training face as uint8 48x48, its label, and whether it is held out (1 in 10 by name)."""
    if os.path.exists(cache):
        z = np.load(cache)
        if str(z['root']) == os.path.abspath(root):
            return z['x'], z['y'], z['held']
    xs, ys, held = [], [], []
    for label, name in enumerate(LABELS):
        files = sorted(os.listdir(os.path.join(root, name)))
        for f in files:
            img = Image.open(os.path.join(root, name, f)).convert('L')
            if img.size != (48, 48):
                img = img.resize((48, 48), Image.BILINEAR)
            xs.append(np.asarray(img, dtype=np.uint8))
            ys.append(label)
            held.append(hashlib.sha1(f.encode()).digest()[0] % 10 == 0)
    x, y, h = np.stack(xs), np.array(ys, dtype=np.int64), np.array(held)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    np.savez(cache, x=x, y=y, held=h, root=os.path.abspath(root))
    return x, y, h


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def normalise(u8):
    return (u8.float() / 255.0 - 0.5) * 2.0


def upsample64(u8):
    """48x48 -> 64x64 bilinear with half-pixel centres, rounded to 8 bits, as the classifier resizes."""
    up = F.interpolate(u8.float().unsqueeze(1), size=(64, 64), mode='bilinear', align_corners=False).squeeze(1)
    return up.round().clamp(0, 255)


@torch.no_grad()
def predict(net, u8, size, batch=512):
    out = []
    for i in range(0, len(u8), batch):
        b = u8[i:i + batch]
        if size == 64:
            b = upsample64(b)
        out.append(net(normalise(b).unsqueeze(-1)))
    return torch.cat(out)


def augment(u8):
    """One random affine per face, as detector boxes and heads wander: rotation up to 10 degrees,
    scale 0.9-1.1, shift up to 4 pixels; edges replicated, rounded back to 8-bit levels."""
    n = len(u8)
    angle = (torch.rand(n) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(n) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2) * 2 - 1) * (4 / 24)  # in [-1, 1] units: 24 pixels per unit at 48x48
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, (n, 1, 48, 48), align_corners=False)
    out = F.grid_sample(u8.float().unsqueeze(1), grid, mode='bilinear', padding_mode='border', align_corners=False)
    return out.squeeze(1).round()


def accuracy(logits, y):
    return (logits.argmax(1) == y).float().mean().item()


def write_card(out_path, teacher_path, f):
    """The model card beside the fine-tuned model: what it is, where it comes from and how it was made."""
    card_path = os.path.splitext(out_path)[0] + '.card.json'
    teacher_card = os.path.splitext(teacher_path)[0] + '.card.json'
    base = json.load(open(teacher_card)) if os.path.exists(teacher_card) else {}
    card = json.load(open(card_path)) if os.path.exists(card_path) else {}
    card.update({
        'name': os.path.splitext(os.path.basename(out_path))[0],
        'version': f"{base.get('version', 'emotion')}-ft48",
        'file': os.path.basename(out_path),
        'sha256': sha256(out_path),
        'bytes': os.path.getsize(out_path),
        'description': f'The emotion CNN of {os.path.basename(teacher_path)} (same graph, labels and outputs) fine-tuned for 48x48 input, the size of the crops edge clients send.',
        'inputs': [{'name': onnx.load(out_path).graph.input[0].name, 'shape': ['batch', 48, 48, 1], 'range': 'grey, (p / 255 - 0.5) * 2, in [-1, 1]'}],
        'outputs': base.get('outputs'),
        'labels': LABELS,
        'preprocessing': [('resize to 48x48 (bilinear; an edge crop of 48x48 is used as it is)' if step.startswith('resize') else step) for step in base.get('preprocessing', [])],
        'derivedFrom': {'file': os.path.basename(teacher_path), 'sha256': sha256(teacher_path)},
        'fineTuning': {
            'tool': f'PyTorch {torch.__version__} (models/finetune/finetune.py), the ONNX graph run as it is',
            'data': f"FER-2013 training images ({f['trainingFaces']}; {f['heldOutFaces']} more, one in ten by a hash of the file name, held out to choose the epoch); no test image",
            'loss': f"{f['alpha']} x cross-entropy with the labels + {1 - f['alpha']:.2g} x distillation from {os.path.basename(teacher_path)} on the same faces at 64x64 (temperature {f['temperature']})",
            'augmentation': 'horizontal mirror; one random affine per face: rotation up to 10 degrees, scale 0.9-1.1, shift up to 4 pixels',
            'schedule': f"AdamW, one-cycle learning rate up to {f['lr']}, batch {f['batch']}, {f['epochs']} epochs, seed {f['seed']}; kept epoch {f['keptEpoch']}",
            'heldOutAccuracy': {
                'this': round(f['heldOutAccuracy'], 4), 'teacherAt64': round(f['teacherHeldOutAccuracy64'], 4), 'teacherOn48AsItIs': round(f['teacherHeldOutAccuracy48'], 4),
                'caveat': 'the teacher (and so the student\'s starting point) was trained on these images by its authors, so these figures are flattered; they only choose the epoch',
            },
        },
        'license': base.get('license'),
        'origin': f"{base.get('origin', '')}; fine-tuned for 48x48 input by EmotionMuse",
    })
    with open(card_path, 'w') as fh:
        fh.write(json.dumps(card, indent=2) + '\n')
    return card_path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', required=True, help='FER-2013 training images, one folder per label')
    ap.add_argument('--teacher', default='models/emotion.onnx', help='the 64x64 model to start from and learn from (default: %(default)s)')
    ap.add_argument('--out', default='models/emotion48.onnx', help='the fine-tuned model; its card goes beside it (default: %(default)s)')
    ap.add_argument('--epochs', type=int, default=12, help='passes over the training faces; the best on the held-out faces is kept (default: %(default)s)')
    ap.add_argument('--batch', type=int, default=64, help='faces per step (default: %(default)s)')
    ap.add_argument('--lr', type=float, default=2e-4, help='peak learning rate of the one-cycle schedule (default: %(default)s)')
    ap.add_argument('--alpha', type=float, default=0.5, help='weight of the labels; the rest is the teacher')
    ap.add_argument('--temperature', type=float, default=2.0, help='softens both models\' answers in the distillation term (default: %(default)s)')
    ap.add_argument('--threads', type=int, default=os.cpu_count(), help='PyTorch threads (default: the cores, %(default)s)')
    ap.add_argument('--seed', type=int, default=7, help='random seed (default: %(default)s)')
    ap.add_argument('--limit', type=int, default=0, help='use only this many training faces (a smoke run)')
    ap.add_argument('--cache', default='.cache/finetune/fer-train.npz', help='the decoded faces (rebuilt when --data changes); the teacher\'s answers are kept beside it')
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)

    t0 = time.time()
    x, y, held = load_faces(args.data, args.cache)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    train_idx = np.flatnonzero(~held)
    val_idx = np.flatnonzero(held)
    if args.limit:
        train_idx = np.random.permutation(train_idx)[:args.limit]
        val_idx = val_idx[: max(200, args.limit // 10)]
    print(f'faces: {len(train_idx)} for training, {len(val_idx)} held out ({time.time() - t0:.0f} s)', flush=True)

    model = onnx.load(args.teacher)
    teacher = OnnxGraph(model).eval()
    # The teacher's answers at its own size, for every face and its mirror image (kept in the cache:
    # they depend only on the teacher and the faces).
    t0 = time.time()
    subset = f'limit{args.limit}-seed{args.seed}' if args.limit else 'all'
    teacher_cache = os.path.join(os.path.dirname(args.cache), f'teacher-{sha256(args.teacher)[:12]}-{sha256(args.cache)[:12]}-{subset}.npz')
    if os.path.exists(teacher_cache):
        z = np.load(teacher_cache)
        soft, soft_flip = torch.from_numpy(z['soft']), torch.from_numpy(z['soft_flip'])
        val_teacher64, val_teacher48 = float(z['val64']), float(z['val48'])
    else:
        xt = x[train_idx]
        soft = predict(teacher, xt, 64)
        soft_flip = predict(teacher, xt.flip(-1), 64)
        val_teacher64 = accuracy(predict(teacher, x[val_idx], 64), y[val_idx])
        val_teacher48 = accuracy(predict(teacher, x[val_idx], 48), y[val_idx])
        np.savez(teacher_cache, soft=soft.numpy(), soft_flip=soft_flip.numpy(), val64=val_teacher64, val48=val_teacher48)
    xt = x[train_idx]
    print(f'teacher on the held-out faces: {val_teacher64:.4f} at 64x64, {val_teacher48:.4f} on the 48x48 crops as they are ({time.time() - t0:.0f} s)', flush=True)

    student = OnnxGraph(model).train()
    opt = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * math.ceil(len(train_idx) / args.batch)
    # a tenth of the steps warming up (at least two: OneCycleLR divides by the warm-up's length)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=max(0.1, 2.5 / steps))
    yt = y[train_idx]
    T = args.temperature
    best = (val_teacher48, -1, [w.detach().clone() for w in student.weights])
    for epoch in range(args.epochs):
        t0 = time.time()
        order = torch.randperm(len(train_idx))
        total, seen = 0.0, 0
        for i in range(0, len(order), args.batch):
            b = order[i:i + args.batch]
            flip = torch.rand(len(b)) < 0.5
            img = augment(torch.where(flip[:, None, None], xt[b].flip(-1), xt[b]))
            target = torch.where(flip[:, None], soft_flip[b], soft[b])
            logits = student(normalise(img).unsqueeze(-1))
            hard = F.cross_entropy(logits, yt[b])
            distil = F.kl_div(F.log_softmax(logits / T, 1), F.softmax(target / T, 1), reduction='batchmean') * T * T
            loss = args.alpha * hard + (1 - args.alpha) * distil
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
            seen += len(b)
            if (i // args.batch) % 50 == 0:
                print(f'\r  epoch {epoch + 1}/{args.epochs}: {seen}/{len(order)} faces, loss {total / seen:.4f}, {time.time() - t0:.0f} s', end='', flush=True)
        student.eval()
        val = accuracy(predict(student, x[val_idx], 48), y[val_idx])
        student.train()
        print(f'\r  epoch {epoch + 1}/{args.epochs}: loss {total / seen:.4f}, held-out accuracy {val:.4f}, {time.time() - t0:.0f} s' + ' ' * 20, flush=True)
        if val > best[0]:
            best = (val, epoch, [w.detach().clone() for w in student.weights])

    val, epoch, weights = best
    kept = f'epoch {epoch + 1}' if epoch >= 0 else 'the starting weights (no epoch did better on the held-out faces)'
    print(f'kept {kept} (held-out accuracy {val:.4f}; the teacher: {val_teacher64:.4f} at 64x64)', flush=True)
    out = onnx.load(args.teacher)
    for init, w in zip(out.graph.initializer, weights):
        init.CopyFrom(numpy_helper.from_array(w.numpy().astype(np.float32), init.name))
    dims = out.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value = 48
    dims[2].dim_value = 48
    onnx.save(out, args.out)
    card_path = write_card(args.out, args.teacher, {
        'epochs': args.epochs, 'keptEpoch': epoch + 1, 'batch': args.batch, 'lr': args.lr, 'alpha': args.alpha,
        'temperature': args.temperature, 'seed': args.seed, 'trainingFaces': int(len(train_idx)), 'heldOutFaces': int(len(val_idx)),
        'heldOutAccuracy': val, 'teacherHeldOutAccuracy64': val_teacher64, 'teacherHeldOutAccuracy48': val_teacher48,
    })
    print(f'wrote {args.out} and {card_path}', flush=True)


if __name__ == '__main__':
    main()
