"""Trains an emotion CNN on FER-2013 train, validates on PublicTest, and exports the served graph.

Two networks, each with its own recipe:
- --arch vgg (the default): the paper's VGG-16+SE (vgg_se.py) with the paper's recipe (below);
- --arch resnet: the CPU student (resnet_s.py), a small residual net with batch norm, with the
  student recipe: SGD with Nesterov momentum 0.9 at --lr 0.05 (weight decay 5e-4) annealed to zero
  on a cosine over --epochs (26: about 50 minutes here), batch 128, the paper's augmentations plus a shift of up to 4
  pixels, no class weights (the served figure is accuracy), and the last epoch kept: PublicTest
  is drawn as a curve but chooses nothing. With --teacher models/emotion-ensemble.onnx it learns
  from the ensemble's answers on the same augmented faces.

Recipe: inverse-frequency class weights w_c = N / (C n_c) in the cross-entropy; horizontal flips
(p = 0.5), rotation within +-15 degrees, brightness +-0.2 and zoom 0.85-1.15, drawn per image;
Adam at 1e-4 with weight decay 1e-5; ReduceLROnPlateau on validation accuracy (patience 5, factor
0.5); batch 64; at most 80 epochs; early stopping after 15 epochs without a better validation
accuracy, keeping the best. No ImageNet weights can be had offline: the network starts from
scratch (Kaiming initialisation), which the paper does not do.

Every epoch ends in a checkpoint (<out>/checkpoint.pt, with the random generators' states, so a
resumed run continues exactly as an uninterrupted one); a run started again with the same --out
goes on from it. --max-minutes stops after the epoch that passes the limit (resume later).

  python3 models/train-fer/train.py --width 0.25 --out .cache/fer-vgg-w025          # train
  python3 models/train-fer/train.py --width 1.0 --time-batches 10                   # epoch time here
  python3 models/train-fer/train.py --smoke --out .cache/fer-vgg-smoke              # CI: 384 faces, 1 epoch
  python3 models/train-fer/train.py --packed fer.npz --device cuda --width 1.0 ...  # a GPU machine
  python3 models/train-fer/train.py --arch resnet --teacher models/emotion-ensemble.onnx --out .cache/fer-student
"""
import argparse, json, math, os, platform, sys, time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vgg_se import LABELS, Served, VggSe  # noqa: E402
from resnet_s import ResNetS, multiplies  # noqa: E402
from data import load_split  # noqa: E402
from report import curve_svg, per_class  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SHARED = os.path.abspath(os.path.join(ROOT, '..', 'shared', 'data', 'fer2013'))


def normalise(u8: torch.Tensor) -> torch.Tensor:
    """uint8 faces [B, 48, 48] -> NCHW floats in [-1, 1], as the classifier feeds the models."""
    return (u8.float().unsqueeze(1) / 255.0 - 0.5) * 2.0


def augment(x: torch.Tensor, g: torch.Generator, shift: float = 0.0) -> torch.Tensor:
    """The paper's augmentations, drawn per image: flip, rotation +-15 deg, zoom 0.85-1.15, brightness +-0.2;
    and a shift of up to `shift` pixels each way (0 in the paper's recipe)."""
    b = x.shape[0]
    u = lambda lo, hi: torch.rand(b, generator=g) * (hi - lo) + lo
    angle = u(-15, 15) * math.pi / 180
    zoom = u(0.85, 1.15)
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    # affine_grid's units: the image spans [-1, 1], so one pixel is 2 / side
    dx, dy = u(-shift, shift) * 2 / x.shape[3], u(-shift, shift) * 2 / x.shape[2]
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, dx], 1), torch.stack([sin * flip, cos, dy], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, padding_mode='border', align_corners=False)
    # brightness +-0.2 of the [0, 1] range is +-0.4 in [-1, 1]
    return (out + (u(-0.4, 0.4)).to(x.device)[:, None, None, None]).clamp(-1, 1)


class OrtTeacher:
    """The teacher in ONNX Runtime, where it can be imported (models/train-fer/student.sh installs it
    under .cache/train-ort): about 3.5 times faster here than the graph run in PyTorch, whose
    depthwise convolutions are slow on the CPU. Same probabilities within 1e-6."""

    def __init__(self, path, threads):
        import onnxruntime as ort
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, o, providers=['CPUExecutionProvider'])
        self.name = self.session.get_inputs()[0].name
        self.runtime = f'ONNX Runtime {ort.__version__}'

    def __call__(self, x, output=True):
        return torch.from_numpy(self.session.run(None, {self.name: x.detach().cpu().contiguous().numpy()})[0]).to(x.device)


def load_teacher(path, device):
    """An ONNX emotion model (an ensemble too), and its input side. Called with output=True it gives
    the graph's probabilities. ONNX Runtime runs it where it is installed and the device is the CPU;
    else models/finetune's graph runner in PyTorch."""
    import onnx
    model = onnx.load(path)
    side = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    if device.type == 'cpu':
        try:
            return OrtTeacher(path, torch.get_num_threads()), side
        except ImportError:
            print('[train-fer] onnxruntime is not importable: the teacher runs in PyTorch (slower; models/train-fer/student.sh installs it)', file=sys.stderr)
    sys.path.insert(0, os.path.join(ROOT, 'models', 'finetune'))
    from finetune import OnnxGraph
    net = OnnxGraph(model).to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net.runtime = f'PyTorch {torch.__version__} (models/finetune graph runner)'
    return net, side


def sha256_file(path):
    import hashlib
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def evaluate(net, x_u8, y, device, batch=512):
    net.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(x_u8), batch):
            preds.append(net(normalise(x_u8[i:i + batch]).to(device)).argmax(1).cpu())
    p = torch.cat(preds).numpy()
    return float((p == y.numpy()).mean()), p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--train', default=os.path.join(SHARED, 'train'), help='FER-2013 train folder (<class>/*.jpg)')
    ap.add_argument('--val', default=os.path.join(SHARED, 'public-test'), help='validation folder: PublicTest, the paper\'s protocol')
    ap.add_argument('--packed', help='an .npz made by pack.py instead of the folders (for a machine without ../shared)')
    ap.add_argument('--arch', default='vgg', choices=['vgg', 'resnet'], help='vgg: the paper\'s VGG-16+SE and recipe; resnet: the CPU student and its recipe (default: %(default)s)')
    ap.add_argument('--width', type=float, default=1.0, help='vgg: width multiplier of every channel count (1.0: the paper)')
    ap.add_argument('--stem', type=int, default=24, help='resnet: channels of the 48x48 stem (default: %(default)s)')
    ap.add_argument('--widths', default='32,64,128', help='resnet: channels of each stage (default: %(default)s)')
    ap.add_argument('--blocks', default='1,2,2', help='resnet: residual blocks of each stage (default: %(default)s)')
    ap.add_argument('--epochs', type=int, help='vgg: at most 80 (early stopping); resnet: 26, the length of the cosine schedule')
    ap.add_argument('--batch', type=int, help='vgg 64, resnet 128')
    ap.add_argument('--lr', type=float, help='vgg 1e-4 (Adam), resnet 0.05 (SGD, the cosine\'s peak)')
    ap.add_argument('--weight-decay', type=float, help='vgg 1e-5, resnet 5e-4')
    ap.add_argument('--patience', type=int, default=15, help='vgg: early stopping after this many epochs without a better validation accuracy')
    ap.add_argument('--limit', type=int, default=0, help='use only this many training (and a quarter as many validation) faces')
    ap.add_argument('--smoke', action='store_true', help='CI: 384 faces, one epoch unless --epochs says (vgg at width 0.25)')
    ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    ap.add_argument('--threads', type=int, default=0, help='torch threads (0: one per core; Debian\'s torch starts with one)')
    ap.add_argument('--time-batches', type=int, default=0, help='only time this many training batches and print the epoch time they imply')
    ap.add_argument('--max-minutes', type=float, default=0, help='stop after the epoch that passes this many minutes (the checkpoint stays)')
    ap.add_argument('--export-only', action='store_true', help='export the best model of the checkpoint in --out without training further')
    ap.add_argument('--teacher', help='also distil from this ONNX emotion model (soft targets at its own input size), e.g. models/emotion.onnx')
    ap.add_argument('--alpha', type=float, default=0.5, help='with --teacher: weight of the labels; the rest is the teacher')
    ap.add_argument('--temperature', type=float, default=2.0, help='with --teacher: softens both answers in the distillation term')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--out', default=os.path.join(ROOT, '.cache', 'fer-vgg'))
    a = ap.parse_args()
    student = a.arch == 'resnet'
    if a.smoke:
        a.epochs, a.limit = a.epochs or 1, a.limit or 384
        if not student:
            a.width = 0.25
    defaults = dict(epochs=26, batch=128, lr=0.05, weight_decay=5e-4) if student else dict(epochs=80, batch=64, lr=1e-4, weight_decay=1e-5)
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    # A deep net without batch normalisation carries activations and gradients below float32's
    # normal range once it has trained a while, and the CPU computes on those (denormals) many
    # times slower: an epoch of width 0.25 went from 52 s to 230 s over 29 epochs. Flushing them
    # to zero (what GPUs do by default) makes a batch of the trained net 2.4 times faster here.
    if a.device == 'cpu':
        torch.set_flush_denormal(True)
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    os.makedirs(a.out, exist_ok=True)
    cache = os.path.join(ROOT, '.cache', 'fer-train-faces')
    xtr, ytr = load_split(a.packed, 'train', a.train, cache, a.limit, a.seed)
    xva, yva = load_split(a.packed, 'val', a.val, cache, a.limit // 4 if a.limit else 0, a.seed)
    counts = np.bincount(ytr.numpy(), minlength=7)
    weights = torch.tensor(len(ytr) / (7 * np.maximum(counts, 1)), dtype=torch.float32)
    print(f'[train-fer] {len(ytr)} training and {len(yva)} validation faces; ' + ('no class weights' if student else f'class weights {", ".join(f"{l} {w:.2f}" for l, w in zip(LABELS, weights.tolist()))}'), file=sys.stderr)

    steps = math.ceil(len(ytr) / a.batch)
    if student:
        net = ResNetS(a.stem, [int(v) for v in a.widths.split(',')], [int(v) for v in a.blocks.split(',')]).to(device)
        spec = {'arch': 'resnet', **net.spec}
        opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, nesterov=True, weight_decay=a.weight_decay)
        # a cosine from --lr to zero over every step of --epochs (stepped per batch)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(1.0, k / (a.epochs * steps)))))
        lossf = torch.nn.CrossEntropyLoss()
    else:
        net = VggSe(a.width).to(device)
        spec = {'arch': 'vgg', 'width': a.width}
        opt = torch.optim.Adam(net.parameters(), lr=a.lr, weight_decay=a.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode='max', patience=5, factor=0.5)
        lossf = torch.nn.CrossEntropyLoss(weight=weights.to(device))
    params = sum(p.numel() for p in net.parameters())
    teacher, teacher_side = load_teacher(a.teacher, device) if a.teacher else (None, 0)
    g = torch.Generator().manual_seed(a.seed)
    state = {'epoch': 0, 'best': -1.0, 'best_epoch': 0, 'history': [], 'seconds': 0.0}
    ckpt = os.path.join(a.out, 'checkpoint.pt')
    if os.path.exists(ckpt) and not a.time_batches:
        c = torch.load(ckpt, map_location=device)
        if c.get('spec', {'arch': 'vgg', 'width': c.get('width')}) != spec:
            raise SystemExit(f'{ckpt} is of another network ({c.get("spec", c.get("width"))}, not {spec}): use another --out')
        net.load_state_dict(c['model']); opt.load_state_dict(c['opt']); sched.load_state_dict(c['sched']); state = c['state']; g.set_state(c['rng'])
        if 'torch_rng' in c:
            torch.set_rng_state(c['torch_rng'])  # dropout's generator
        print(f'[train-fer] resuming after epoch {state["epoch"]} (best {state["best"]:.4f} at {state["best_epoch"]})', file=sys.stderr)

    started = time.time()
    stopping = (lambda: False) if student else (lambda: state['epoch'] - state['best_epoch'] >= a.patience)
    while not a.export_only and state['epoch'] < a.epochs and not stopping():
        net.train()
        t0, c0 = time.time(), time.process_time()
        order = torch.randperm(len(ytr), generator=g)
        total, right, seen = 0.0, 0, 0
        for k in range(steps):
            idx = order[k * a.batch:(k + 1) * a.batch]
            x = augment(normalise(xtr[idx]).to(device), g, shift=4.0 if student else 0.0)
            y = ytr[idx].to(device)
            out = net(x)
            loss = lossf(out, y)
            if teacher is not None:
                with torch.no_grad():
                    t_in = x if teacher_side == 48 else F.interpolate(x, size=(teacher_side, teacher_side), mode='bilinear', align_corners=False)
                    target = torch.log(teacher(t_in.permute(0, 2, 3, 1), output=True).clamp_min(1e-8))
                T = a.temperature
                distil = F.kl_div(F.log_softmax(out / T, 1), F.softmax(target / T, 1), reduction='batchmean') * T * T
                loss = a.alpha * loss + (1 - a.alpha) * distil
            opt.zero_grad()
            loss.backward()
            opt.step()
            if student:
                sched.step()
            total += loss.item() * len(idx); right += int((out.argmax(1) == y).sum()); seen += len(idx)
            if a.time_batches and k + 1 >= a.time_batches:
                per = (time.time() - t0) / (k + 1)
                print(json.dumps({**spec, 'params': params, 'multiplies': multiplies(net) if student else None, 'seconds_per_batch': round(per, 4), 'batch': a.batch, 'epoch_seconds_estimate': round(per * math.ceil(28709 / a.batch)), 'threads': torch.get_num_threads(), 'device': a.device}))
                return
            if k % 50 == 0:
                print(f'\r[train-fer] epoch {state["epoch"] + 1}: batch {k + 1}/{steps}, loss {total / seen:.3f}', end='', file=sys.stderr)
        acc, _ = evaluate(net, xva, yva, device)
        if not student:
            sched.step(acc)
        state['epoch'] += 1
        state['seconds'] += time.time() - t0
        state['cpu_seconds'] = state.get('cpu_seconds', 0.0) + time.process_time() - c0
        state['history'].append({'epoch': state['epoch'], 'train_loss': total / seen, 'train_acc': right / seen, 'val_acc': acc, 'lr': opt.param_groups[0]['lr'], 'seconds': time.time() - t0, 'cpu_seconds': state['cpu_seconds']})
        if acc > state['best']:
            state['best'], state['best_epoch'] = acc, state['epoch']
        # the student keeps its last epoch (PublicTest chooses nothing); the paper's recipe its best
        if student or state['best_epoch'] == state['epoch']:
            torch.save(net.state_dict(), os.path.join(a.out, 'best.pt'))
        torch.save({'spec': spec, 'model': net.state_dict(), 'opt': opt.state_dict(), 'sched': sched.state_dict(), 'state': state, 'rng': g.get_state(), 'torch_rng': torch.get_rng_state()}, ckpt)
        print(f'\r[train-fer] epoch {state["epoch"]}: train loss {total / seen:.3f} acc {right / seen:.3f}, validation acc {acc:.4f} (best {state["best"]:.4f} at {state["best_epoch"]}), {time.time() - t0:.0f} s', file=sys.stderr)
        if a.max_minutes and (time.time() - started) / 60 >= a.max_minutes:
            print(f'[train-fer] stopping after {a.max_minutes} minutes; run again with the same --out to go on', file=sys.stderr)
            break
    finished = state['epoch'] >= a.epochs or stopping()
    export(a, net, device, xva, yva, state, params, finished, len(ytr), spec, teacher)


def export(a, net, device, xva, yva, state, params, finished, n_train, spec, teacher=None):
    net.load_state_dict(torch.load(os.path.join(a.out, 'best.pt'), map_location=device))
    net.eval()
    acc, preds = evaluate(net, xva, yva, device)
    served = Served(net.cpu()).eval()
    onnx_path = os.path.join(a.out, 'model.onnx')
    dummy = torch.zeros(2, 48, 48, 1)
    torch.onnx.export(served, dummy, onnx_path, input_names=['input'], output_names=['probabilities'], dynamic_axes={'input': {0: 'batch'}, 'probabilities': {0: 'batch'}}, opset_version=13)
    # Parity reference: PyTorch's probabilities on 16 validation faces, for the onnxruntime-node test.
    faces = xva[:16]
    with torch.no_grad():
        ref = served((faces.float().unsqueeze(3) / 255.0 - 0.5) * 2.0).numpy()
    json.dump({'faces': faces.numpy().astype(int).tolist(), 'probabilities': ref.tolist()}, open(os.path.join(a.out, 'parity.json'), 'w'))
    table = per_class(yva.numpy(), preds)
    student = spec['arch'] == 'resnet'
    if student:
        name = f"resnet-s{spec['stem']}-{'-'.join(map(str, spec['widths']))}"
        architecture = (f"residual CNN with batch norm (models/train-fer/resnet_s.py): a 3x3 stem of {spec['stem']} channels at 48x48, then per stage a 2x2 max pool, "
                        + 'a 3x3 convolution and residual blocks: ' + ', '.join(f'{w} channels and {n} block(s) at {48 >> (k + 1)}x{48 >> (k + 1)}' for k, (w, n) in enumerate(zip(spec['widths'], spec['blocks'])))
                        + f"; GAP, dropout {spec['dropout']}, 7 outputs; {multiplies(net) / 1e6:.1f} M multiply-accumulates a face")
        recipe = {'optimizer': f'SGD Nesterov momentum 0.9, lr {a.lr}, weight decay {a.weight_decay}', 'scheduler': f'cosine from {a.lr} to 0 over {a.epochs} epochs, per batch', 'batch': a.batch,
                  'epochs': a.epochs, 'kept': 'the last epoch (PublicTest only draws the curve)', 'class_weights': 'none',
                  'augmentation': 'flip p=0.5, rotation +-15 deg, brightness +-0.2, zoom 0.85-1.15, shift up to 4 pixels'}
    else:
        name = f'vgg16-se-w{a.width:g}'
        architecture = 'VGG-16 + squeeze-and-excitation (r=16) after each block, GAP, FC-512 + dropout 0.5, 7 outputs (models/train-fer/vgg_se.py)'
        recipe = {'optimizer': f'Adam lr {a.lr} weight decay {a.weight_decay}', 'scheduler': 'ReduceLROnPlateau(max, patience 5, factor 0.5) on validation accuracy', 'batch': a.batch, 'max_epochs': a.epochs, 'early_stopping_patience': a.patience, 'class_weights': 'N / (C n_c)', 'augmentation': 'flip p=0.5, rotation +-15 deg, brightness +-0.2, zoom 0.85-1.15'}
    card = {
        'name': name, 'architecture': architecture,
        **({'spec': spec} if student else {'width': a.width}), 'parameters': params, 'input': 'NHWC [batch, 48, 48, 1], (p / 255 - 0.5) * 2', 'output': 'softmax over ' + ', '.join(LABELS),
        'initialisation': 'from scratch (no ImageNet weights can be had offline)', 'training_faces': n_train,
        'validation': 'FER-2013 PublicTest' + (f' (first {len(yva)} faces)' if a.limit else ''), 'validation_accuracy': round(acc, 4), 'macro_f1': round(table['macro_f1'], 4), 'per_class': table['classes'],
        'epochs': state['epoch'], 'best_epoch': state['best_epoch'], 'kept_epoch': state['epoch'] if student else state['best_epoch'], 'finished': finished,
        'training_seconds': round(state['seconds']), 'training_cpu_hours': round(state.get('cpu_seconds', 0.0) / 3600, 3),
        'hardware': {'device': a.device, 'gpu': torch.cuda.get_device_name(0) if a.device == 'cuda' else None, 'cpu': platform.processor() or platform.machine(), 'threads': torch.get_num_threads(), 'flush_denormal': a.device == 'cpu'},
        'teacher': {'file': os.path.relpath(os.path.abspath(a.teacher), ROOT), 'sha256': sha256_file(a.teacher), 'alpha': a.alpha, 'temperature': a.temperature,
                    'targets': 'the teacher\'s probabilities on the same augmented faces, upsampled to its input side', 'runtime': getattr(teacher, 'runtime', None)} if a.teacher else None,
        'recipe': recipe,
        'torch': torch.__version__, 'history': state['history'],
    }
    json.dump(card, open(os.path.join(a.out, 'card.json'), 'w'), indent=2)
    open(os.path.join(a.out, 'curve.svg'), 'w').write(curve_svg(state['history'], f'{name}, {a.device}' if student else f'VGG-16+SE width {a.width:g}, {a.device}'))
    print(f'[train-fer] exported {onnx_path}: validation accuracy {acc:.4f}, macro-F1 {table["macro_f1"]:.4f}, {state["epoch"]} epochs ({"finished" if finished else "stopped early; resumable"})', file=sys.stderr)


if __name__ == '__main__':
    main()
