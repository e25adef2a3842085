"""Builds one ONNX graph that runs two emotion models side by side and averages their probabilities.

Member A takes the graph's input as it is (NHWC [batch, S, S, 1], S its side); member B takes the
same side, or a larger one: then the input is resized for it in the graph (bilinear, half-pixel
centres, as image libraries upsample). Both give 7 probabilities in FER order; the output
`probabilities` is their mean.

    python models/fer/ensemble.py --a models/emotion-int8.onnx --b models/emotion-fer.onnx --out models/emotion-ensemble-int8.onnx
"""
import argparse
import sys

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper


def side(model: onnx.ModelProto) -> int:
    return model.graph.input[0].type.tensor_type.shape.dim[1].dim_value


def rename_input(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def build(a_path: str, b_path: str) -> onnx.ModelProto:
    a = compose.add_prefix(onnx.load(a_path), 'a/')
    b = compose.add_prefix(onnx.load(b_path), 'b/')
    sa, sb = side(a), side(b)
    if sb < sa:
        raise ValueError(f'member B must take at least member A\'s side ({sb} < {sa})')
    nodes, inits = [], []
    rename_input(a.graph, a.graph.input[0].name, 'input_1')
    b_in = 'input_1'
    if sb != sa:
        inits.append(numpy_helper.from_array(np.array([1, 1, sb / sa, sb / sa], np.float32), 'resize/scales'))
        nodes += [
            helper.make_node('Transpose', ['input_1'], ['resize/nchw'], name='resize/to_nchw', perm=[0, 3, 1, 2]),
            helper.make_node('Resize', ['resize/nchw', '', 'resize/scales'], ['resize/out'], name='resize', mode='linear', coordinate_transformation_mode='half_pixel'),
            helper.make_node('Transpose', ['resize/out'], ['resize/nhwc'], name='resize/to_nhwc', perm=[0, 2, 3, 1]),
        ]
        b_in = 'resize/nhwc'
    rename_input(b.graph, b.graph.input[0].name, b_in)
    inits.append(numpy_helper.from_array(np.array(0.5, np.float32), 'mean/half'))
    nodes += list(a.graph.node) + list(b.graph.node) + [
        helper.make_node('Add', [a.graph.output[0].name, b.graph.output[0].name], ['mean/sum'], name='mean/sum'),
        helper.make_node('Mul', ['mean/sum', 'mean/half'], ['probabilities'], name='mean'),
    ]
    graph = helper.make_graph(
        nodes,
        'emotion_ensemble',
        [helper.make_tensor_value_info('input_1', TensorProto.FLOAT, ['batch', sa, sa, 1])],
        [helper.make_tensor_value_info('probabilities', TensorProto.FLOAT, ['batch', 7])],
        initializer=inits + list(a.graph.initializer) + list(b.graph.initializer),
        value_info=list(a.graph.value_info) + list(b.graph.value_info),
    )
    opsets: dict[str, int] = {}
    for m in (a, b):
        for o in m.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    opsets[''] = max(opsets.get('', 0), 13)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()], producer_name='emotionmuse models/fer/ensemble.py')
    model.ir_version = max(a.ir_version, b.ir_version)
    onnx.checker.check_model(model)
    return model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--a', required=True, help='member A')
    p.add_argument('--b', required=True, help='member B (the same input side or a larger one, resized to in the graph)')
    p.add_argument('--out', required=True)
    args = p.parse_args()
    model = build(args.a, args.b)
    onnx.save(model, args.out)
    print(f'wrote {args.out}: mean of {args.a} and {args.b}, {len(model.graph.node)} nodes')
    return 0


if __name__ == '__main__':
    sys.exit(main())
