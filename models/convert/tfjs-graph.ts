import { readFileSync } from 'node:fs';
import path from 'node:path';

/** A TensorFlow.js graph model as read from its model.json and weight shards. */
export interface TfjsGraph {
  readonly nodes: readonly TfNode[];
  readonly weights: ReadonlyMap<string, TfTensor>;
  /** The raw JSON (topology, manifest), for tools that load the same model elsewhere (tfjs). */
  readonly json: TfjsModelJson;
  readonly weightData: Buffer;
}

export interface TfNode {
  readonly name: string;
  readonly op: string;
  readonly input: readonly string[];
  readonly attr: Record<string, TfAttr>;
}

export interface TfAttr {
  s?: string;
  b?: boolean;
  i?: string;
  f?: number;
  list?: { i?: string[]; s?: string[]; f?: number[] };
  shape?: { dim?: Array<{ size: string }> };
  type?: string;
}

export interface TfTensor {
  readonly dtype: 'float32' | 'int32';
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
}

export interface TfjsModelJson {
  format: string;
  modelTopology: { node: Array<{ name: string; op: string; input?: string[]; attr?: Record<string, TfAttr> }> };
  weightsManifest: Array<{ paths: string[]; weights: Array<{ name: string; shape: number[]; dtype: string; quantization?: unknown }> }>;
}

/** Reads model.json and its weight shards (float32 and int32 weights; quantised weights are refused). */
export function loadTfjsGraph(jsonPath: string): TfjsGraph {
  const json = JSON.parse(readFileSync(jsonPath, 'utf8')) as TfjsModelJson;
  if (json.format !== 'graph-model') throw new Error(`${jsonPath}: not a TF.js graph model (format ${json.format})`);
  const weights = new Map<string, TfTensor>();
  const shards: Buffer[] = [];
  for (const group of json.weightsManifest) {
    const data = Buffer.concat(group.paths.map((p) => readFileSync(path.join(path.dirname(jsonPath), p))));
    shards.push(data);
    let offset = 0;
    for (const w of group.weights) {
      if (w.quantization) throw new Error(`${w.name}: quantised weights are not supported`);
      if (w.dtype !== 'float32' && w.dtype !== 'int32') throw new Error(`${w.name}: dtype ${w.dtype} is not supported`);
      const count = w.shape.reduce((a, b) => a * b, 1);
      const bytes = data.subarray(offset, offset + count * 4);
      const copy = new ArrayBuffer(count * 4);
      new Uint8Array(copy).set(bytes);
      weights.set(w.name, { dtype: w.dtype, shape: w.shape, data: w.dtype === 'float32' ? new Float32Array(copy) : new Int32Array(copy) });
      offset += count * 4;
    }
    if (offset !== data.length) throw new Error(`${jsonPath}: weight shards hold ${data.length} bytes, the manifest ${offset}`);
  }
  const nodes = json.modelTopology.node.map((n) => ({ name: n.name, op: n.op, input: n.input ?? [], attr: n.attr ?? {} }));
  return { nodes, weights, json, weightData: Buffer.concat(shards) };
}

export function attrString(node: TfNode, key: string): string | undefined {
  const s = node.attr[key]?.s;
  return s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8');
}

export function attrStrings(node: TfNode, key: string): string[] {
  return (node.attr[key]?.list?.s ?? []).map((s) => Buffer.from(s, 'base64').toString('utf8'));
}

export function attrInts(node: TfNode, key: string): number[] {
  return (node.attr[key]?.list?.i ?? []).map(Number);
}
