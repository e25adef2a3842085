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
  /**
   * Lay the graph out for ONNX Runtime's blocked (NCHWc) CPU kernels, which keep a tensor in
   * blocks of `block` channels (16 with AVX-512) and fall back to plain NCHW, with a reorder on
   * each side, at any op they cannot take. The result computes the same function:
   * - inner tensors whose channel count is not a multiple of `block` get zero channels up to the
   *   next multiple (zero filters and biases; the filters that read them get zero columns), so
   *   that residual sums and pools stay blocked; tensors that reach a Reshape, an output or a
   *   reduction keep their count;
   * - a Pad of the channel axis only becomes a 1x1 Conv by an identity matrix (exact: x * 1 + 0);
   * - a SAME pooling whose kernel equals its stride gets explicit zero pads where the input's
   *   height and width are known to be multiples of the stride, which holds when the caller feeds
   *   only inputs whose height and width are multiples of `spatialMultiple`.
   */
  readonly nchwc?: { readonly block: number; readonly spatialMultiple: number };
}

/** Where a TF tensor lives in the ONNX graph, and in which layout (4-D tensors are kept NCHW). */
interface Mapped {
  readonly name: string;
  readonly layout: 'NCHW' | 'plain';
  /** Channels (NCHW tensors): the model's own count, and the count stored (>= it; the rest are zeros). */
  readonly channels?: number;
  readonly stored?: number;
  /** A number that the height and width are known to be multiples of (1: nothing known). */
  readonly multiple?: number;
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

/** `w` ([O, I, H, W]) with its O and I grown to `outs` and `ins` by zeros. */
function growFilter(dims: readonly number[], data: Float32Array, outs: number, ins: number): { dims: number[]; data: Float32Array } {
  const [O, I, H, W] = dims as [number, number, number, number];
  if (outs === O && ins === I) return { dims: [...dims], data };
  const out = new Float32Array(outs * ins * H * W);
  for (let o = 0; o < O; o++) out.set(data.subarray(o * I * H * W, (o + 1) * I * H * W), o * ins * H * W);
  return { dims: [outs, ins, H, W], data: out };
}

function growVector(data: Float32Array, n: number): Float32Array {
  if (n === data.length) return data;
  const out = new Float32Array(n);
  out.set(data);
  return out;
}

/**
 * The TF nodes whose output must keep its own channel count: those read by a layout-sensitive
 * op (Reshape, Identity, Mean, Softmax) or a graph output, and, back through the elementwise ops
 * (Relu, Add, MaxPool), what they are computed from.
 */
function nodesNeedingOwnChannels(graph: TfjsGraph): Set<string> {
  const consumers = new Map<string, TfNode[]>();
  for (const node of graph.nodes) for (const i of node.input) {
    const name = i.replace(/:\d+$/, '');
    consumers.set(name, [...(consumers.get(name) ?? []), node]);
  }
  const need = new Set<string>();
  const elementwise = new Set(['Relu', 'Add', 'AddV2', 'MaxPool']);
  for (const node of [...graph.nodes].reverse()) {
    const users = consumers.get(node.name) ?? [];
    if (users.length === 0 || users.some((u) => !['Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'Pad'].includes(u.op) && !(elementwise.has(u.op) && !need.has(u.name)))) {
      need.add(node.name);
    }
  }
  return need;
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
  const block = options.nchwc?.block ?? 1;
  const ownChannels = options.nchwc ? nodesNeedingOwnChannels(graph) : new Set<string>();
  /** The channels to store for `node`'s output of `channels` channels. */
  const storedFor = (node: TfNode, channels: number) => (ownChannels.has(node.name) ? channels : Math.ceil(channels / block) * block);
  /** What a SAME op of stride `s` leaves known about its output's height and width. */
  const afterStride = (multiple: number | undefined, strides: number[], padding: string | undefined) =>
    padding === 'SAME' && strides.every((st) => (multiple ?? 1) % st === 0) ? (multiple ?? 1) / Math.max(...strides) : 1;
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
  const toNhwc = (m: Mapped): string => {
    if (m.stored !== m.channels) throw new Error(`${m.name}: ${m.stored} stored channels reach a layout-sensitive op that expects ${m.channels}`);
    return m.layout === 'NCHW' ? add('Transpose', [m.name], fresh('to_nhwc'), [attr('perm', [0, 2, 3, 1])]) : m.name;
  };

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
          const multiple = dynamicSpatial ? (options.nchwc?.spatialMultiple ?? 1) : 1;
          mapped.set(node.name, { name: add('Transpose', [node.name], fresh('input_nchw'), [attr('perm', [0, 3, 1, 2])]), layout: 'NCHW', channels: dims[3], stored: dims[3], multiple });
        } else {
          mapped.set(node.name, { name: node.name, layout: 'plain' });
        }
        break;
      }
      case '_FusedConv2D':
      case 'Conv2D': {
        const x = source(node.input[0]!);
        const own = hwioToOihw(constOf(node.input[1]!));
        const outs = storedFor(node, own.dims[0]!);
        const w = growFilter(own.dims, own.data, outs, x.stored ?? own.dims[1]!);
        const wName = `${node.name}/W`;
        initializers.push(floatTensor(wName, w.dims, w.data));
        const convInputs = [x.name, wName];
        const fused = node.op === '_FusedConv2D' ? attrStrings(node, 'fused_ops') : [];
        if (fused[0] === 'BiasAdd') {
          const b = constOf(node.input[2]!);
          const bName = `${node.name}/B`;
          initializers.push(floatTensor(bName, [outs], growVector(b.data as Float32Array, outs)));
          convInputs.push(bName);
        } else if (fused.length > 0) {
          throw new Error(`${node.name}: fused ops ${fused.join('+')} are not supported`);
        }
        const activation = fused[1];
        const convOut = activation ? fresh(node.name) : node.name;
        const strides = spatial(node, 'strides');
        add('Conv', convInputs, convOut, [attr('strides', strides), attr('dilations', spatial(node, 'dilations')), attr('kernel_shape', w.dims.slice(2)), ...padAttrs(node)]);
        if (activation === 'Relu') add('Relu', [convOut], node.name);
        else if (activation !== undefined) throw new Error(`${node.name}: fused activation ${activation} is not supported`);
        mapped.set(node.name, { name: node.name, layout: 'NCHW', channels: own.dims[0], stored: outs, multiple: afterStride(x.multiple, strides, attrString(node, 'padding')) });
        break;
      }
      case 'DepthwiseConv2dNative': {
        const x = source(node.input[0]!);
        const own = depthwiseToOihw(constOf(node.input[1]!));
        const stored = x.stored ?? own.group;
        if (stored !== own.group && own.dims[0] !== own.group) throw new Error(`${node.name}: a depthwise multiplier above 1 on zero-grown channels is not supported`);
        if (stored !== own.group && ownChannels.has(node.name)) throw new Error(`${node.name}: its output must keep ${own.group} channels but its input has ${stored}`);
        const w = growFilter(own.dims, own.data, stored === own.group ? own.dims[0]! : stored, 1);
        const wName = `${node.name}/W`;
        initializers.push(floatTensor(wName, w.dims, w.data));
        const strides = spatial(node, 'strides');
        add('Conv', [x.name, wName], node.name, [attr('group', stored), attr('strides', strides), attr('dilations', spatial(node, 'dilations')), attr('kernel_shape', w.dims.slice(2)), ...padAttrs(node)]);
        mapped.set(node.name, { name: node.name, layout: 'NCHW', channels: own.dims[0], stored: w.dims[0], multiple: afterStride(x.multiple, strides, attrString(node, 'padding')) });
        break;
      }
      case 'MaxPool': {
        const x = source(node.input[0]!);
        const kernel = spatial(node, 'ksize');
        const strides = spatial(node, 'strides');
        const padding = attrString(node, 'padding');
        // SAME with kernel = stride pads nothing when the stride divides the height and width.
        const noPadding = options.nchwc !== undefined && padding === 'SAME' && kernel.every((k, i) => k === strides[i] && (x.multiple ?? 1) % k === 0);
        add('MaxPool', [x.name], node.name, [attr('kernel_shape', kernel), attr('strides', strides), ...(noPadding ? [attr('pads', [0, 0, 0, 0])] : padAttrs(node))]);
        mapped.set(node.name, { ...x, name: node.name, multiple: afterStride(x.multiple, strides, padding) });
        break;
      }
      case 'AddV2':
      case 'Add': {
        const [a, b] = node.input.map(source) as [Mapped, Mapped];
        if (a.layout !== b.layout) throw new Error(`${node.name}: operands in different layouts`);
        if (a.stored !== b.stored) throw new Error(`${node.name}: operands of ${a.stored} and ${b.stored} stored channels`);
        add('Add', [a.name, b.name], node.name);
        mapped.set(node.name, { ...a, name: node.name, multiple: Math.max(a.multiple ?? 1, b.multiple ?? 1) });
        break;
      }
      case 'Relu': {
        const x = source(node.input[0]!);
        add('Relu', [x.name], node.name);
        mapped.set(node.name, { ...x, name: node.name });
        break;
      }
      case 'Mean': {
        const x = source(node.input[0]!);
        if (x.stored !== x.channels) throw new Error(`${node.name}: a Mean of zero-grown channels is not supported`);
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
        const channelsOnly = x.layout === 'NCHW' && rank === 4 && p.every((v, i) => v === 0 || i === 7);
        if (options.nchwc && channelsOnly && x.channels !== undefined) {
          // Zero channels after the others: a 1x1 Conv by an identity matrix, which blocked kernels take.
          const channels = x.channels + p[7]!;
          const ins = x.stored ?? x.channels;
          const outs = storedFor(node, channels);
          const eye = new Float32Array(outs * ins);
          for (let c = 0; c < x.channels; c++) eye[c * ins + c] = 1;
          const wName = `${node.name}/eye`;
          initializers.push(floatTensor(wName, [outs, ins, 1, 1], eye));
          add('Conv', [x.name, wName], node.name, [attr('kernel_shape', [1, 1])]);
          mapped.set(node.name, { ...x, name: node.name, channels, stored: outs });
          break;
        }
        if (x.stored !== x.channels) throw new Error(`${node.name}: a spatial Pad of zero-grown channels is not supported`);
        const perm = x.layout === 'NCHW' ? [0, 3, 1, 2] : Array.from({ length: rank }, (_, i) => i);
        const begins = perm.map((axis) => p[axis * 2]!);
        const ends = perm.map((axis) => p[axis * 2 + 1]!);
        const padsName = `${node.name}/pads`;
        initializers.push(int64Tensor(padsName, [...begins, ...ends]));
        add('Pad', [x.name, padsName], node.name, [attr('mode', 'constant')]);
        mapped.set(node.name, { ...x, name: node.name, channels: x.channels === undefined ? undefined : x.channels + p[6]! + p[7]!, stored: x.stored === undefined ? undefined : x.stored + p[6]! + p[7]!, multiple: p.every((v, i) => v === 0 || i >= 6) ? x.multiple : 1 });
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
