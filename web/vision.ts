// On-device face detection, crop and (for the `scores` level) the emotion CNN, in the browser on
// ONNX Runtime Web (WebAssembly). The models are the server's own files; the crop rules are the
// server's own code (vision/crop-rules.ts).
import * as ort from 'onnxruntime-web/wasm';
import { decodeBatch, DETECTOR_OUTPUTS, type DetectorInput, type FaceBox } from '../vision/anchors.ts';
import { cropRgbFrame, type FrameCrop } from '../vision/crop-rules.ts';
import { normaliseInto } from '../vision/image.ts';

export interface ClientConfig {
  readonly detectorSide: number;
  readonly inputSide: number;
  readonly minFaceScore: number;
  readonly emotionModel: string;
  readonly emotionModelVersion: string;
  readonly privacy: Record<string, string>;
}

export interface Analysis extends FrameCrop {
  /** The on-device CNN's probabilities (only when it was asked to score). */
  readonly probabilities?: Float32Array;
}

/** Frame pixels (RGBA from a canvas) to RGB. */
export function rgbOf(rgba: Uint8ClampedArray, width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    rgb[i] = rgba[j]!;
    rgb[i + 1] = rgba[j + 1]!;
    rgb[i + 2] = rgba[j + 2]!;
  }
  return rgb;
}

export class BrowserVision {
  private constructor(
    private readonly config: ClientConfig,
    private readonly detector: ort.InferenceSession,
    private cnn: ort.InferenceSession | undefined,
  ) {}

  static async create(config: ClientConfig): Promise<BrowserVision> {
    ort.env.wasm.wasmPaths = '/ort/';
    // One thread: threads need cross-origin isolation, and a 256x192 BlazeFace takes a few ms.
    ort.env.wasm.numThreads = 1;
    ort.env.logLevel = 'error';
    const detector = await ort.InferenceSession.create('/models/blazeface.onnx', { executionProviders: ['wasm'] });
    return new BrowserVision(config, detector, undefined);
  }

  /** Loads the emotion CNN (once) for the `scores` level. */
  async withCnn(): Promise<void> {
    this.cnn ??= await ort.InferenceSession.create(`/models/${this.config.emotionModel}`, { executionProviders: ['wasm'] });
  }

  private readonly detect = async (tensor: Float32Array, input: DetectorInput, scales: readonly number[]): Promise<FaceBox[][]> => {
    const feeds = { [this.detector.inputNames[0]!]: new ort.Tensor('float32', tensor, [scales.length, input.height, input.width, 3]) };
    const out = await this.detector.run(feeds);
    const head = (name: string) => out[name]!.data as Float32Array;
    return decodeBatch({ s16: head(DETECTOR_OUTPUTS.s16), s32: head(DETECTOR_OUTPUTS.s32), r16: head(DETECTOR_OUTPUTS.r16), r32: head(DETECTOR_OUTPUTS.r32) }, input, scales, { minScore: this.config.minFaceScore });
  };

  /** The largest face of an RGB frame and its grey crop; with `score`, the CNN's probabilities too. */
  async analyze(rgb: Uint8Array, width: number, height: number, score: boolean): Promise<Analysis> {
    const found = await cropRgbFrame(rgb, width, height, this.detect, { side: this.config.detectorSide, inputSide: this.config.inputSide });
    if (!score || !found.crop || !this.cnn) return found;
    const side = this.config.inputSide;
    const input = new Float32Array(side * side);
    normaliseInto(found.crop, input, 0);
    const out = await this.cnn.run({ [this.cnn.inputNames[0]!]: new ort.Tensor('float32', input, [1, side, side, 1]) });
    return { ...found, probabilities: (out[this.cnn.outputNames[0]!]!.data as Float32Array).slice(0, 7) };
  }
}
