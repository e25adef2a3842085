"""FER-2013 faces as uint8 tensors, from the folders of ../shared/data (<class>/*.jpg, cached as an
.npz under .cache) or from one file packed by pack.py (for a machine without ../shared)."""
import hashlib
import io
import lzma
import os
import sys

import numpy as np
import torch
from PIL import Image

from vgg_se import LABELS


def read_folder(root: str):
    xs, ys = [], []
    for label, name in enumerate(LABELS):
        d = os.path.join(root, name)
        for f in sorted(os.listdir(d)):
            img = Image.open(os.path.join(d, f)).convert('L')
            if img.size != (48, 48):
                img = img.resize((48, 48), Image.BILINEAR)
            xs.append(np.asarray(img, dtype=np.uint8))
            ys.append(label)
    return np.stack(xs), np.array(ys, dtype=np.int64)


def load_split(packed, split: str, folder: str, cache_dir: str, limit: int, seed: int):
    """(faces [N, 48, 48] uint8, labels [N] int64); `limit` keeps a random subset of that many."""
    if packed:
        z = np.load(io.BytesIO(lzma.open(packed).read())) if packed.endswith('.xz') else np.load(packed)
        x, y = z[f'{split}_x'], z[f'{split}_y']
    else:
        cache = os.path.join(cache_dir, f'{split}-{hashlib.sha256(os.path.abspath(folder).encode()).hexdigest()[:12]}.npz')
        if os.path.exists(cache):
            z = np.load(cache)
            x, y = z['x'], z['y']
        else:
            print(f'[train-fer] reading {folder}', file=sys.stderr)
            x, y = read_folder(folder)
            os.makedirs(cache_dir, exist_ok=True)
            np.savez(cache, x=x, y=y)
    if limit and limit < len(y):
        keep = np.random.default_rng(seed).permutation(len(y))[:limit]
        x, y = x[np.sort(keep)], y[np.sort(keep)]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
