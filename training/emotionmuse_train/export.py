"""ONNX export of the scoring model, and the files reranking needs."""
import json
import os

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from .models import N_HISTORY
from .pack import Packer, dequantize, externalize, quantize_rows, write_packed
from .two_stage import OUTPUT_WEIGHT, two_stage

ITEM_WEIGHT = "model.item_emb.weight"


class ServingModel(nn.Module):
    """history [B, 50] (item index + 1, 0 = padding), mask [B, 50], probs [B, 7] ->
    top-k item indices and preference scores over tracks not in the history, and the 64-d
    emotion embedding: the model's own, else that of `emotion` (the V-A Bi-LSTM's emotion path,
    for a model without one), else zeros (every track then equally compatible)."""

    def __init__(self, model, k: int = 100, emotion=None):
        super().__init__()
        self.model = model
        self.k = k
        self.emotion = emotion

    def forward(self, history, mask, probs):
        scores, e = self.model.score_all(history, mask, probs)
        if e is None:
            e = self.emotion(probs) if self.emotion is not None else torch.zeros(probs.shape[0], 64) * probs[:, :1]
        idx = torch.clamp(history - 1, min=0)
        penalty = torch.zeros_like(scores).scatter_add(1, idx, mask * -1e9)
        top_scores, top_ids = (scores + penalty).topk(self.k, dim=1)
        return top_ids, top_scores, e


def _quantize_catalogue_tensors(model, packer: Packer) -> None:
    """The item embedding (8 bits) and the output layer (7 bits) per row, in place (pack.py)."""
    with torch.no_grad():
        for name, param, levels in (("item_emb", model.item_emb.weight, 127), ("out", model.out.weight, 63)):
            q, scale = quantize_rows(param.numpy(), levels)
            param.copy_(torch.from_numpy(dequantize(q, scale)))
            packer.add(name, q, scale, levels)


def export(model, out_dir: str, n_items: int, version: str, packed_music_emb=None, emotion=None) -> dict:
    """scoring.onnx, scoring-int8.onnx and parity.json. With `packed_music_emb` (the music
    emotion embeddings, [items, 64]) the export is packed (pack.py): the catalogue-sized
    tensors are quantized first, live in weights.bin as ONNX external data, and weights.q8 +
    packed.json are what is committed."""
    os.makedirs(out_dir, exist_ok=True)
    packer = None
    if packed_music_emb is not None:
        packer = Packer()
        _quantize_catalogue_tensors(model, packer)
        q, scale = quantize_rows(packed_music_emb, 127)
        packer.add("music_emb", q, scale, 127)
        packer.region("music_emb.f32", "music_emb", "rows")
    serving = ServingModel(model, k=min(100, n_items), emotion=emotion).eval()
    samples = _samples(n_items, seed=3)
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
    fast_path = os.path.join(out_dir, "scoring-int8.onnx")
    fast = two_stage(path, fast_path)
    info = {"file": "scoring.onnx", "opset": 16, "bytes": os.path.getsize(path), "two_stage": fast}
    if packer is not None:
        # The two-stage graph's 7-bit copy is the packed output layer itself, transposed.
        w_q = next(numpy_helper.to_array(i) for i in onnx.load(fast_path).graph.initializer if i.name == "ts.w_q")
        if not np.array_equal(w_q, packer.tensors["out"][0].T):
            raise AssertionError("two-stage 7-bit weights differ from the packed output layer")
        rows = {ITEM_WEIGHT: ("item_emb", "rows"), OUTPUT_WEIGHT: ("out", "rows")}
        externalize(path, packer, rows)
        externalize(fast_path, packer, {**rows, "ts.w_q": ("out", "transposed-int8")})
        info["packed"] = write_packed(out_dir, packer, version)
        info["bytes"], fast["bytes"] = os.path.getsize(path), os.path.getsize(fast_path)
    return info


def write_catalogue_files(out_dir: str, cat, va: np.ndarray, gated: np.ndarray, music_emb, popularity: np.ndarray) -> None:
    """tracks.tsv, and music_emb.f32 unless `music_emb` is None (a packed export writes it)."""
    with open(os.path.join(out_dir, "tracks.tsv"), "w", encoding="utf-8") as f:
        f.write("index\tid\ttitle\tartist\tvalence\tarousal\tva_source\tpopularity\n")
        for i, track_id in enumerate(cat.ids):
            title = cat.titles[i].replace("\t", " ").replace("\n", " ")
            artist = cat.artists[i].replace("\t", " ").replace("\n", " ")
            f.write(f"{i}\t{track_id}\t{title}\t{artist}\t{va[i, 0]:.4f}\t{va[i, 1]:.4f}\t{'knn' if gated[i] else 'fallback'}\t{popularity[i]:.6f}\n")
    if music_emb is not None:
        np.asarray(music_emb, dtype="<f4").tofile(os.path.join(out_dir, "music_emb.f32"))


def _samples(n_items: int, seed: int = 3):
    """Histories of 50, 12 and 1 tracks with Dirichlet probabilities: the parity tests' inputs."""
    rng = np.random.default_rng(seed)
    out = []
    for length in (50, 12, 1):
        hist = np.zeros((1, N_HISTORY), dtype=np.int64)
        hist[0, -length:] = rng.choice(n_items, size=length, replace=False) + 1
        out.append((hist, (hist > 0).astype(np.float32), rng.dirichlet(np.ones(7)).astype(np.float32)[None]))
    return out


def export_emotion(path_module, out_dir: str) -> dict:
    """emotion.onnx: probabilities [B, 7] -> the 64-d emotion embedding (the V-A Bi-LSTM's emotion
    path), which reranks any served model's candidates."""
    path = os.path.join(out_dir, "emotion.onnx")
    probe = torch.tensor(np.full((1, 7), 1 / 7, dtype=np.float32))
    torch.onnx.export(path_module.eval(), (probe,), path, opset_version=16, input_names=["probabilities"], output_names=["emotion_embedding"],
                      dynamic_axes={"probabilities": {0: "batch"}, "emotion_embedding": {0: "batch"}})
    return {"file": "emotion.onnx", "bytes": os.path.getsize(path)}


def export_neighbours(model, out_dir: str, n_items: int, popularity: torch.Tensor, hybrid=None) -> dict:
    """neighbours/: the tables a neighbourhood model is scored from without Python (knn.py,
    `export_tables`), little-endian, with params.json and parity.json: its top-100 outside the
    history (and the hybrid's, when one is served with it) for the parity inputs."""
    from .hybrid import top_outside_history  # noqa: PLC0415 (keeps export importable without it)
    folder = os.path.join(out_dir, "neighbours")
    os.makedirs(folder, exist_ok=True)
    tables = {**model.export_tables(), "popularity.f32": popularity.numpy().astype(np.float32)}
    files = {}
    for name, array in tables.items():
        dtype = "<i4" if name.endswith(".i32") else "<f4"
        np.ascontiguousarray(array, dtype=dtype).tofile(os.path.join(folder, name))
        files[name] = {"shape": list(np.shape(array)), "bytes": int(np.asarray(array).size * 4)}
    params = {"kind": model.kind, **{k: (bool(v) if isinstance(v, bool) else v) for k, v in model.settings.items()}, "items": n_items, "files": files,
              "tie_break": "score + 1e-6 * popularity (log1p of training plays or holders)"}
    with open(os.path.join(folder, "params.json"), "w") as f:
        json.dump(params, f, indent=1)
    cases = []
    with torch.no_grad():
        for hist, mask, probs in _samples(n_items, seed=4):
            h = torch.tensor(hist)
            top, ids = top_outside_history(model.score_all(h, torch.tensor(mask))[0], h)
            case = {"history": hist[0].tolist(), "probabilities": probs[0].tolist(), "top_ids": ids[0].tolist(), "top_scores": top[0].tolist()}
            if hybrid is not None:
                htop, hids = top_outside_history(hybrid.score_all(h, torch.tensor(mask), torch.tensor(probs))[0], h)
                case["hybrid_ids"], case["hybrid_scores"] = hids[0].tolist(), htop[0].tolist()
            cases.append(case)
    with open(os.path.join(folder, "parity.json"), "w") as f:
        json.dump({"note": "PyTorch's top-100 on these inputs, for processors/recommender/neighbours.ts", "cases": cases}, f)
    return {"folder": "neighbours", **params}
