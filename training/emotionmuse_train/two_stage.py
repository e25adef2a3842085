"""A faster graph for the same scoring model: int8 candidates, exact float32 rescoring.

At batch 1 the exported model spends almost all its time in the last layer, which reads the
whole float32 output matrix (catalogue x 256; 205 MiB for 210,000 tracks) to score every track.
`two_stage()` rewrites that tail of an exported `scoring.onnx`, leaving everything before it
untouched:

1. the 256-d user vector is quantized per tensor (DynamicQuantizeLinear, uint8) and multiplied
   with a copy of the output matrix quantized per track to 7-bit signed integers (MatMulInteger;
   7 bits so that the u8 x s8 pair sums of x86's VPMADDUBSW cannot saturate), which reads a
   quarter of the bytes;
2. the `candidates` best tracks by that approximate score are rescored exactly: their float32
   rows are gathered and multiplied with the unquantized user vector, plus the float32 bias;
3. listened tracks are excluded among the candidates, and the top-k of the exact scores is the
   output, with the same names, shapes and meaning as the original graph.

The result equals the original whenever the true top-k lies within the approximate top
`candidates` (k = 100, history up to 50; 400 candidates by default). The recommender benchmark
measures how often the two agree, and the parity test holds this graph to the PyTorch outputs
as it does the original.

    /usr/bin/python3 training/emotionmuse_train/two_stage.py models/recommender-small   # writes scoring-int8.onnx
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUTPUT_WEIGHT = "model.out.weight"
OUTPUT_BIAS = "model.out.bias"
LEVELS = 63  # 7-bit weights: 255 * 63 * 2 < 32767, no int16 saturation in u8 x s8 kernels


def _needed(graph, outputs):
    """Nodes that contribute to the given output names, in graph order."""
    producer = {o: n for n in graph.node for o in n.output}
    keep, stack = set(), list(outputs)
    while stack:
        name = stack.pop()
        node = producer.get(name)
        if node is None or id(node) in keep:
            continue
        keep.add(id(node))
        stack.extend(i for i in node.input if i)
    return [n for n in graph.node if id(n) in keep]


def two_stage(src: str, dst: str, candidates: int = 400) -> dict:
    model = onnx.load(src)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    gemm = next(n for n in graph.node if n.op_type == "Gemm" and n.input[1] == OUTPUT_WEIGHT)
    user_vector = gemm.input[0]
    weight = numpy_helper.to_array(inits[OUTPUT_WEIGHT]).astype(np.float32)  # [items, 256]
    n_items = weight.shape[0]
    topk = next(n for n in graph.node if n.op_type == "TopK" and "top_scores" in n.output)
    k = int(numpy_helper.to_array(next(n for n in graph.node if topk.input[1] in n.output).attribute[0].t).reshape(-1)[0])
    m = min(candidates, n_items)

    scale = np.abs(weight).max(axis=1) / LEVELS
    scale[scale == 0] = 1.0
    quantized = np.clip(np.round(weight / scale[:, None]), -LEVELS, LEVELS).astype(np.int8)

    # Drop the original tail: everything from the last layer to the outputs top_ids/top_scores.
    kept_outputs = [o.name for o in graph.output if o.name not in ("top_ids", "top_scores")] + [user_vector]
    nodes = _needed(graph, kept_outputs)
    const = lambda name, array: numpy_helper.from_array(np.asarray(array), name)  # noqa: E731
    new_inits = [
        const("ts.w_q", np.ascontiguousarray(quantized.T)),             # [256, items] int8
        const("ts.w_zero", np.array(0, dtype=np.int8)),
        const("ts.w_scale", scale.astype(np.float32)),                 # [items]
        const("ts.m", np.array([m], dtype=np.int64)),
        const("ts.k", np.array([k], dtype=np.int64)),
        const("ts.one", np.array(1, dtype=np.int64)),
        const("ts.axis1", np.array([1], dtype=np.int64)),
        const("ts.axis2", np.array([2], dtype=np.int64)),
        const("ts.neg", np.array(-1e9, dtype=np.float32)),
    ]
    N = helper.make_node
    nodes += [
        N("DynamicQuantizeLinear", [user_vector], ["ts.u_q", "ts.u_scale", "ts.u_zero"]),
        N("MatMulInteger", ["ts.u_q", "ts.w_q", "ts.u_zero", "ts.w_zero"], ["ts.acc"]),
        N("Cast", ["ts.acc"], ["ts.acc_f"], to=TensorProto.FLOAT),
        N("Mul", ["ts.w_scale", "ts.u_scale"], ["ts.col_scale"]),
        N("Mul", ["ts.acc_f", "ts.col_scale"], ["ts.approx_nb"]),
        N("Add", ["ts.approx_nb", OUTPUT_BIAS], ["ts.approx"]),
        N("TopK", ["ts.approx", "ts.m"], ["ts.approx_top", "ts.cand"], axis=1, largest=1, sorted=1),
        # exact float32 scores of the candidates
        N("Gather", [OUTPUT_WEIGHT, "ts.cand"], ["ts.w_cand"], axis=0),            # [B, m, 256]
        N("Unsqueeze", [user_vector, "ts.axis2"], ["ts.u_col"]),                   # [B, 256, 1]
        N("MatMul", ["ts.w_cand", "ts.u_col"], ["ts.dot3"]),                      # [B, m, 1]
        N("Squeeze", ["ts.dot3", "ts.axis2"], ["ts.dot"]),
        N("Gather", [OUTPUT_BIAS, "ts.cand"], ["ts.b_cand"], axis=0),
        N("Add", ["ts.dot", "ts.b_cand"], ["ts.exact"]),
        # listened tracks (history holds index + 1, 0 = padding) are excluded
        N("Sub", ["history", "ts.one"], ["ts.hist_idx"]),
        N("Unsqueeze", ["ts.hist_idx", "ts.axis1"], ["ts.hist_row"]),              # [B, 1, 50]
        N("Unsqueeze", ["ts.cand", "ts.axis2"], ["ts.cand_col"]),                  # [B, m, 1]
        N("Equal", ["ts.cand_col", "ts.hist_row"], ["ts.same"]),                   # [B, m, 50]
        N("Cast", ["ts.same"], ["ts.same_f"], to=TensorProto.FLOAT),
        N("Unsqueeze", ["mask", "ts.axis1"], ["ts.mask_row"]),
        N("Mul", ["ts.same_f", "ts.mask_row"], ["ts.listened3"]),
        N("ReduceMax", ["ts.listened3"], ["ts.listened"], axes=[2], keepdims=0),
        N("Mul", ["ts.listened", "ts.neg"], ["ts.penalty"]),
        N("Add", ["ts.exact", "ts.penalty"], ["ts.final"]),
        N("TopK", ["ts.final", "ts.k"], ["top_scores", "ts.pos"], axis=1, largest=1, sorted=1),
        N("GatherElements", ["ts.cand", "ts.pos"], ["top_ids"], axis=1),
    ]
    used = {i for n in nodes for i in n.input}
    keep_inits = [i for i in graph.initializer if i.name in used]
    outputs = list(graph.output)
    new_graph = helper.make_graph(nodes, graph.name, list(graph.input), outputs, keep_inits + new_inits)
    out = helper.make_model(new_graph, opset_imports=model.opset_import, producer_name="emotionmuse two_stage")
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    onnx.save(out, dst)
    return {"file": os.path.basename(dst), "candidates": m, "weight_bits": 7, "bytes": os.path.getsize(dst)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="a model folder holding scoring.onnx")
    ap.add_argument("--candidates", type=int, default=400, help="tracks rescored exactly (default 400)")
    args = ap.parse_args()
    info = two_stage(os.path.join(args.dir, "scoring.onnx"), os.path.join(args.dir, "scoring-int8.onnx"), args.candidates)
    print(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
