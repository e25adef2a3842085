"""Per-class metrics in the shape of the paper's Table III, and a training curve as SVG."""
import numpy as np

from vgg_se import LABELS


def per_class(y, p):
    classes = {}
    f1s = []
    for c, name in enumerate(LABELS):
        tp = int(((p == c) & (y == c)).sum())
        precision = tp / max(1, int((p == c).sum()))
        recall = tp / max(1, int((y == c).sum()))
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        f1s.append(f1)
        classes[name] = {'precision': round(precision, 4), 'recall': round(recall, 4), 'f1': round(f1, 4), 'support': int((y == c).sum())}
    return {'classes': classes, 'macro_f1': float(np.mean(f1s))}


def curve_svg(history, title: str) -> str:
    """Training accuracy, validation accuracy and training loss per epoch."""
    w, h, pad = 640, 360, 50
    n = max(1, len(history))
    xs = lambda i: pad + (w - 2 * pad) * (i / max(1, n - 1))
    ys = lambda v: h - pad - (h - 2 * pad) * v
    max_loss = max([e['train_loss'] for e in history] + [1e-9])
    series = [('train accuracy', '#1f77b4', [e['train_acc'] for e in history]), ('validation accuracy', '#d62728', [e['val_acc'] for e in history]), ('train loss (scaled)', '#7f7f7f', [e['train_loss'] / max_loss for e in history])]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">', f'<rect width="{w}" height="{h}" fill="white"/>', f'<text x="{pad}" y="20" font-size="14">{title}</text>']
    for v in (0, 0.25, 0.5, 0.75, 1):
        out.append(f'<line x1="{pad}" x2="{w - pad}" y1="{ys(v):.1f}" y2="{ys(v):.1f}" stroke="#ddd"/><text x="{pad - 8}" y="{ys(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    out.append(f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">epoch (1 to {n})</text>')
    for k, (name, colour, vals) in enumerate(series):
        pts = ' '.join(f'{xs(i):.1f},{ys(v):.1f}' for i, v in enumerate(vals))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>' if len(vals) > 1 else ''.join(f'<circle cx="{xs(i):.1f}" cy="{ys(v):.1f}" r="3" fill="{colour}"/>' for i, v in enumerate(vals)))
        out.append(f'<text x="{w - pad - 150}" y="{pad + 16 * k}" fill="{colour}">{name}</text>')
    out.append('</svg>')
    return '\n'.join(out)
