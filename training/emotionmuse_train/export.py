"""ONNX export of the scoring model, and the files reranking needs."""
import json
import os

import numpy as np
import torch
from torch import nn

from .models import N_HISTORY
from .two_stage import two_stage


class ServingModel(nn.Module):
    """history [B, 50] (item index + 1, 0 = padding), mask [B, 50], probs [B, 7] ->
    top-k item indices and preference scores over tracks not in the history, and the 64-d
    emotion embedding."""

    def __init__(self, model, k: int = 100):
        super().__init__()
        self.model = model
        self.k = k

    def forward(self, history, mask, probs):
        scores, e = self.model.score_all(history, mask, probs)
        idx = torch.clamp(history - 1, min=0)
        penalty = torch.zeros_like(scores).scatter_add(1, idx, mask * -1e9)
        top_scores, top_ids = (scores + penalty).topk(self.k, dim=1)
        return top_ids, top_scores, e


def export(model, out_dir: str, n_items: int, version: str) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    serving = ServingModel(model, k=min(100, n_items)).eval()
    rng = np.random.default_rng(3)
    samples = []
    for length in (50, 12, 1):
        hist = np.zeros((1, N_HISTORY), dtype=np.int64)
        hist[0, -length:] = rng.choice(n_items, size=length, replace=False) + 1
        probs = rng.dirichlet(np.ones(7)).astype(np.float32)[None]
        samples.append((hist, (hist > 0).astype(np.float32), probs))
    path = os.path.join(out_dir, "scoring.onnx")
    h, m, p = (torch.tensor(x) for x in samples[0])
    torch.onnx.export(
        serving, (h, m, p), path, opset_version=16,
        input_names=["history", "mask", "probabilities"],
        output_names=["top_ids", "top_scores", "emotion_embedding"],
        dynamic_axes={"history": {0: "batch"}, "mask": {0: "batch"}, "probabilities": {0: "batch"},
                      "top_ids": {0: "batch"}, "top_scores": {0: "batch"}, "emotion_embedding": {0: "batch"}},
    )
    parity = []
    with torch.no_grad():
        for hist, mask, probs in samples:
            ids, scores, e = serving(torch.tensor(hist), torch.tensor(mask), torch.tensor(probs))
            parity.append({"history": hist[0].tolist(), "mask": mask[0].tolist(), "probabilities": probs[0].tolist(),
                           "top_ids": ids[0].tolist(), "top_scores": scores[0].tolist(), "emotion_embedding": e[0].tolist()})
    with open(os.path.join(out_dir, "parity.json"), "w") as f:
        json.dump({"model": version, "note": "outputs of the PyTorch model on these inputs, for the onnxruntime-node parity test", "cases": parity}, f)
    fast = two_stage(path, os.path.join(out_dir, "scoring-int8.onnx"))
    return {"file": "scoring.onnx", "opset": 16, "bytes": os.path.getsize(path), "two_stage": fast}


def write_catalogue_files(out_dir: str, cat, va: np.ndarray, gated: np.ndarray, music_emb: np.ndarray, popularity: np.ndarray) -> None:
    with open(os.path.join(out_dir, "tracks.tsv"), "w", encoding="utf-8") as f:
        f.write("index\tid\ttitle\tartist\tvalence\tarousal\tva_source\tpopularity\n")
        for i, track_id in enumerate(cat.ids):
            title = cat.titles[i].replace("\t", " ").replace("\n", " ")
            artist = cat.artists[i].replace("\t", " ").replace("\n", " ")
            f.write(f"{i}\t{track_id}\t{title}\t{artist}\t{va[i, 0]:.4f}\t{va[i, 1]:.4f}\t{'knn' if gated[i] else 'fallback'}\t{popularity[i]:.6f}\n")
    np.asarray(music_emb, dtype="<f4").tofile(os.path.join(out_dir, "music_emb.f32"))
