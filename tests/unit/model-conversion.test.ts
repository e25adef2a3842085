import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildModel, sourcePackage, MODELS_DIR } from '../../models/build.ts';
import { loadTfjsGraph } from '../../models/convert/tfjs-graph.ts';
import { convertTfjsToOnnx } from '../../models/convert/tfjs-to-onnx.ts';
import onnxProto from 'onnx-proto';
import { MODEL_SPECS } from '../../vision/model-specs.ts';
import { ort } from '../../runtime/onnx.ts';
import { FACE_PHOTOS } from '../../sessions/faces.ts';

async function tfjsModel(name: string): Promise<tf.GraphModel> {
  const g = loadTfjsGraph(`${sourcePackage().dir}/models/${name}.json`);
  const weightData = g.weightData.buffer.slice(g.weightData.byteOffset, g.weightData.byteOffset + g.weightData.length) as ArrayBuffer;
  return tf.loadGraphModel(tf.io.fromMemory({ modelTopology: g.json.modelTopology, weightSpecs: g.json.weightsManifest.flatMap((m) => m.weights) as tf.io.WeightsManifestEntry[], weightData }));
}

/**
 * The largest difference, measured absolutely for values up to 1 and relative to the value above
 * (|a - b| / max(1, |a|)): BlazeFace's raw logits reach magnitudes of 10^4, where one float32 step
 * is already 1e-3, so an absolute 1e-4 cannot hold for them in any float32 runtime.
 */
function maxScaledDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(a[i]!)));
  return max;
}

async function compare(name: 'emotion' | 'blazeface' | 'blazeface-nchwc', input: Float32Array, shape: number[]): Promise<number> {
  const model = await tfjsModel(name === 'blazeface-nchwc' ? 'blazeface' : name);
  const session = await ort.InferenceSession.create(`${MODELS_DIR}${name}.onnx`);
  const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', input, shape) });
  let worst = 0;
  for (const output of session.outputNames) {
    const expected = tf.tidy(() => (model.execute(tf.tensor(input, shape), output) as tf.Tensor).dataSync());
    worst = Math.max(worst, maxScaledDiff(expected, out[output]!.data as Float32Array));
  }
  model.dispose();
  await session.release();
  return worst;
}

function seeded(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1);
}

describe('TF.js -> ONNX conversion', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it.each([1, 4])('emotion model matches TF.js within 1e-4 on random inputs, batch %i', async (batch) => {
    // Probabilities lie in [0, 1]: the scaled difference is the absolute one here.
    expect(await compare('emotion', seeded(batch * 64 * 64, 11 + batch), [batch, 64, 64, 1])).toBeLessThanOrEqual(1e-4);
  });

  it('blazeface matches TF.js within 1e-4 (relative above 1) on a random input', async () => {
    expect(await compare('blazeface', seeded(256 * 256 * 3, 5), [1, 256, 256, 3])).toBeLessThanOrEqual(1e-4);
  }, 60_000);

  it('the blocked-layout blazeface matches TF.js within 1e-4 on a random input', async () => {
    expect(await compare('blazeface-nchwc', seeded(256 * 256 * 3, 7), [1, 256, 256, 3])).toBeLessThanOrEqual(1e-4);
  }, 60_000);

  it.each([[192, 256], [128, 96], [320, 224]])('the blocked-layout blazeface gives the plain one\'s outputs within 1e-4 at %ix%i, batch 2 (TF.js takes 256x256 only)', async (h, w) => {
    const input = new ort.Tensor('float32', seeded(2 * h * w * 3, h + w), [2, h, w, 3]);
    const [plain, blocked] = await Promise.all(['blazeface', 'blazeface-nchwc'].map((name) => ort.InferenceSession.create(`${MODELS_DIR}${name}.onnx`)));
    const [a, b] = await Promise.all([plain!.run({ input }), blocked!.run({ input })]);
    for (const output of plain!.outputNames) expect(maxScaledDiff(a[output]!.data as Float32Array, b[output]!.data as Float32Array)).toBeLessThanOrEqual(1e-4);
    await Promise.all([plain!.release(), blocked!.release()]);
  }, 60_000);

  it('the blocked layout pads no channel that a head reads, and no layer falls back to a plain Pad', () => {
    const graph = loadTfjsGraph(`${sourcePackage().dir}/models/blazeface.json`);
    const plain = onnxProto.onnx.ModelProto.decode(convertTfjsToOnnx(graph, { name: 'b', dynamicSpatial: true }));
    const blocked = onnxProto.onnx.ModelProto.decode(convertTfjsToOnnx(graph, { name: 'b', dynamicSpatial: true, nchwc: { block: 16, spatialMultiple: 32 } }));
    const ops = (m: typeof plain) => m.graph!.node!.map((n) => n.opType);
    expect(ops(plain).filter((op) => op === 'Pad')).toHaveLength(2);
    expect(ops(blocked).filter((op) => op === 'Pad')).toHaveLength(0);
    const filters = (m: typeof plain) => m.graph!.initializer!.filter((t) => t.dims!.length === 4).map((t) => Number(t.dims![0]));
    // Every filter of the blocked graph has a multiple of 16 outputs, except the heads' (2, 6, 32, 96 values per cell).
    const odd = filters(blocked).filter((o) => o % 16 !== 0).sort((a, b) => a - b);
    expect(odd).toEqual(filters(plain).filter((o) => o % 16 !== 0 && o !== 24).sort((a, b) => a - b));
    expect(filters(plain)).toContain(24);
    expect(filters(blocked)).not.toContain(24);
  });

  it('both models match TF.js within 1e-4 (relative above 1) on real face photos and crops', async () => {
    for (const file of FACE_PHOTOS.slice(0, 2)) {
      const { data } = await sharp(file).removeAlpha().resize(256, 256, { fit: 'contain', position: 'left top', background: '#000' }).raw().toBuffer({ resolveWithObject: true });
      const input = Float32Array.from(data, (p) => p / 127.5 - 1);
      expect(await compare('blazeface', input, [1, 256, 256, 3])).toBeLessThanOrEqual(1e-4);
      expect(await compare('blazeface-nchwc', input, [1, 256, 256, 3])).toBeLessThanOrEqual(1e-4);
      const meta = await sharp(file).metadata();
      // The centre third of each photo holds a face; a grey 64x64 crop of it, normalised as the card says.
      const crop = await sharp(file).extract({ left: Math.round(meta.width! / 3), top: Math.round(meta.height! / 6), width: Math.round(meta.width! / 3), height: Math.round(meta.height! / 3) }).greyscale().resize(64, 64, { fit: 'fill' }).raw().toBuffer();
      expect(await compare('emotion', Float32Array.from(crop, (p) => (p / 255 - 0.5) * 2), [1, 64, 64, 1])).toBeLessThanOrEqual(1e-4);
    }
  }, 90_000);

  it('refuses ops it does not know, by name', () => {
    const graph = loadTfjsGraph(`${sourcePackage().dir}/models/emotion.json`);
    const odd = { ...graph, nodes: [...graph.nodes, { name: 'x', op: 'Erf', input: [], attr: {} }] };
    expect(() => convertTfjsToOnnx(odd, { name: 'x' })).toThrow('unsupported TF.js ops: Erf');
  });

  it.each(Object.values(MODEL_SPECS).map((s) => s.name))('rebuilds %s.onnx byte for byte, as its model card says', (name) => {
    const { bytes, card } = buildModel(MODEL_SPECS[name as keyof typeof MODEL_SPECS]);
    const committed = readFileSync(`${MODELS_DIR}${name}.onnx`);
    const cardFile = JSON.parse(readFileSync(`${MODELS_DIR}${name}.card.json`, 'utf8')) as { sha256: string };
    expect(createHash('sha256').update(committed).digest('hex')).toBe(cardFile.sha256);
    expect(card.sha256).toBe(cardFile.sha256);
    expect(Buffer.from(bytes).equals(committed)).toBe(true);
  });
});
