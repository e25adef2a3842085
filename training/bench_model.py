#!/usr/bin/env python3
"""Exports an untrained model of the serving shape (the Bi-LSTM with V-A emotion path) for a
catalogue of N synthetic tracks, with random catalogue files beside it: for timing and memory
benchmarks only (the paper's catalogue has 210,000 tracks; ours 40,560).

    python3 training/bench_model.py --items 210000 --out .cache/bench-models/items-210000
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emotionmuse_train.export import export  # noqa: E402
from emotionmuse_train.models import BiLSTMRecommender  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(1)
    model = BiLSTMRecommender(args.items, emotion="va").eval()
    os.makedirs(args.out, exist_ok=True)
    info = export(model, args.out, args.items, f"bench-untrained-{args.items}")
    rng = np.random.default_rng(1)
    with open(os.path.join(args.out, "tracks.tsv"), "w") as f:
        f.write("index\tid\ttitle\tartist\tvalence\tarousal\tva_source\tpopularity\n")
        pop = rng.pareto(1.2, args.items) + 1
        pop /= pop.sum()
        for i in range(args.items):
            f.write(f"{i}\tbench{i:07d}\tTrack {i}\tArtist {i % 5000}\t{rng.random():.4f}\t{rng.random():.4f}\tknn\t{pop[i]:.8f}\n")
    rng.standard_normal((args.items, 64)).astype("<f4").tofile(os.path.join(args.out, "music_emb.f32"))
    with open(os.path.join(args.out, "card.json"), "w") as f:
        json.dump({"version": f"bench-untrained-{args.items}", "items": args.items, "export": info, "note": "random weights, for benchmarks only"}, f)
    print(f"wrote {args.out} ({info['bytes'] / 2**20:.0f} MiB ONNX)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
