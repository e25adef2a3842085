import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { clahe } from '../../vision/clahe.ts';
import { anchorCounts, decodeDetections, nonMaxSuppression } from '../../vision/detector.ts';
import { ClassifierEngine, EMOTION_MODELS, MODELS_DIR, widen, type EmotionModel } from '../../processors/classifier/engine.ts';
import { scoreClassification } from '../../processors/classifier/evaluate.ts';
import { resizeGrey } from '../../vision/image.ts';
import { EmotionMuseError } from '../../schemas/errors.ts';
import type { Frame } from '../../schemas/generated/types.ts';
import { cameraFrame, FACE_PHOTOS, FER_PUBLIC_TEST, noFacePhoto } from '../../sessions/faces.ts';

const fixture = JSON.parse(readFileSync(new URL('../fixtures/clahe-opencv.json', import.meta.url), 'utf8')) as {
  cases: Array<{ width: number; height: number; input: number[]; output: number[] }>;
};

describe('CLAHE', () => {
  it.each(fixture.cases.map((c) => [`${c.width}x${c.height}`, c] as const))('matches OpenCV within one grey level on %s', (_name, c) => {
    const out = clahe(Uint8Array.from(c.input), c.width, c.height, 2.0, 8, 8);
    const worst = out.reduce((m, v, i) => Math.max(m, Math.abs(v - c.output[i]!)), 0);
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('leaves a flat image flat', () => {
    const out = clahe(new Uint8Array(64 * 64).fill(90), 64, 64);
    expect(new Set(out).size).toBe(1);
  });
});

describe('grey resize', () => {
  it('averages areas when shrinking and interpolates when growing', () => {
    const src = { data: Uint8Array.from([0, 0, 100, 100, 0, 0, 100, 100]), width: 4, height: 2 };
    expect(Array.from(resizeGrey(src, 2, 1))).toEqual([0, 100]);
    const up = resizeGrey({ data: Uint8Array.from([0, 200]), width: 2, height: 1 }, 4, 1);
    expect(Array.from(up)).toEqual([0, 50, 150, 200]);
  });
});

describe('face detection decoding', () => {
  it('places a confident anchor box at its anchor centre plus the regressed offset, in frame pixels', () => {
    const logits = new Float32Array(896).fill(-10);
    const regs = new Float32Array(896 * 16);
    logits[0] = 5; // first stride-16 anchor, centre (8, 8) in the 256x256 input
    regs.set([4, -2, 32, 48], 0);
    const [box, ...rest] = decodeDetections(logits, regs, { width: 256, height: 256 }, 2);
    expect(rest).toEqual([]);
    // centre (12, 6) -> (24, 12) in a 512 frame; size 64 x 96
    expect(box).toMatchObject({ x: 24 - 32, y: 12 - 48, width: 64, height: 96 });
    expect(box!.score).toBeCloseTo(1 / (1 + Math.exp(-5)), 6);
  });

  it('lays anchors out row by row for a non-square input (128x96: 8x6 cells x 2, then 4x3 x 6)', () => {
    const input = { width: 128, height: 96 };
    expect(anchorCounts(input)).toEqual([96, 72]);
    const logits = new Float32Array(96 + 72).fill(-10);
    const regs = new Float32Array((96 + 72) * 16);
    // stride-16 head, row 1, column 3, second anchor: index (1 * 8 + 3) * 2 + 1; centre (56, 24)
    const i = (1 * 8 + 3) * 2 + 1;
    logits[i] = 3;
    regs.set([0, 0, 20, 20], i * 16);
    // stride-32 head, row 2, column 0, first anchor: centre (16, 80)
    const j = 96 + (2 * 4 + 0) * 6;
    logits[j] = 3;
    regs.set([0, 0, 10, 10], j * 16);
    const boxes = decodeDetections(logits, regs, input, 5).sort((a, b) => a.x - b.x);
    expect(boxes.map((b) => [b.x, b.y, b.width])).toEqual([
      [(16 - 5) * 5, (80 - 5) * 5, 50],
      [(56 - 10) * 5, (24 - 10) * 5, 100],
    ]);
  });

  it('keeps the best of overlapping boxes', () => {
    const kept = nonMaxSuppression(
      [
        { x: 0, y: 0, width: 10, height: 10, score: 0.7 },
        { x: 1, y: 1, width: 10, height: 10, score: 0.9 },
        { x: 50, y: 50, width: 10, height: 10, score: 0.8 },
      ],
      0.3,
    );
    expect(kept.map((b) => b.score)).toEqual([0.9, 0.8]);
  });

  it('widens a box by 10% on each side and clips it to the frame', () => {
    expect(widen({ x: 100, y: 100, width: 50, height: 100 }, 640, 480)).toEqual({ left: 95, top: 90, width: 60, height: 120 });
    expect(widen({ x: 0, y: 400, width: 50, height: 100 }, 640, 480)).toEqual({ left: 0, top: 390, width: 55, height: 90 });
  });
});

describe('classification scores', () => {
  it('computes accuracy, per-class figures, macro-F1 and the confusion matrix', () => {
    const r = scoreClassification([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ['a', 'b', 'c']);
    expect(r.accuracy).toBeCloseTo(3 / 5);
    expect(r.confusion).toEqual([[1, 1, 0], [0, 2, 0], [1, 0, 0]]);
    expect(r.perClass[1]).toMatchObject({ precision: 2 / 3, recall: 1, support: 2 });
    expect(r.perClass[2]).toMatchObject({ precision: 0, recall: 0, f1: 0, support: 1 });
    expect(r.macroF1).toBeCloseTo((0.5 + 0.8 + 0) / 3);
  });
});

describe('classifier engine (real converted models on ONNX Runtime, CPU)', () => {
  let engine: ClassifierEngine;
  const frame = (data: Buffer, extra: Partial<Frame> = {}): Frame => ({
    userId: 'u', sessionId: 's', seq: 1, captureTimeMs: 0, encoding: 'JPEG', width: 0, height: 0, data, faceBox: null, probabilities: [], edgeModelVersion: '', ...extra,
  });

  beforeAll(async () => {
    engine = await ClassifierEngine.create({ providers: ['cpu'] });
  });

  it('finds the face in real photos and gives 7 probabilities that sum to 1; no face in a plain image', async () => {
    const results = await engine.classify([frame(await cameraFrame(FACE_PHOTOS[0]!)), frame(await noFacePhoto()), frame(await cameraFrame(FACE_PHOTOS[5]!))]);
    const [a, none, b] = results;
    for (const r of [a, b]) {
      if (r instanceof EmotionMuseError || !r) throw new Error('expected a result');
      expect(r.faceFound).toBe(true);
      expect(r.probabilities).toHaveLength(7);
      expect(r.probabilities.reduce((s, p) => s + p, 0)).toBeCloseTo(1, 4);
      expect(r.faceBox!.width).toBeGreaterThan(30);
      expect(r.timings.inferMs).toBeGreaterThan(0);
      expect(r.timings.detectMs).toBeGreaterThan(0);
    }
    expect(none).toMatchObject({ faceFound: false, probabilities: [], faceBox: null });
  });

  it('gives the same probabilities for a frame alone and inside a batch', async () => {
    const photo = frame(await cameraFrame(FACE_PHOTOS[2]!));
    const [alone] = await engine.classify([photo]);
    const batch = await engine.classify([frame(await cameraFrame(FACE_PHOTOS[1]!)), photo, frame(await noFacePhoto())]);
    const p1 = (alone as { probabilities: number[] }).probabilities;
    const p2 = (batch[1] as { probabilities: number[] }).probabilities;
    p1.forEach((p, i) => expect(p).toBeCloseTo(p2[i]!, 5));
  });

  it('gives the same results when the detector runs the frames in smaller batches', async () => {
    const frames = [frame(await cameraFrame(FACE_PHOTOS[0]!)), frame(await cameraFrame(FACE_PHOTOS[1]!)), frame(await noFacePhoto()), frame(await cameraFrame(FACE_PHOTOS[2]!)), frame(await cameraFrame(FACE_PHOTOS[3]!))];
    const twoAtATime = await ClassifierEngine.create({ providers: ['cpu'], maxDetectBatch: 2 });
    const [whole, pieces] = [await engine.classify(frames), await twoAtATime.classify(frames)];
    expect(pieces.map((r) => (r as { faceFound: boolean }).faceFound)).toEqual([true, true, false, true, true]);
    pieces.forEach((r, i) => {
      const want = whole[i] as { probabilities: number[]; faceBox: unknown };
      const got = r as { probabilities: number[]; faceBox: unknown };
      expect(got.faceBox).toEqual(want.faceBox);
      got.probabilities.forEach((p, k) => expect(p).toBeCloseTo(want.probabilities[k]!, 5));
    });
  });

  it('classifies edge-cropped GRAY8 faces without detection', async () => {
    const { data, info } = await sharp(FACE_PHOTOS[0]!).extract({ left: 400, top: 380, width: 250, height: 250 }).greyscale().raw().toBuffer({ resolveWithObject: true });
    const [r] = await engine.classify([frame(data, { encoding: 'GRAY8', width: info.width, height: info.height })]);
    expect(r).toMatchObject({ faceFound: true, faceBox: null });
    expect((r as { timings: { detectMs: number } }).timings.detectMs).toBe(0);
  });

  it('returns typed errors for corrupt, empty, mis-sized and oversized frames, in their own slots', async () => {
    const small = await ClassifierEngine.create({ providers: ['cpu'], maxFramePixels: 100 * 100 });
    const results = await small.classify([
      frame(Buffer.from('definitely not a jpeg')),
      frame(Buffer.alloc(0)),
      frame(Buffer.alloc(10), { encoding: 'GRAY8', width: 4, height: 4 }),
      frame(await noFacePhoto()),
      frame(Buffer.alloc(64 * 64, 128), { encoding: 'GRAY8', width: 64, height: 64 }),
    ]);
    expect(results.slice(0, 4).map((r) => (r instanceof EmotionMuseError ? r.code : 'ok'))).toEqual(['UNDECODABLE_FRAME', 'UNDECODABLE_FRAME', 'UNDECODABLE_FRAME', 'OVERSIZED_RECORD']);
    expect(results[4]).toMatchObject({ faceFound: true });
  });

  it('uses the CUDA provider when asked and falls back to CPU when it is not installed', async () => {
    const e = await ClassifierEngine.create({ providers: ['cuda', 'cpu'] });
    expect(['cuda', 'cpu']).toContain(e.provider);
  });
});

describe.each([
  { int8: 'int8', float32: 'float32' },
  { int8: 'int8-48', float32: 'float32-48' },
  { int8: 'fer-int8', float32: 'fer' },
] as const)('the int8 emotion model $int8', ({ int8: int8Model, float32: float32Model }) => {
  const sha = (file: string) => createHash('sha256').update(readFileSync(path.join(MODELS_DIR, file))).digest('hex');

  it('is the file its card describes, derived from the committed float32 model', () => {
    const cardOf = (model: EmotionModel) => JSON.parse(readFileSync(path.join(MODELS_DIR, EMOTION_MODELS[model].card), 'utf8')) as { sha256: string; derivedFrom: { sha256: string }; quality: { withoutClahe: { accuracy: number } } };
    const card = cardOf(int8Model);
    expect(card.sha256).toBe(sha(EMOTION_MODELS[int8Model].file));
    expect(card.derivedFrom.sha256).toBe(sha(EMOTION_MODELS[float32Model].file));
    const float32 = cardOf(float32Model);
    expect(sha(EMOTION_MODELS[float32Model].file)).toBe(float32.sha256);
    // The measured cost of quantization, as the cards report it: under one point of accuracy.
    expect(float32.quality.withoutClahe.accuracy - card.quality.withoutClahe.accuracy).toBeLessThan(0.01);
  });

  it('agrees with the float32 model on real faces (FER-2013 crops, or the face photos where that data is absent)', async () => {
    const [int8, float32] = await Promise.all([ClassifierEngine.create({ providers: ['cpu'], emotionModel: int8Model }), ClassifierEngine.create({ providers: ['cpu'], emotionModel: float32Model })]);
    expect(int8.inputSide).toBe(EMOTION_MODELS[int8Model].input);
    expect(int8.modelVersion).toMatch(/-int8$/);
    let crops: Array<{ data: Uint8Array; width: number; height: number }>;
    if (existsSync(FER_PUBLIC_TEST)) {
      const files = readdirSync(FER_PUBLIC_TEST).flatMap((c) => readdirSync(path.join(FER_PUBLIC_TEST, c)).slice(0, 30).map((f) => path.join(FER_PUBLIC_TEST, c, f)));
      crops = await Promise.all(files.map(async (f) => {
        const { data, info } = await sharp(f).greyscale().raw().toBuffer({ resolveWithObject: true });
        return { data: new Uint8Array(data), width: info.width, height: info.height };
      }));
    } else {
      console.warn(`${FER_PUBLIC_TEST} is absent: comparing on the face photos only`);
      crops = await Promise.all(FACE_PHOTOS.map(async (f) => {
        const { data, info } = await sharp(f).resize(256, 256, { fit: 'cover' }).greyscale().raw().toBuffer({ resolveWithObject: true });
        return { data: new Uint8Array(data), width: info.width, height: info.height };
      }));
    }
    const [a, b] = await Promise.all([int8.classifyCrops(crops), float32.classifyCrops(crops)]);
    const argmax = (p: Float32Array) => p.indexOf(Math.max(...p));
    const agree = a.filter((p, i) => argmax(p) === argmax(b[i]!)).length / a.length;
    const meanDiff = a.reduce((s, p, i) => s + p.reduce((t, v, k) => t + Math.abs(v - b[i]![k]!), 0) / 7, 0) / a.length;
    expect(agree, `top class agreement over ${a.length} faces`).toBeGreaterThanOrEqual(0.9);
    expect(meanDiff).toBeLessThan(0.03);
  });
});

describe('inference threads', () => {
  it('give the same results as the calling thread, for crops and full frames, with calls in parallel', async () => {
    const [here, threads] = await Promise.all([ClassifierEngine.create({ providers: ['cpu'] }), ClassifierEngine.create({ providers: ['cpu'], inferenceThreads: 2, threads: 1 })]);
    const { data, info } = await sharp(FACE_PHOTOS[0]!).extract({ left: 400, top: 380, width: 250, height: 250 }).greyscale().raw().toBuffer({ resolveWithObject: true });
    const frames: Frame[] = [
      { userId: 'u', sessionId: 's', seq: 1, captureTimeMs: 0, encoding: 'GRAY8', width: info.width, height: info.height, data, faceBox: null, probabilities: [], edgeModelVersion: '' },
      { userId: 'u', sessionId: 's', seq: 2, captureTimeMs: 0, encoding: 'JPEG', width: 0, height: 0, data: await cameraFrame(FACE_PHOTOS[3]!), faceBox: null, probabilities: [], edgeModelVersion: '' },
    ];
    const expected = await here.classify(frames);
    const parallel = await Promise.all([threads.classify(frames), threads.classify(frames), threads.classify(frames)]);
    for (const got of parallel) {
      got.forEach((r, i) => {
        const want = expected[i] as { probabilities: number[]; faceBox: unknown };
        expect((r as { faceBox: unknown }).faceBox).toEqual(want.faceBox);
        (r as { probabilities: number[] }).probabilities.forEach((p, k) => expect(p).toBeCloseTo(want.probabilities[k]!, 5));
      });
    }
  });
});

describe('inference threads move whole buffers and copy views', () => {
  it('a feed that owns its buffer is moved (detached here); a view into a larger buffer is copied and stays readable', async () => {
    const { openSession, ort } = await import('../../runtime/onnx.ts');
    const { session } = await openSession(path.join(MODELS_DIR, EMOTION_MODELS['int8-48'].file), { providers: ['cpu'], inferenceThreads: 2, threads: 1 });
    const owned = new Float32Array(48 * 48).fill(0.1);
    const big = new Float32Array(3 * 48 * 48).fill(0.1);
    const view = big.subarray(48 * 48, 2 * 48 * 48);
    const a = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', owned, [1, 48, 48, 1]) });
    const b = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', view, [1, 48, 48, 1]) });
    expect(owned.length).toBe(0); // moved to the inference thread
    expect(big.length).toBe(3 * 48 * 48);
    expect(view[0]).toBeCloseTo(0.1, 6);
    expect(Array.from(b[session.outputNames[0]!]!.data as Float32Array)).toEqual(Array.from(a[session.outputNames[0]!]!.data as Float32Array));
  });
});

describe('test-time flip averaging', () => {
  it('mirrors a grey face left to right', async () => {
    const { mirror } = await import('../../processors/classifier/evaluate.ts');
    const img = { data: Uint8Array.from([1, 2, 3, 4, 5, 6]), width: 3, height: 2 };
    expect(Array.from(mirror(img).data)).toEqual([3, 2, 1, 6, 5, 4]);
    expect(Array.from(mirror(mirror(img)).data)).toEqual(Array.from(img.data));
  });
});
