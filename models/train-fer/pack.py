"""Packs FER-2013 train and PublicTest into one xz-compressed .npz for a machine without ../shared (the
GPU run travels with it: at most 64 MiB; zlib leaves FER faces at 96% of their size, xz at 76%):
python3 models/train-fer/pack.py --out .cache/fer-packed.npz.xz"""
import argparse
import io
import lzma
import os

import numpy as np

from data import read_folder

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', 'shared', 'data', 'fer2013'))

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument('--train', default=os.path.join(SHARED, 'train'))
ap.add_argument('--val', default=os.path.join(SHARED, 'public-test'))
ap.add_argument('--out', required=True)
a = ap.parse_args()
tx, ty = read_folder(a.train)
vx, vy = read_folder(a.val)
buf = io.BytesIO()
np.savez(buf, train_x=tx, train_y=ty, val_x=vx, val_y=vy)
with lzma.open(a.out, 'wb', preset=9) as f:
    f.write(buf.getvalue())
size = os.path.getsize(a.out)
print(f'{a.out}: {len(ty)} training and {len(vy)} validation faces, {size / 2**20:.1f} MiB')
if size > 64 * 2**20:
    raise SystemExit('over the 64 MiB a device run may carry')
