import { fileURLToPath } from 'node:url';
import { EmotionMuseError } from '../../schemas/errors.ts';
import type { Logger } from '../../runtime/log.ts';
import type { ExecutionProvider } from '../../runtime/onnx.ts';
import type { Frame, StageTimings } from '../../schemas/generated/types.ts';
import { DEFAULT_EMOTION_MODEL, EMOTION_MODELS, EmotionCnn, MODEL_FILE_INPUT, type EmotionModel } from '../../vision/emotion-cnn.ts';
import { DEFAULT_DETECTOR_SIDES, FaceCropper, widen, type Box, type CropSource, type FaceCrop } from '../../vision/face-crop.ts';
import type { GreyImage } from '../../vision/image.ts';

export { DEFAULT_EMOTION_MODEL, EMOTION_MODELS, widen, type EmotionModel };
export const MODELS_DIR = fileURLToPath(new URL('../../models/', import.meta.url));

export interface ClassifierEngineOptions {
  /** Which emotion CNN to run (same outputs; each resizes faces to its own input). @defaultValue 'int8-48' */
  readonly emotionModel?: EmotionModel;
  /** An ONNX emotion model file of the same shape instead (vision/emotion-cnn.ts). */
  readonly emotionModelFile?: string;
  /** Run both models in this many inference threads, off the event loop (see runtime/onnx.ts); 0 runs them in this thread. @defaultValue 0 */
  readonly inferenceThreads?: number;
  /** Execution providers to try in order. @defaultValue ['cuda', 'cpu'] */
  readonly providers?: readonly ExecutionProvider[];
  /** ONNX Runtime intra-op threads; 0 lets it choose. @defaultValue 0 */
  readonly threads?: number;
  /** Apply CLAHE (clip 2.0, 8x8 tiles) before normalising; off by default: this model was trained without it. @defaultValue false */
  readonly clahe?: boolean;
  /** Largest inference batch. @defaultValue DEFAULT_MAX_INFERENCE_BATCH (vision/emotion-cnn.ts) */
  readonly maxBatch?: number;
  /** The face detector's input side, or a cascade of sides (vision/face-crop.ts; recall of each in vision/README.md). @defaultValue [256] */
  readonly detectorSides?: readonly number[];
  /** Largest detector run (full frames): ONNX Runtime's arena in every inference thread keeps the largest run's memory. @defaultValue 4 */
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
  readonly faceBox: Box | null;
  readonly timings: StageTimings;
}

/** The crop source of an image frame (JPEG, PNG or an edge's GRAY8 crop). */
export function cropSourceOf(frame: Frame): CropSource {
  if (frame.data.length === 0) throw new EmotionMuseError('UNDECODABLE_FRAME', 'frame has no bytes');
  if (frame.encoding === 'GRAY8') return { grey: { data: new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.length), width: frame.width, height: frame.height } };
  if (frame.encoding === 'JPEG' || frame.encoding === 'PNG') return { encoded: frame.data, encoding: frame.encoding, faceBox: frame.faceBox };
  throw new EmotionMuseError('UNDECODABLE_FRAME', `a ${frame.encoding} frame holds no image`);
}

/**
 * The classifier's Stage 1 and 2: the face crop of vision/face-crop.ts (decode at reduced scale,
 * detect the largest face, widen by 10%, crop, grey, resize to the CNN's input, CLAHE), then the
 * emotion CNN, with frames batched together. Frames without a face are a normal result
 * (`faceFound: false`); frames that cannot be decoded come back as an EmotionMuseError
 * (UNDECODABLE_FRAME or OVERSIZED_RECORD) in their slot.
 */
export class ClassifierEngine {
  private constructor(
    readonly cropper: FaceCropper,
    private readonly cnn: EmotionCnn,
  ) {}

  get provider(): ExecutionProvider {
    return this.cnn.provider;
  }
  get modelVersion(): string {
    return this.cnn.modelVersion;
  }
  /** Side of the emotion CNN's square input. */
  get inputSide(): number {
    return this.cnn.inputSide;
  }

  static async create(options: ClassifierEngineOptions = {}): Promise<ClassifierEngine> {
    const modelsDir = options.modelsDir ?? MODELS_DIR;
    const emotionModel = options.emotionModel ?? DEFAULT_EMOTION_MODEL;
    const common = { modelsDir, providers: options.providers ?? ['cuda', 'cpu'], threads: options.threads, inferenceThreads: options.inferenceThreads, logger: options.logger };
    const [cnn, cropper] = await Promise.all([
      EmotionCnn.create({ ...common, emotionModel, modelFile: options.emotionModelFile, maxBatch: options.maxBatch }),
      FaceCropper.create({
        ...common,
        inputSide: options.emotionModelFile ? MODEL_FILE_INPUT : EMOTION_MODELS[emotionModel].input,
        detectorSides: options.detectorSides ?? DEFAULT_DETECTOR_SIDES,
        clahe: options.clahe,
        maxDetectBatch: options.maxDetectBatch,
        minFaceScore: options.minFaceScore,
        maxFramePixels: options.maxFramePixels,
      }),
    ]);
    return new ClassifierEngine(cropper, cnn);
  }

  async classify(frames: readonly Frame[]): Promise<Array<FrameResult | EmotionMuseError>> {
    const results: Array<FrameResult | EmotionMuseError> = new Array(frames.length);
    const sources: CropSource[] = [];
    const slots: number[] = [];
    frames.forEach((frame, index) => {
      try {
        sources.push(cropSourceOf(frame));
        slots.push(index);
      } catch (err) {
        results[index] = err as EmotionMuseError;
      }
    });
    const crops = await this.cropper.crop(sources);
    const withFace: Array<{ slot: number; face: FaceCrop; crop: Uint8Array; inferMs: number }> = [];
    crops.forEach((c, k) => {
      const slot = slots[k]!;
      if (c instanceof EmotionMuseError) results[slot] = c;
      else if (c.crop) withFace.push({ slot, face: c, crop: c.crop, inferMs: 0 });
      else results[slot] = { faceFound: false, probabilities: [], faceBox: null, timings: { ...c.timings, inferMs: 0 } };
    });
    const probabilities = await this.cnn.infer(withFace.map((w) => w.crop), (ms, from, to) => {
      for (let i = from; i < to; i++) withFace[i]!.inferMs = ms;
    });
    withFace.forEach((w, i) => {
      results[w.slot] = { faceFound: true, probabilities: Array.from(probabilities[i]!), faceBox: w.face.box, timings: { ...w.face.timings, inferMs: w.inferMs } };
    });
    return results;
  }

  /** Grey face crops (already cut to the face) to probabilities: the evaluation's path. */
  async classifyCrops(crops: readonly GreyImage[]): Promise<Float32Array[]> {
    const prepared = await this.cropper.crop(crops.map((grey) => ({ grey })));
    return this.cnn.infer(prepared.map((p) => {
      if (p instanceof EmotionMuseError) throw p;
      return p.crop!;
    }));
  }

  /** Runs the emotion CNN over grey inputs of its size (inputSide squared). */
  infer(inputs: readonly Uint8Array[], onBatch?: (ms: number, from: number, to: number) => void): Promise<Float32Array[]> {
    return this.cnn.infer(inputs, onBatch);
  }
}
