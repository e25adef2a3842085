"""A compact, committable form of an export whose catalogue-sized tensors are large.

Over the whole catalogue (40,560 tracks) the served model's item embedding (tracks x 128) and
output layer (tracks x 256) hold 15.6 M floats: 62 MB as float32, and the two-stage graph adds
a 7-bit copy of the output layer. ONNX Runtime does not fold a DequantizeLinear of an
initializer at load (it keeps such nodes for its quantized kernels, and then dequantizes on
every call), so storing int8 inside the graph would cost several ms a call. Instead:

- `quantize_rows()` rounds each of those tensors per row to signed integers (the output layer
  to 7 bits, which the two-stage graph needs anyway; the item and music embeddings to 8 bits),
  and the model is given the dequantized values: PyTorch's parity outputs, the ONNX graphs and
  the served model are all the same quantized model.
- `externalize()` moves those tensors out of `scoring.onnx` and `scoring-int8.onnx` into ONNX
  external data in `weights.bin` (float32 rows, and the transposed 7-bit copy).
- `write_packed()` writes what is committed instead of `weights.bin` and `music_emb.f32`:
  `weights.q8` (each tensor's integers then its float32 row scales) and `packed.json` (where
  each target region comes from). `processors/recommender/unpack.ts` rebuilds the unpacked
  files at the first start, in well under a second, and checks their digest.
"""
import hashlib
import json
import os

import numpy as np
import onnx
from onnx import TensorProto

PACKED_INDEX = "packed.json"
PACKED_DATA = "weights.q8"
WEIGHTS = "weights.bin"


def quantize_rows(weight: np.ndarray, levels: int):
    """Per-row symmetric quantization: int8 values in [-levels, levels] and float32 scales with
    value = q * scale. Rows of zeros keep scale 1."""
    weight = np.asarray(weight, dtype=np.float32)
    scale = (np.abs(weight).max(axis=1) / levels).astype(np.float32)
    scale[scale == 0] = 1.0
    q = np.clip(np.round(weight / scale[:, None]), -levels, levels).astype(np.int8)
    return q, scale


def dequantize(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) * scale[:, None]).astype(np.float32)


class Packer:
    """Collects tensors for weights.bin (and other unpacked files) with their packed sources."""

    def __init__(self):
        self.tensors = {}   # name -> (q, scale, levels)
        self.regions = []   # target regions in unpack order
        self.offsets = {}   # (file, name, layout) -> (offset, bytes)
        self.sizes = {}     # file -> bytes so far

    def add(self, name: str, q: np.ndarray, scale: np.ndarray, levels: int) -> None:
        self.tensors[name] = (q, scale, levels)

    def region(self, file: str, name: str, layout: str) -> tuple:
        """A place in an unpacked file: `rows` (float32, as the rows were) or `transposed-int8`
        (the integers, columns first: the two-stage graph's MatMulInteger operand)."""
        key = (file, name, layout)
        if key not in self.offsets:
            q, _, _ = self.tensors[name]
            nbytes = q.size * (4 if layout == "rows" else 1)
            offset = self.sizes.get(file, 0)
            offset += (-offset) % 64  # aligned, as ONNX Runtime likes its external data
            self.offsets[key] = (offset, nbytes)
            self.sizes[file] = offset + nbytes
            self.regions.append({"file": file, "tensor": name, "layout": layout, "offset": offset, "bytes": nbytes})
        return self.offsets[key]

    def unpacked(self, file: str) -> bytes:
        out = bytearray(self.sizes.get(file, 0))
        for r in self.regions:
            if r["file"] != file:
                continue
            q, scale, _ = self.tensors[r["tensor"]]
            data = dequantize(q, scale).astype("<f4").tobytes() if r["layout"] == "rows" else np.ascontiguousarray(q.T).tobytes()
            out[r["offset"]:r["offset"] + r["bytes"]] = data
        return bytes(out)


def externalize(model_path: str, packer: Packer, names: dict) -> None:
    """Points the named initializers of an ONNX file at regions of weights.bin.
    `names`: initializer name -> (packed tensor, layout)."""
    model = onnx.load(model_path)
    for init in model.graph.initializer:
        if init.name not in names:
            continue
        tensor, layout = names[init.name]
        q, _, _ = packer.tensors[tensor]
        expected = (TensorProto.FLOAT, q.shape) if layout == "rows" else (TensorProto.INT8, q.T.shape)
        if init.data_type != expected[0] or tuple(init.dims) != tuple(expected[1]):
            raise ValueError(f"{model_path}: {init.name} is {init.data_type} {list(init.dims)}, expected {expected[0]} {list(expected[1])}")
        offset, nbytes = packer.region(WEIGHTS, tensor, layout)
        init.ClearField("raw_data")
        del init.float_data[:]
        del init.int32_data[:]
        init.data_location = TensorProto.EXTERNAL
        del init.external_data[:]
        for key, value in (("location", WEIGHTS), ("offset", str(offset)), ("length", str(nbytes))):
            entry = init.external_data.add()
            entry.key, entry.value = key, value
    missing = set(names) - {i.name for i in model.graph.initializer}
    if missing:
        raise ValueError(f"{model_path} has no initializer {', '.join(sorted(missing))}")
    onnx.save(model, model_path)


def write_packed(out_dir: str, packer: Packer, version: str) -> dict:
    """weights.q8 + packed.json; also writes the unpacked files themselves (ignored by git), so
    that the folder serves at once here."""
    chunks, sources, at = [], {}, 0
    for name, (q, scale, levels) in packer.tensors.items():
        qb, sb = q.tobytes(), scale.astype("<f4").tobytes()
        sources[name] = {"rows": int(q.shape[0]), "cols": int(q.shape[1]), "levels": levels, "values": at, "scales": at + len(qb)}
        chunks += [qb, sb]
        at += len(qb) + len(sb)
    with open(os.path.join(out_dir, PACKED_DATA), "wb") as f:
        for c in chunks:
            f.write(c)
    files = {}
    for file in sorted(packer.sizes):
        data = packer.unpacked(file)
        with open(os.path.join(out_dir, file), "wb") as f:
            f.write(data)
        files[file] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    index = {"version": version, "data": PACKED_DATA, "bytes": at, "tensors": sources, "files": files, "regions": packer.regions,
             "note": "value = int8 * row scale; rebuilt by processors/recommender/unpack.ts (training/emotionmuse_train/pack.py)"}
    with open(os.path.join(out_dir, PACKED_INDEX), "w") as f:
        json.dump(index, f, indent=1)
    return {"data": PACKED_DATA, "bytes": at, "files": files}
