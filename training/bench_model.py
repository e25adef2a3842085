#!/usr/bin/env python3
"""Exports an untrained model of the serving shape (the Bi-LSTM with V-A emotion path) for a
catalogue of N synthetic tracks, with random catalogue files beside it: for timing and memory
benchmarks only (the paper's catalogue has 210,000 tracks; ours 40,560).

    python3 training/bench_model.py --items 210000 --out .cache/bench-models/items-210000

With --neighbours, also the three neighbourhood models (recency item-kNN, SKNN, V-SKNN) built from
synthetic playlists of real-log shape (5,665 sequences of 10 to 70 plays, Zipf popularity), each
in a folder `<out>-<kind>` that links the graph and catalogue files and adds neighbours/ and
emotion.onnx: their per-user cost, alone and as a hybrid with the graph.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emotionmuse_train.export import export, export_emotion, export_neighbours  # noqa: E402
from emotionmuse_train.knn import RecencyItemKnn, SessionKnn  # noqa: E402
from emotionmuse_train.models import BiLSTMRecommender  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--neighbours", action="store_true", help="also the neighbourhood models, in <out>-<kind>")
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
    if args.neighbours:
        write_neighbourhood_models(model, args.items, args.out)
    return 0


def write_neighbourhood_models(model, n_items: int, out: str) -> None:
    rng = np.random.default_rng(2)
    p = 1 / np.arange(1, n_items + 1) ** 0.9
    sequences = [rng.choice(n_items, size=int(rng.integers(10, 71)), p=p / p.sum()) for _ in range(5665)]
    built = {"item-knn-recency": lambda: RecencyItemKnn(n_items, sequences, window=10, alpha=0.75, decay=1.0, recent=20, neighbours=100),
             "sknn": lambda: SessionKnn(n_items, sequences, k=100),
             "vsknn": lambda: SessionKnn(n_items, sequences, k=100, decay=0.9, idf=True)}
    for kind, make in built.items():
        folder = f"{out}-{kind}"
        os.makedirs(folder, exist_ok=True)
        for name in ("scoring.onnx", "scoring-int8.onnx", "tracks.tsv", "music_emb.f32"):
            link = os.path.join(folder, name)
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(os.path.join(out, name)), link)
        nb = make()
        export_neighbours(nb, folder, n_items, nb.popularity)
        export_emotion(model.emotion, folder)
        with open(os.path.join(folder, "card.json"), "w") as f:
            json.dump({"version": f"bench-untrained-{n_items}-{kind}", "items": n_items, "serving": {"model": kind, "kind": "neighbourhood", "weight": 0.5},
                       "note": "untrained graph, neighbourhood model of synthetic playlists: for benchmarks only"}, f)
        print(f"wrote {folder}")


if __name__ == "__main__":
    sys.exit(main())
