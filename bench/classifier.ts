/**
 * Classifier benchmark: inference alone (every emotion model: int8 and float32, at 64x64 and fine-tuned for 48x48) at batch
 * 1, 8, 32, 64, and the whole stage (decode + detect + preprocess + infer, default model) on 640x480 JPEG camera frames and
 * on edge-cropped grey faces. The whole-stage rows run the stage as the classifier processor does by default: both models
 * in two inference threads (one ONNX Runtime thread each), a batch above 16 frames cut into pieces of 16 that run side by
 * side (runtime/coalesce.ts, as processors/classifier/core.ts calls it).
 * `npm run bench:classifier` (add `-- --seconds 5` for longer runs).
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { ClassifierEngine, DEFAULT_EMOTION_MODEL, EMOTION_MODELS, type EmotionModel } from '../processors/classifier/engine.ts';
import { resizeGrey } from '../vision/image.ts';
import type { Frame } from '../schemas/generated/types.ts';
import { DEFAULT_DETECTOR_SIDES, formatDetectorSides } from '../vision/face-crop.ts';
import { FACE_PHOTOS, FER_PUBLIC_TEST, webcamFrame } from '../sessions/faces.ts';
import { machine, percentile, table, timeIt } from './machine.ts';
import { coalesce } from '../runtime/coalesce.ts';
import { DEFAULT_MAX_INFERENCE_BATCH } from '../vision/emotion-cnn.ts';

const argv = process.argv.slice(2);
if (argv.includes('--help')) {
  process.stdout.write(`npm run bench:classifier [-- options]: every emotion model alone, then the whole classifier stage

  --seconds 2          length of each of the three timed runs of a row
  --models a,b         only these emotion models in the inference-only rows (default: all)
  --inference-only     no whole-stage rows
`);
  process.exit(0);
}
const flag = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const ms = Number(flag('--seconds') ?? 2) * 1000;
const onlyModels = flag('--models')?.split(',');
const unknownModels = (onlyModels ?? []).filter((m) => !(m in EMOTION_MODELS));
if (unknownModels.length > 0) {
  process.stderr.write(`unknown emotion model(s): ${unknownModels.join(', ')}; the models are ${Object.keys(EMOTION_MODELS).join(', ')}\n`);
  process.exit(2);
}
const INFERENCE_THREADS = 2;
/** The whole stage as the processor runs it: its defaults (two inference threads of one ONNX Runtime thread each, pieces of 16). */
async function stage(options: Parameters<typeof ClassifierEngine.create>[0] = {}): Promise<(frames: readonly Frame[]) => Promise<unknown>> {
  const e = await ClassifierEngine.create({ providers: ['cpu'], inferenceThreads: INFERENCE_THREADS, threads: 1, ...options });
  return coalesce((frames: Frame[]) => e.classify(frames), DEFAULT_MAX_INFERENCE_BATCH, INFERENCE_THREADS);
}
const engine = await ClassifierEngine.create({ providers: ['cpu'] });
console.log(`classifier benchmark on ${machine()}; execution provider ${engine.provider}; CLAHE off (default); inference-only rows: ONNX Runtime on this thread, threads per core; whole-stage rows: the default emotion model (${DEFAULT_EMOTION_MODEL}) in ${INFERENCE_THREADS} inference threads of one ONNX Runtime thread each, batches over ${DEFAULT_MAX_INFERENCE_BATCH} in pieces side by side, as the classifier processor runs\n`);

const rows: string[][] = [];
/** Three timed runs; the row reports the median run, so one noisy neighbour does not decide it. */
async function measure(label: string, batch: number, fn: () => Promise<unknown>, warmup = 3): Promise<void> {
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await timeIt(fn, ms, warmup));
  runs.sort((a, b) => a.msPerCall - b.msPerCall);
  const r = runs[1]!;
  rows.push([label, (r.msPerCall / batch).toFixed(3), ((batch * 1000) / r.msPerCall).toFixed(0), r.msPerCall.toFixed(2), percentile(r.samples, 0.99).toFixed(2)]);
  process.stderr.write(`  measured: ${label}\n`);
}

const frame = (data: Buffer, extra: Partial<Frame> = {}): Frame => ({ userId: 'u', sessionId: 's', seq: 1, captureTimeMs: 0, encoding: 'JPEG', width: 0, height: 0, data, faceBox: null, probabilities: [], edgeModelVersion: '', ...extra });
const jpegs = await Promise.all(FACE_PHOTOS.map((f) => sharp(f).resize(640, 480, { fit: 'cover' }).jpeg({ quality: 85 }).toBuffer()));

const greyFiles = (() => {
  try {
    const dir = path.join(FER_PUBLIC_TEST, 'happy');
    return readdirSync(dir).slice(0, 64).map((f) => path.join(dir, f));
  } catch {
    return [];
  }
})();
const crops = greyFiles.length > 0
  ? await Promise.all(greyFiles.map(async (f) => sharp(f).greyscale().raw().toBuffer({ resolveWithObject: true })))
  : await Promise.all(FACE_PHOTOS.map((f) => sharp(f).extract({ left: 700, top: 300, width: 480, height: 480 }).resize(48, 48).greyscale().raw().toBuffer({ resolveWithObject: true })));
for (const name of (onlyModels ?? Object.keys(EMOTION_MODELS)) as EmotionModel[]) {
  const e = await ClassifierEngine.create({ providers: ['cpu'], emotionModel: name });
  const modelInputs = crops.map((c) => resizeGrey({ data: new Uint8Array(c.data), width: c.info.width, height: c.info.height }, e.inputSide, e.inputSide));
  for (const batch of [1, 8, 32, 64]) {
    const inputs = Array.from({ length: batch }, (_, i) => modelInputs[i % modelInputs.length]!);
    await measure(`inference only (${e.inputSide}x${e.inputSide} face crops), ${name}, batch ${batch}`, batch, () => e.infer(inputs));
  }
}
if (argv.includes('--inference-only')) {
  console.log(table(['what', 'ms per frame', 'frames/s', 'ms per batch', 'p99 ms per batch'], rows));
  process.exit(0);
}
// Camera-like frames: one person in front of the camera, the face about 180 pixels wide.
const webcam = await Promise.all([[0, 0], [1, 1], [2, 1], [3, 2], [4, 0], [5, 3]].map(([p, f]) => webcamFrame(p!, f!, { faceWidth: 180 })));
const defaultStage = await stage();
const cascade = await stage({ detectorSides: [128, 256] });
for (const [label, images] of [['group photos, faces 55-80 px', jpegs], ['one face of 180 px', webcam]] as const) {
  for (const [name, classify] of [[`detector ${formatDetectorSides(DEFAULT_DETECTOR_SIDES)}`, defaultStage], ['detector 128/256', cascade]] as const) {
    for (const batch of [1, 32]) {
      const frames = Array.from({ length: batch }, (_, i) => frame(images[i % images.length]!));
      await measure(`whole stage, 640x480 JPEG (${label}), ${name}, batch ${batch}`, batch, () => classify(frames), 2);
    }
  }
}
for (const batch of [1, 32, 64]) {
  const frames = Array.from({ length: batch }, (_, i) => {
    const c = crops[i % crops.length]!;
    return frame(c.data, { encoding: 'GRAY8', width: c.info.width, height: c.info.height });
  });
  await measure(`whole stage, edge-cropped grey ${crops[0]!.info.width}x${crops[0]!.info.height}, batch ${batch}`, batch, () => defaultStage(frames));
}
console.log(table(['what', 'ms per frame', 'frames/s', 'ms per batch', 'p99 ms per batch'], rows));
