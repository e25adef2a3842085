import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { ModelSession } from '../../runtime/onnx.ts';
import { EmotionMuseError, errorMessage } from '../../runtime/errors.ts';
import type { Logger } from '../../runtime/log.ts';
import { openSession, ort, type ExecutionProvider } from '../../runtime/onnx.ts';
import type { Frame, StageTimings } from '../../schemas/generated/types.ts';
import { MODEL_SPECS } from '../../models/specs.ts';
import { clahe } from './clahe.ts';
import { DETECTOR_INPUT, FaceDetector, type FaceBox } from './detector.ts';
import { normaliseInto, resizeGrey, type GreyImage } from './image.ts';

// libvips' operation cache keeps decoded pixels of recent inputs for reuse; every frame here is
// new, so it only holds memory (up to 50 MiB by default).
sharp.cache(false);

export const MODELS_DIR = fileURLToPath(new URL('../../models/', import.meta.url));
/**
 * The emotion CNNs: the converted original at its 64x64 input (`float32`) and quantized (`int8`),
 * and the same network fine-tuned for 48x48 input (`float32-48`, models/finetune/) and quantized
 * (`int8-48`, the default): the size of the crops edge clients send, so that no crop is upsampled
 * and the model runs on 56% of the pixels. Each card holds its accuracy.
 */
export const EMOTION_MODELS = {
  'int8-48': { file: 'emotion48-int8.onnx', card: 'emotion48-int8.card.json', input: 48, version: `${MODEL_SPECS.emotion.version}-ft48-int8` },
  'float32-48': { file: 'emotion48.onnx', card: 'emotion48.card.json', input: 48, version: `${MODEL_SPECS.emotion.version}-ft48` },
  int8: { file: 'emotion-int8.onnx', card: 'emotion-int8.card.json', input: 64, version: `${MODEL_SPECS.emotion.version}-int8` },
  float32: { file: 'emotion.onnx', card: 'emotion.card.json', input: 64, version: MODEL_SPECS.emotion.version },
} as const;
export type EmotionModel = keyof typeof EMOTION_MODELS;
export const DEFAULT_EMOTION_MODEL: EmotionModel = 'int8-48';

export interface ClassifierEngineOptions {
  /** Which emotion CNN to run (same outputs; each resizes faces to its own input). @defaultValue 'int8-48' */
  readonly emotionModel?: EmotionModel;
  /** Run both models in this many inference threads, off the event loop (see runtime/onnx.ts); 0 runs them in this thread. @defaultValue 0 */
  readonly inferenceThreads?: number;
  /** Execution providers to try in order. @defaultValue ['cuda', 'cpu'] */
  readonly providers?: readonly ExecutionProvider[];
  /** ONNX Runtime intra-op threads; 0 lets it choose. @defaultValue 0 */
  readonly threads?: number;
  /** Apply CLAHE (clip 2.0, 8x8 tiles) before normalising; off by default: this model was trained without it. @defaultValue false */
  readonly clahe?: boolean;
  /** Largest inference batch. @defaultValue 64 */
  readonly maxBatch?: number;
  /**
   * Largest detector batch (full frames). BlazeFace's activations at 256x256 are large, and ONNX
   * Runtime's arena keeps the largest batch's memory in every inference thread: at 16 frames the
   * classifier's resident memory reached about 450 MiB, at 4 about 350, for the same throughput.
   * @defaultValue 4
   */
  readonly maxDetectBatch?: number;
  /** Detector score threshold. @defaultValue 0.6 */
  readonly minFaceScore?: number;
  /** Frames with more pixels are refused (OVERSIZED_RECORD). @defaultValue 4096 * 4096 */
  readonly maxFramePixels?: number;
  readonly modelsDir?: string;
  readonly logger?: Logger;
}

export interface FrameResult {
  readonly faceFound: boolean;
  readonly probabilities: number[];
  readonly faceBox: Omit<FaceBox, 'score'> | null;
  readonly timings: StageTimings;
}

interface Pending {
  readonly index: number;
  timings: { decodeMs: number; detectMs: number; preprocessMs: number; inferMs: number };
  rgb?: { data: Buffer; width: number; height: number };
  grey?: GreyImage;
  box?: Omit<FaceBox, 'score'> | null;
  input?: Uint8Array;
}

const now = () => performance.now();

/**
 * The classifier's Stage 1 and 2: decode, detect (largest face), crop with 10% margin, grey,
 * resize to the CNN's input (48x48 or 64x64), CLAHE, normalise, and run the emotion CNN, with frames batched together.
 * Frames without a face are a normal result (`faceFound: false`); frames that cannot be decoded
 * come back as an EmotionMuseError (UNDECODABLE_FRAME or OVERSIZED_RECORD) in their slot.
 */
export class ClassifierEngine {
  private constructor(
    private readonly emotion: ModelSession,
    private readonly detector: FaceDetector,
    readonly provider: ExecutionProvider,
    readonly modelVersion: string,
    /** Side of the emotion CNN's square input. */
    readonly inputSide: number,
    private readonly options: Required<Omit<ClassifierEngineOptions, 'logger' | 'modelsDir' | 'providers' | 'emotionModel' | 'inferenceThreads'>>,
  ) {}

  static async create(options: ClassifierEngineOptions = {}): Promise<ClassifierEngine> {
    const dir = options.modelsDir ?? MODELS_DIR;
    const providers = options.providers ?? ['cuda', 'cpu'];
    const model = EMOTION_MODELS[options.emotionModel ?? DEFAULT_EMOTION_MODEL];
    const open = { providers, threads: options.threads, inferenceThreads: options.inferenceThreads, logger: options.logger };
    const emotion = await openSession(path.join(dir, model.file), open);
    const detector = await openSession(path.join(dir, 'blazeface.onnx'), open);
    return new ClassifierEngine(
      emotion.session,
      new FaceDetector(detector.session, { minScore: options.minFaceScore ?? 0.6 }),
      emotion.provider,
      model.version,
      model.input,
      {
        threads: options.threads ?? 0,
        clahe: options.clahe ?? false,
        maxBatch: options.maxBatch ?? 64,
        maxDetectBatch: options.maxDetectBatch ?? 4,
        minFaceScore: options.minFaceScore ?? 0.6,
        maxFramePixels: options.maxFramePixels ?? 4096 * 4096,
      },
    );
  }

  async classify(frames: readonly Frame[]): Promise<Array<FrameResult | EmotionMuseError>> {
    const results: Array<FrameResult | EmotionMuseError> = new Array(frames.length);
    const pending: Pending[] = [];
    const decoding: Array<Promise<void>> = [];
    frames.forEach((frame, index) => {
      const p: Pending = { index, timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 } };
      const t0 = now();
      const fail = (err: unknown) => {
        results[index] = err instanceof EmotionMuseError ? err : new EmotionMuseError('UNDECODABLE_FRAME', errorMessage(err), { cause: err });
      };
      const done = () => {
        p.timings.decodeMs = now() - t0;
        pending.push(p);
      };
      try {
        // Grey crops decode synchronously; JPEG and PNG go to libvips' thread pool together.
        const decoded = this.decode(frame, p);
        if (decoded) decoding.push(decoded.then(done, fail));
        else done();
      } catch (err) {
        fail(err);
      }
    });
    await Promise.all(decoding);
    pending.sort((a, b) => a.index - b.index);

    const toDetect = pending.filter((p) => p.rgb && p.box === undefined);
    if (toDetect.length > 0) {
      const t0 = now();
      const inputs = new Float32Array(toDetect.length * DETECTOR_INPUT * DETECTOR_INPUT * 3);
      await Promise.all(
        toDetect.map(async (p, i) => {
          const { data } = await sharp(p.rgb!.data, { raw: { width: p.rgb!.width, height: p.rgb!.height, channels: 3 } })
            .resize(DETECTOR_INPUT, DETECTOR_INPUT, { fit: 'contain', position: 'left top', background: { r: 0, g: 0, b: 0 } })
            .raw()
            .toBuffer({ resolveWithObject: true });
          const base = i * DETECTOR_INPUT * DETECTOR_INPUT * 3;
          for (let k = 0; k < data.length; k++) inputs[base + k] = data[k]! / 127.5 - 1;
        }),
      );
      const boxes: FaceBox[][] = [];
      for (let i = 0; i < toDetect.length; i += this.options.maxDetectBatch) {
        const slice = toDetect.slice(i, i + this.options.maxDetectBatch);
        const size = DETECTOR_INPUT * DETECTOR_INPUT * 3;
        const side = slice.map((p) => {
          const s = Math.max(p.rgb!.width, p.rgb!.height);
          return { width: s, height: s };
        });
        boxes.push(...(await this.detector.detect(inputs.subarray(i * size, (i + slice.length) * size), side)));
      }
      const detectMs = now() - t0;
      toDetect.forEach((p, i) => {
        p.timings.detectMs = detectMs;
        const largest = [...boxes[i]!].sort((a, b) => b.width * b.height - a.width * a.height)[0];
        p.box = largest ? { x: largest.x, y: largest.y, width: largest.width, height: largest.height } : null;
      });
    }

    for (const p of pending) {
      if (!p.grey) continue;
      const t0 = now();
      p.input = this.prepareGrey(p.grey);
      p.timings.preprocessMs = now() - t0;
    }
    await Promise.all(
      pending
        .filter((p) => p.rgb && p.box)
        .map(async (p) => {
          const t0 = now();
          const rgb = p.rgb!;
          const crop = widen(p.box!, rgb.width, rgb.height);
          if (crop.width >= 2 && crop.height >= 2) {
            const { data } = await sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } })
              .extract(crop)
              .greyscale()
              .resize(this.inputSide, this.inputSide, { fit: 'fill', kernel: 'linear' })
              .raw()
              .toBuffer({ resolveWithObject: true });
            const grey = new Uint8Array(data.buffer, data.byteOffset, this.inputSide * this.inputSide);
            p.input = this.options.clahe ? clahe(grey, this.inputSide, this.inputSide) : grey;
          } else {
            p.box = null;
          }
          p.timings.preprocessMs = now() - t0;
        }),
    );

    const withFace = pending.filter((p) => p.input);
    const probabilities = await this.infer(withFace.map((p) => p.input!), (ms, from, to) => {
      for (let i = from; i < to; i++) withFace[i]!.timings.inferMs = ms;
    });
    withFace.forEach((p, i) => {
      results[p.index] = { faceFound: true, probabilities: Array.from(probabilities[i]!), faceBox: p.box ?? null, timings: p.timings };
    });
    for (const p of pending) {
      if (!p.input) results[p.index] = { faceFound: false, probabilities: [], faceBox: null, timings: p.timings };
    }
    return results;
  }

  /** Grey face crops (already cut to the face) to probabilities: the evaluation's path. */
  async classifyCrops(crops: readonly GreyImage[]): Promise<Float32Array[]> {
    return this.infer(crops.map((c) => this.prepareGrey(c)));
  }

  private prepareGrey(grey: GreyImage): Uint8Array {
    const resized = resizeGrey(grey, this.inputSide, this.inputSide);
    return this.options.clahe ? clahe(resized, this.inputSide, this.inputSide) : resized;
  }

  /** Runs the emotion CNN over grey inputs of its size (inputSide squared) in batches of at most maxBatch. */
  async infer(inputs: readonly Uint8Array[], onBatch?: (ms: number, from: number, to: number) => void): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (let i = 0; i < inputs.length; i += this.options.maxBatch) {
      const batch = inputs.slice(i, i + this.options.maxBatch);
      const t0 = now();
      const pixels = this.inputSide * this.inputSide;
      const tensor = new Float32Array(batch.length * pixels);
      batch.forEach((g, k) => normaliseInto(g, tensor, k * pixels));
      const result = await this.emotion.run({ [this.emotion.inputNames[0]!]: new ort.Tensor('float32', tensor, [batch.length, this.inputSide, this.inputSide, 1]) });
      const probs = result[this.emotion.outputNames[0]!]!.data as Float32Array;
      for (let k = 0; k < batch.length; k++) out.push(probs.slice(k * 7, (k + 1) * 7));
      onBatch?.(now() - t0, i, i + batch.length);
    }
    return out;
  }

  /** Decodes a frame into `p`; returns a promise only for encoded images (JPEG, PNG). */
  private decode(frame: Frame, p: Pending): Promise<void> | undefined {
    if (frame.data.length === 0) throw new EmotionMuseError('UNDECODABLE_FRAME', 'frame has no bytes');
    if (frame.encoding === 'GRAY8') {
      if (frame.width <= 0 || frame.height <= 0 || frame.data.length !== frame.width * frame.height) {
        throw new EmotionMuseError('UNDECODABLE_FRAME', `GRAY8 frame of ${frame.width}x${frame.height} has ${frame.data.length} bytes`);
      }
      if (frame.width * frame.height > this.options.maxFramePixels) throw new EmotionMuseError('OVERSIZED_RECORD', `frame of ${frame.width}x${frame.height} pixels is over the limit`);
      p.grey = { data: new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.length), width: frame.width, height: frame.height };
      return undefined;
    }
    return sharp(frame.data, { limitInputPixels: this.options.maxFramePixels, failOn: 'error' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true })
      .then(
        ({ data, info }) => {
          if (info.channels !== 3) throw new EmotionMuseError('UNDECODABLE_FRAME', `decoded frame has ${info.channels} channels`);
          p.rgb = { data, width: info.width, height: info.height };
          if (frame.faceBox) p.box = { x: frame.faceBox.x, y: frame.faceBox.y, width: frame.faceBox.width, height: frame.faceBox.height };
        },
        (err: unknown) => {
          const message = errorMessage(err);
          if (/pixel limit/i.test(message)) throw new EmotionMuseError('OVERSIZED_RECORD', `${frame.encoding} frame is over the pixel limit: ${message}`, { cause: err });
          throw new EmotionMuseError('UNDECODABLE_FRAME', `${frame.encoding} frame could not be decoded: ${message}`, { cause: err });
        },
      );
  }
}

/** The face box widened by 10% on each side, clipped to the frame, in whole pixels. */
export function widen(box: Omit<FaceBox, 'score'>, width: number, height: number): { left: number; top: number; width: number; height: number } {
  const left = Math.max(0, Math.round(box.x - 0.1 * box.width));
  const top = Math.max(0, Math.round(box.y - 0.1 * box.height));
  const right = Math.min(width, Math.round(box.x + box.width + 0.1 * box.width));
  const bottom = Math.min(height, Math.round(box.y + box.height + 0.1 * box.height));
  return { left, top, width: Math.max(0, right - left), height: Math.max(0, bottom - top) };
}
