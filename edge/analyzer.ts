import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { EmotionMuseError } from '../schemas/errors.ts';
import type { Logger } from '../runtime/log.ts';
import type { ExecutionProvider } from '../runtime/onnx.ts';
import { DEVICE_EMOTION_MODEL, EMOTION_MODELS, EmotionCnn, type EmotionModel } from '../vision/emotion-cnn.ts';
import { DEFAULT_DETECTOR_SIDES, FaceCropper, FaceTrack, type CropSource } from '../vision/face-crop.ts';
import type { EdgeFrame } from './publisher.ts';

import { PRIVACY_LEVELS, PRIVACY_TEXT, type PrivacyLevel } from './privacy.ts';

export { PRIVACY_LEVELS, PRIVACY_TEXT, type PrivacyLevel };

/** One camera image: encoded (JPEG, PNG) or raw RGB (as ffmpeg's rawvideo gives it). */
export type CameraImage =
  | { readonly data: Buffer; readonly encoding: 'JPEG' | 'PNG'; readonly captureTimeMs?: number }
  /** `shrink` > 1: the camera frame scaled down by that factor (ffmpeg scales it for the detector). */
  | { readonly rgb: Buffer; readonly width: number; readonly height: number; readonly shrink?: number; readonly captureTimeMs?: number };

export interface EdgeAnalyzerOptions {
  readonly privacy: PrivacyLevel;
  /** Emotion CNN for `scores` (its input side is the crop's side for every level). @defaultValue 'int8-48' */
  readonly emotionModel?: EmotionModel;
  /** The detector's side, or a cascade of sides (vision/face-crop.ts). @defaultValue [256] */
  readonly detectorSides?: readonly number[];
  readonly minFaceScore?: number;
  readonly providers?: readonly ExecutionProvider[];
  /**
   * Follow the face from frame to frame (vision/face-crop.ts, FaceTrack): images are frames of one
   * camera stream, in order. Not for folders of unrelated photos. @defaultValue false
   */
  readonly track?: boolean;
  /** With `track`: search the whole frame again every this many frames. @defaultValue 30 */
  readonly refreshFrames?: number;
  /** ONNX Runtime threads on the device. @defaultValue 1 */
  readonly threads?: number;
  readonly modelsDir?: string;
  readonly logger?: Logger;
}

const MODELS_DIR = fileURLToPath(new URL('../models/', import.meta.url));

/**
 * Turns camera images into what the chosen privacy level lets leave the device, with the face-crop
 * rules the classifier uses (vision/face-crop.ts) and, for `scores`, the same emotion CNN.
 */
export class EdgeAnalyzer {
  private constructor(
    readonly privacy: PrivacyLevel,
    private readonly cropper: FaceCropper | undefined,
    private readonly cnn: EmotionCnn | undefined,
    /** The camera stream's face, when frames are followed. */
    readonly track: FaceTrack | undefined,
  ) {}

  static async create(options: EdgeAnalyzerOptions): Promise<EdgeAnalyzer> {
    if (options.privacy === 'frame') return new EdgeAnalyzer('frame', undefined, undefined, undefined);
    const emotionModel = options.emotionModel ?? DEVICE_EMOTION_MODEL;
    const common = { modelsDir: options.modelsDir ?? MODELS_DIR, providers: options.providers ?? ['cpu'], threads: options.threads ?? 1, logger: options.logger };
    const cropper = await FaceCropper.create({ ...common, inputSide: EMOTION_MODELS[emotionModel].input, detectorSides: options.detectorSides ?? DEFAULT_DETECTOR_SIDES, minFaceScore: options.minFaceScore });
    const cnn = options.privacy === 'scores' ? await EmotionCnn.create({ ...common, emotionModel }) : undefined;
    return new EdgeAnalyzer(options.privacy, cropper, cnn, options.track ? new FaceTrack(options.refreshFrames) : undefined);
  }

  /** What leaves the device for each image, in order. An image that cannot be decoded throws UNDECODABLE_FRAME. */
  async analyze(images: readonly CameraImage[]): Promise<EdgeFrame[]> {
    if (!this.cropper) return Promise.all(images.map(toJpegFrame));
    const crops = await this.cropper.crop(images.map((image) => ({ ...cropSourceOf(image), track: this.track })));
    const faces: Array<{ i: number; crop: Uint8Array }> = [];
    const out: EdgeFrame[] = crops.map((c, i) => {
      if (c instanceof EmotionMuseError) throw c;
      const captureTimeMs = images[i]!.captureTimeMs;
      if (!c.crop || !c.box) return { encoding: 'NONE', data: Buffer.alloc(0), captureTimeMs };
      faces.push({ i, crop: c.crop });
      const side = this.cropper!.inputSide;
      return { encoding: 'GRAY8', data: Buffer.from(c.crop.buffer, c.crop.byteOffset, c.crop.byteLength), width: side, height: side, faceBox: c.box, captureTimeMs };
    });
    if (this.cnn && faces.length > 0) {
      const probabilities = await this.cnn.infer(faces.map((f) => f.crop));
      faces.forEach((f, k) => {
        const frame = out[f.i]!;
        out[f.i] = { encoding: 'SCORES', data: Buffer.alloc(0), faceBox: frame.faceBox, captureTimeMs: frame.captureTimeMs, probabilities: Array.from(probabilities[k]!), edgeModelVersion: this.cnn!.modelVersion };
      });
    }
    return out;
  }
}

function cropSourceOf(image: CameraImage): Exclude<CropSource, { grey: unknown }> {
  return 'rgb' in image ? { rgb: image.rgb, width: image.width, height: image.height, shrink: image.shrink } : { encoded: image.data, encoding: image.encoding };
}

async function toJpegFrame(image: CameraImage): Promise<EdgeFrame> {
  if ('data' in image) return { data: image.data, encoding: image.encoding, captureTimeMs: image.captureTimeMs };
  const data = await sharp(image.rgb, { raw: { width: image.width, height: image.height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
  return { data, encoding: 'JPEG', width: image.width, height: image.height, captureTimeMs: image.captureTimeMs };
}
