#!/usr/bin/env python3
"""Times one training epoch of each sequence model, by part, on synthetic sequences of real-log
shape (default: 5,665 sequences of 10 to 70 plays over 40,560 tracks, Zipf popularity): where an
epoch's time goes (building batches, forward with the loss, backward, optimiser step,
validation), without the data. One torch thread, as a training job has.

    /usr/bin/python3 training/profile_epoch.py --models bilstm-va,gru4rec,sasrec --loss sampled
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emotionmuse_train.train import KINDS, LOSSES, NEIGHBOURHOOD, prepare, train  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="bilstm-va,gru4rec,sasrec", help="comma-separated sequence models")
    ap.add_argument("--loss", choices=LOSSES, default="sampled")
    ap.add_argument("--items", type=int, default=40_560)
    ap.add_argument("--sequences", type=int, default=5_665)
    ap.add_argument("--targets-per-user", type=int, default=16, help="for the models that learn one target per row")
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS or k in NEIGHBOURHOOD or k in ("popularity", "item-knn", "hybrid")]
    if bad:
        ap.error(f"not a trained sequence model: {', '.join(bad)}")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    p = 1 / np.arange(1, args.items + 1) ** 0.9
    items = [rng.choice(args.items, size=int(rng.integers(10, 71)), p=p / p.sum()) for _ in range(args.sequences)]
    data = prepare(args.items, items, [np.full((len(s), 7), 1 / 7, dtype=np.float32) for s in items],
                   np.random.default_rng(1).normal(size=(args.items, 64)).astype(np.float32))
    print(f"| model | loss | targets | s / epoch | " + " | ".join(("batches", "forward", "backward", "step", "validation")) + " |")
    print("|---" * 9 + "|")
    for kind in kinds:
        started = time.time()
        _, history = train(kind, data, 0, max_epochs=1, patience=1, targets_per_user=args.targets_per_user, batch=args.batch, loss=args.loss, lr=1e-3, log=lambda m: None)
        h = history[-1]
        print(f"| {kind} | {args.loss} | {h['targets']:,} | {time.time() - started:.0f} | " + " | ".join(f"{v:.1f}" for v in h["profile"].values()) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
