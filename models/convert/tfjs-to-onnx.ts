import onnxProto from 'onnx-proto';
import { attrInts, attrString, attrStrings, type TfjsGraph, type TfNode, type TfTensor } from './tfjs-graph.ts';

const { onnx } = onnxProto;
type NodeProto = InstanceType<typeof onnx.NodeProto>;
type TensorProto = InstanceType<typeof onnx.TensorProto>;

/** The TF.js ops this converter knows. Anything else is refused by name. */
export const SUPPORTED_OPS = ['Placeholder', 'Const', '_FusedConv2D', 'Conv2D', 'DepthwiseConv2dNative', 'MaxPool', 'AddV2', 'Add', 'Relu', 'Mean', 'Softmax', 'Pad', 'Reshape', 'Identity'] as const;

export interface ConvertOptions {
  /** Graph and producer names written into the ONNX file. */
  readonly name: string;
  /** Make the leading (batch) dimension of the input and of Reshape targets dynamic. @defaultValue true */
  readonly dynamicBatch?: boolean;
  /**
   * Also make the input's height and width dynamic (fully convolutional graphs such as a
   * detector), with Reshape targets written as [batch, -1, last] so that they follow the input.
   * @defaultValue false
   */
  readonly dynamicSpatial?: boolean;
  /** Key/value pairs stored as ONNX metadata_props (labels, source, licence, ...). */
  readonly metadata?: Record<string, string>;
}

/** Where a TF tensor lives in the ONNX graph, and in which layout (4-D tensors are kept NCHW). */
interface Mapped {
  readonly name: string;
  readonly layout: 'NCHW' | 'plain';
}

const NHWC_TO_NCHW_AXIS = [0, 2, 3, 1];

function attr(name: string, value: number | number[] | string): InstanceType<typeof onnx.AttributeProto> {
  if (typeof value === 'string') return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.STRING, s: Buffer.from(value) });
  if (Array.isArray(value)) return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: value });
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: value });
}

function floatTensor(name: string, dims: number[], data: Float32Array): TensorProto {
  return onnx.TensorProto.create({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
}

function int64Tensor(name: string, values: number[]): TensorProto {
  const data = new BigInt64Array(values.map((v) => BigInt(v)));
  return onnx.TensorProto.create({ name, dims: [values.length], dataType: onnx.TensorProto.DataType.INT64, rawData: new Uint8Array(data.buffer) });
}

/** HWIO (TF conv filter) to OIHW (ONNX). */
function hwioToOihw(w: TfTensor): { dims: number[]; data: Float32Array } {
  const [H, W, I, O] = w.shape as [number, number, number, number];
  const src = w.data as Float32Array;
  const out = new Float32Array(src.length);
  for (let h = 0; h < H; h++) for (let x = 0; x < W; x++) for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) {
    out[((o * I + i) * H + h) * W + x] = src[((h * W + x) * I + i) * O + o]!;
  }
  return { dims: [O, I, H, W], data: out };
}

/** Depthwise filter [H, W, C, M] to a grouped ONNX conv filter [C*M, 1, H, W] (output channel c*M+m, as TF orders it). */
function depthwiseToOihw(w: TfTensor): { dims: number[]; data: Float32Array; group: number } {
  const [H, W, C, M] = w.shape as [number, number, number, number];
  const src = w.data as Float32Array;
  const out = new Float32Array(src.length);
  for (let h = 0; h < H; h++) for (let x = 0; x < W; x++) for (let c = 0; c < C; c++) for (let m = 0; m < M; m++) {
    out[(c * M + m) * H * W + h * W + x] = src[((h * W + x) * C + c) * M + m]!;
  }
  return { dims: [C * M, 1, H, W], data: out, group: C };
}

function spatial(node: TfNode, key: string): number[] {
  const v = attrInts(node, key);
  return v.length === 4 ? [v[1]!, v[2]!] : [1, 1];
}

function padAttrs(node: TfNode): ReturnType<typeof attr>[] {
  const padding = attrString(node, 'padding') ?? 'VALID';
  if (padding === 'SAME') return [attr('auto_pad', 'SAME_UPPER')];
  if (padding === 'VALID') return [attr('auto_pad', 'VALID')];
  if (padding === 'EXPLICIT') {
    const p = attrInts(node, 'explicit_paddings'); // NHWC pairs
    return [attr('pads', [p[2]!, p[4]!, p[3]!, p[5]!])];
  }
  throw new Error(`${node.name}: padding ${padding} is not supported`);
}

/**
 * Converts a TF.js graph model to an ONNX model (opset 13). Convolutions run in NCHW: the NHWC
 * input is transposed once, filters are re-laid out at conversion time, and tensors go back to
 * NHWC only where an op's meaning depends on the layout (Reshape, graph outputs).
 */
export function convertTfjsToOnnx(graph: TfjsGraph, options: ConvertOptions): Uint8Array {
  const dynamicBatch = options.dynamicBatch ?? true;
  const dynamicSpatial = options.dynamicSpatial ?? false;
  const unsupported = [...new Set(graph.nodes.map((n) => n.op))].filter((op) => !(SUPPORTED_OPS as readonly string[]).includes(op));
  if (unsupported.length > 0) throw new Error(`unsupported TF.js ops: ${unsupported.join(', ')}`);

  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const mapped = new Map<string, Mapped>();
  const consts = new Map<string, TfTensor>();
  const inputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  const outputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  let counter = 0;
  const fresh = (base: string) => `${base}__${counter++}`;
  const add = (op: string, inputNames: string[], outName: string, attributes: ReturnType<typeof attr>[] = []) => {
    nodes.push(onnx.NodeProto.create({ opType: op, input: inputNames, output: [outName], name: outName, attribute: attributes }));
    return outName;
  };
  const source = (name: string): Mapped => {
    const clean = name.replace(/:\d+$/, '');
    const m = mapped.get(clean);
    if (!m) throw new Error(`tensor ${name} is used before it is produced`);
    return m;
  };
  const constOf = (name: string): TfTensor => {
    const t = consts.get(name.replace(/:\d+$/, ''));
    if (!t) throw new Error(`${name} must be a constant`);
    return t;
  };
  const toNhwc = (m: Mapped): string => (m.layout === 'NCHW' ? add('Transpose', [m.name], fresh('to_nhwc'), [attr('perm', [0, 2, 3, 1])]) : m.name);

  for (const node of graph.nodes) {
    switch (node.op) {
      case 'Const': {
        const t = graph.weights.get(node.name);
        if (!t) throw new Error(`${node.name}: constant without weights`);
        consts.set(node.name, t);
        break;
      }
      case 'Placeholder': {
        const dims = (node.attr.shape?.shape?.dim ?? []).map((d) => Number(d.size));
        const symbolic = ['batch', 'height', 'width'];
        const shape = dims.map((d, i) =>
          i === 0 && (dynamicBatch || d < 0) ? { dimParam: 'batch' } : dims.length === 4 && dynamicSpatial && (i === 1 || i === 2) ? { dimParam: symbolic[i]! } : { dimValue: d });
        inputs.push(onnx.ValueInfoProto.create({ name: node.name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: shape } } } }));
        if (dims.length === 4) {
          mapped.set(node.name, { name: add('Transpose', [node.name], fresh('input_nchw'), [attr('perm', [0, 3, 1, 2])]), layout: 'NCHW' });
        } else {
          mapped.set(node.name, { name: node.name, layout: 'plain' });
        }
        break;
      }
      case '_FusedConv2D':
      case 'Conv2D': {
        const x = source(node.input[0]!);
        const w = hwioToOihw(constOf(node.input[1]!));
        const wName = `${node.name}/W`;
        initializers.push(floatTensor(wName, w.dims, w.data));
        const convInputs = [x.name, wName];
        const fused = node.op === '_FusedConv2D' ? attrStrings(node, 'fused_ops') : [];
        if (fused[0] === 'BiasAdd') {
          const b = constOf(node.input[2]!);
          const bName = `${node.name}/B`;
          initializers.push(floatTensor(bName, [b.shape[0]!], b.data as Float32Array));
          convInputs.push(bName);
        } else if (fused.length > 0) {
          throw new Error(`${node.name}: fused ops ${fused.join('+')} are not supported`);
        }
        const activation = fused[1];
        const convOut = activation ? fresh(node.name) : node.name;
        add('Conv', convInputs, convOut, [attr('strides', spatial(node, 'strides')), attr('dilations', spatial(node, 'dilations')), attr('kernel_shape', w.dims.slice(2)), ...padAttrs(node)]);
        if (activation === 'Relu') add('Relu', [convOut], node.name);
        else if (activation !== undefined) throw new Error(`${node.name}: fused activation ${activation} is not supported`);
        mapped.set(node.name, { name: node.name, layout: 'NCHW' });
        break;
      }
      case 'DepthwiseConv2dNative': {
        const x = source(node.input[0]!);
        const w = depthwiseToOihw(constOf(node.input[1]!));
        const wName = `${node.name}/W`;
        initializers.push(floatTensor(wName, w.dims, w.data));
        add('Conv', [x.name, wName], node.name, [attr('group', w.group), attr('strides', spatial(node, 'strides')), attr('dilations', spatial(node, 'dilations')), attr('kernel_shape', w.dims.slice(2)), ...padAttrs(node)]);
        mapped.set(node.name, { name: node.name, layout: 'NCHW' });
        break;
      }
      case 'MaxPool': {
        const x = source(node.input[0]!);
        add('MaxPool', [x.name], node.name, [attr('kernel_shape', spatial(node, 'ksize')), attr('strides', spatial(node, 'strides')), ...padAttrs(node)]);
        mapped.set(node.name, { name: node.name, layout: 'NCHW' });
        break;
      }
      case 'AddV2':
      case 'Add': {
        const [a, b] = node.input.map(source) as [Mapped, Mapped];
        if (a.layout !== b.layout) throw new Error(`${node.name}: operands in different layouts`);
        add('Add', [a.name, b.name], node.name);
        mapped.set(node.name, { name: node.name, layout: a.layout });
        break;
      }
      case 'Relu': {
        const x = source(node.input[0]!);
        add('Relu', [x.name], node.name);
        mapped.set(node.name, { name: node.name, layout: x.layout });
        break;
      }
      case 'Mean': {
        const x = source(node.input[0]!);
        const axes = Array.from(constOf(node.input[1]!).data);
        const keep = node.attr.keep_dims?.b ?? false;
        const onnxAxes = x.layout === 'NCHW' ? axes.map((a) => NHWC_TO_NCHW_AXIS[a < 0 ? a + 4 : a]!) : axes;
        add('ReduceMean', [x.name], node.name, [attr('axes', onnxAxes), attr('keepdims', keep ? 1 : 0)]);
        const spatialOnly = x.layout === 'NCHW' && !keep && [...axes].sort().join() === '1,2';
        if (x.layout === 'NCHW' && keep === false && !spatialOnly) throw new Error(`${node.name}: Mean over axes ${axes.join(',')} is not supported`);
        mapped.set(node.name, { name: node.name, layout: keep && x.layout === 'NCHW' ? 'NCHW' : 'plain' });
        break;
      }
      case 'Softmax': {
        const x = source(node.input[0]!);
        if (x.layout !== 'plain') throw new Error(`${node.name}: Softmax over a 4-D tensor is not supported`);
        add('Softmax', [x.name], node.name, [attr('axis', -1)]);
        mapped.set(node.name, { name: node.name, layout: 'plain' });
        break;
      }
      case 'Pad': {
        const x = source(node.input[0]!);
        const p = Array.from(constOf(node.input[1]!).data); // [[before, after] per NHWC axis]
        const rank = p.length / 2;
        const perm = x.layout === 'NCHW' ? [0, 3, 1, 2] : Array.from({ length: rank }, (_, i) => i);
        const begins = perm.map((axis) => p[axis * 2]!);
        const ends = perm.map((axis) => p[axis * 2 + 1]!);
        const padsName = `${node.name}/pads`;
        initializers.push(int64Tensor(padsName, [...begins, ...ends]));
        add('Pad', [x.name, padsName], node.name, [attr('mode', 'constant')]);
        mapped.set(node.name, { name: node.name, layout: x.layout });
        break;
      }
      case 'Reshape': {
        const x = source(node.input[0]!);
        const shape = Array.from(constOf(node.input[1]!).data);
        if (dynamicSpatial && shape.length === 3) shape.splice(0, 3, 0, -1, shape[2]!);
        else if (dynamicBatch && shape[0] === 1) shape[0] = -1;
        const shapeName = `${node.name}/shape`;
        initializers.push(int64Tensor(shapeName, shape));
        add('Reshape', [toNhwc(x), shapeName], node.name);
        mapped.set(node.name, { name: node.name, layout: 'plain' });
        break;
      }
      case 'Identity': {
        const x = source(node.input[0]!);
        add('Identity', [toNhwc(x)], node.name);
        mapped.set(node.name, { name: node.name, layout: 'plain' });
        break;
      }
    }
  }

  const consumed = new Set(graph.nodes.flatMap((n) => n.input.map((i) => i.replace(/:\d+$/, ''))));
  for (const node of graph.nodes) {
    if (node.op === 'Identity' && !consumed.has(node.name)) {
      outputs.push(onnx.ValueInfoProto.create({ name: node.name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } }));
    }
  }
  outputs.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));

  const model = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'emotionmuse tfjs-to-onnx',
    producerVersion: '1',
    graph: onnx.GraphProto.create({ name: options.name, node: nodes, initializer: initializers, input: inputs, output: outputs }),
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(model).finish();
}
