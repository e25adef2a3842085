import path from 'node:path';
import sharp from 'sharp';
import { EmotionMuseError, errorMessage } from '../runtime/errors.ts';
import type { Logger } from '../runtime/log.ts';
import { openSession, type ExecutionProvider } from '../runtime/onnx.ts';
import { clahe } from './clahe.ts';
import { FaceDetector, type FaceBox } from './detector.ts';
import { resizeGrey, type GreyImage } from './image.ts';
import { greyRegion, resampleInto } from './resample.ts';

// libvips' operation cache keeps decoded pixels of recent inputs for reuse; every frame here is
// new, so it only holds memory (up to 50 MiB by default).
sharp.cache(false);

/**
 * The face-crop rules, one module for the classifier and every edge client (so that the same
 * frame gives the same crop on the device and on the server):
 *
 * 1. decode (JPEG at a reduced scale: libjpeg's DCT scaling, 1/2, 1/4 or 1/8, to the smallest
 *    image at least as large as the detector's input);
 * 2. letterbox (top left, black) into the detector's `detectorSide` square and run BlazeFace;
 * 3. take the largest face, widen its box by 10% on each side, clipped to the frame;
 * 4. crop from a decode whose face is at least `inputSide` pixels wide (the detector's, or a
 *    finer one decoded for it), grey (BT.601 luma), resize to `inputSide` (area averaging when
 *    shrinking, bilinear when growing), optionally CLAHE (clip 2.0, 8x8 tiles).
 */
export interface CropRules {
  /** Side of the square the detector sees, a multiple of 32. @defaultValue 128 */
  readonly detectorSide?: number;
  /** Side of the grey crop (the emotion CNN's input). @defaultValue 48 */
  readonly inputSide?: number;
  /** CLAHE on the crop. @defaultValue false */
  readonly clahe?: boolean;
  /** Detector score threshold. @defaultValue 0.6 */
  readonly minFaceScore?: number;
  /** Largest detector run (frames); the arena of each inference thread keeps the largest run's memory. @defaultValue 8 */
  readonly maxDetectBatch?: number;
  /** Frames with more pixels are refused (OVERSIZED_RECORD), read from the header before decoding. @defaultValue 4096 * 4096 */
  readonly maxFramePixels?: number;
}

export const DEFAULT_DETECTOR_SIDE = 128;
export const CROP_MARGIN = 0.1;

export interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** One image to crop a face from. `faceBox` (frame pixels) skips detection. */
export type CropSource =
  | { readonly encoded: Uint8Array; readonly encoding: 'JPEG' | 'PNG'; readonly faceBox?: Box | null }
  | { readonly rgb: Uint8Array; readonly width: number; readonly height: number; readonly faceBox?: Box | null }
  | { readonly grey: GreyImage };

export interface FaceCrop {
  readonly faceFound: boolean;
  /** The detected (or given) face box in frame pixels; null without a face, and for grey crops. */
  readonly box: Box | null;
  /** The grey `inputSide` x `inputSide` crop, after CLAHE when that is on. */
  readonly crop: Uint8Array | null;
  readonly frameWidth: number;
  readonly frameHeight: number;
  readonly timings: { decodeMs: number; detectMs: number; preprocessMs: number };
}

export interface FaceCropperOptions extends CropRules {
  readonly modelsDir: string;
  readonly providers?: readonly ExecutionProvider[];
  readonly threads?: number;
  readonly inferenceThreads?: number;
  readonly logger?: Logger;
}

/** A decoded image at 1/`shrink` of the frame's size, RGB interleaved. */
interface Decoded {
  readonly rgb: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly shrink: number;
}

interface Work {
  readonly source: CropSource;
  frameWidth: number;
  frameHeight: number;
  decoded?: Decoded;
  /** Every face the detector kept (frame pixels), best score first. */
  boxes?: FaceBox[];
  box?: Box | null;
  timings: { decodeMs: number; detectMs: number; preprocessMs: number };
}

const now = () => performance.now();
const SHRINKS = [8, 4, 2, 1] as const;

/** The pixel size in a JPEG's SOF or a PNG's IHDR, without decoding; undefined when the header is not found. */
export function encodedSize(data: Uint8Array, encoding: 'JPEG' | 'PNG'): { width: number; height: number } | undefined {
  if (encoding === 'PNG') {
    if (data.length < 24 || data[0] !== 0x89 || data[1] !== 0x50) return undefined;
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    return { width: v.getUint32(16), height: v.getUint32(20) };
  }
  if (data.length < 4 || data[0] !== 0xff || data[1] !== 0xd8) return undefined;
  let i = 2;
  while (i + 9 < data.length) {
    if (data[i] !== 0xff) return undefined;
    const marker = data[i + 1]!;
    if (marker === 0xff) {
      i++;
      continue;
    }
    const len = (data[i + 2]! << 8) | data[i + 3]!;
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: (data[i + 5]! << 8) | data[i + 6]!, width: (data[i + 7]! << 8) | data[i + 8]! };
    }
    i += 2 + len;
  }
  return undefined;
}

/** The largest shrink (8, 4, 2, 1) whose image still has `need` pixels along `length`. */
export function shrinkFor(length: number, need: number): number {
  return SHRINKS.find((s) => Math.ceil(length / s) >= need) ?? 1;
}

/** The box widened by 10% on each side, clipped to the frame, in whole pixels. */
export function widen(box: Box, width: number, height: number): { left: number; top: number; width: number; height: number } {
  const left = Math.max(0, Math.round(box.x - CROP_MARGIN * box.width));
  const top = Math.max(0, Math.round(box.y - CROP_MARGIN * box.height));
  const right = Math.min(width, Math.round(box.x + box.width + CROP_MARGIN * box.width));
  const bottom = Math.min(height, Math.round(box.y + box.height + CROP_MARGIN * box.height));
  return { left, top, width: Math.max(0, right - left), height: Math.max(0, bottom - top) };
}

/** Detect, widen, crop, grey, resize (and CLAHE) for batches of frames; see {@link CropRules}. */
export class FaceCropper {
  readonly detectorSide: number;
  readonly inputSide: number;
  private readonly rules: Required<Omit<CropRules, 'detectorSide' | 'inputSide'>>;

  private constructor(
    private readonly detector: FaceDetector,
    rules: CropRules,
  ) {
    this.detectorSide = detector.side;
    this.inputSide = rules.inputSide ?? 48;
    this.rules = {
      clahe: rules.clahe ?? false,
      minFaceScore: rules.minFaceScore ?? 0.6,
      maxDetectBatch: rules.maxDetectBatch ?? 8,
      maxFramePixels: rules.maxFramePixels ?? 4096 * 4096,
    };
  }

  static async create(options: FaceCropperOptions): Promise<FaceCropper> {
    const { session } = await openSession(path.join(options.modelsDir, 'blazeface.onnx'), {
      providers: options.providers ?? ['cuda', 'cpu'],
      threads: options.threads,
      inferenceThreads: options.inferenceThreads,
      logger: options.logger,
    });
    return new FaceCropper(new FaceDetector(session, { minScore: options.minFaceScore ?? 0.6, side: options.detectorSide ?? DEFAULT_DETECTOR_SIDE }), options);
  }

  /**
   * Crops the largest face of each source. A source without a face is a normal result
   * (`faceFound: false`); one that cannot be decoded is an EmotionMuseError (UNDECODABLE_FRAME,
   * OVERSIZED_RECORD) in its slot.
   */
  async crop(sources: readonly CropSource[]): Promise<Array<FaceCrop | EmotionMuseError>> {
    const results: Array<FaceCrop | EmotionMuseError> = new Array(sources.length);
    const works: Array<Work | undefined> = new Array(sources.length);
    await Promise.all(
      sources.map(async (source, index) => {
        const t0 = now();
        try {
          if ('grey' in source) {
            results[index] = this.fromGrey(source.grey);
            return;
          }
          works[index] = await this.decode(source);
          works[index]!.timings.decodeMs = now() - t0;
        } catch (err) {
          results[index] = err instanceof EmotionMuseError ? err : new EmotionMuseError('UNDECODABLE_FRAME', errorMessage(err), { cause: err });
        }
      }),
    );
    const ready = works.filter((w): w is Work => w !== undefined);
    await this.detect(ready.filter((w) => w.box === undefined));
    await Promise.all(
      works.map(async (w, index) => {
        if (!w) return;
        const t0 = now();
        const crop = w.box ? await this.cropFrom(w, w.box) : null;
        w.timings.preprocessMs = now() - t0;
        results[index] = { faceFound: crop !== null, box: crop ? w.box! : null, crop, frameWidth: w.frameWidth, frameHeight: w.frameHeight, timings: w.timings };
      }),
    );
    return results;
  }

  /**
   * Every face the detector keeps in each image (frame pixels), for evaluating detection; an image
   * that cannot be decoded throws. Runs the same decode and letterbox as `crop`.
   */
  async detectAll(sources: ReadonlyArray<Exclude<CropSource, { grey: GreyImage }>>): Promise<FaceBox[][]> {
    const works = await Promise.all(sources.map((s) => this.decode({ ...s, faceBox: null })));
    await this.detect(works);
    return works.map((w) => w.boxes ?? []);
  }

  private fromGrey(grey: GreyImage): FaceCrop {
    const t0 = now();
    if (grey.width <= 0 || grey.height <= 0 || grey.data.length !== grey.width * grey.height) {
      throw new EmotionMuseError('UNDECODABLE_FRAME', `GRAY8 frame of ${grey.width}x${grey.height} has ${grey.data.length} bytes`);
    }
    if (grey.width * grey.height > this.rules.maxFramePixels) throw new EmotionMuseError('OVERSIZED_RECORD', `frame of ${grey.width}x${grey.height} pixels is over the limit`);
    const crop = this.finish(resizeGrey(grey, this.inputSide, this.inputSide));
    return { faceFound: true, box: null, crop, frameWidth: grey.width, frameHeight: grey.height, timings: { decodeMs: 0, detectMs: 0, preprocessMs: now() - t0 } };
  }

  private finish(grey: Uint8Array): Uint8Array {
    return this.rules.clahe ? clahe(grey, this.inputSide, this.inputSide) : grey;
  }

  private async decode(source: Exclude<CropSource, { grey: GreyImage }>): Promise<Work> {
    const timings = { decodeMs: 0, detectMs: 0, preprocessMs: 0 };
    const given = source.faceBox ?? undefined;
    if ('rgb' in source) {
      if (source.width <= 0 || source.height <= 0 || source.rgb.length !== source.width * source.height * 3) {
        throw new EmotionMuseError('UNDECODABLE_FRAME', `RGB frame of ${source.width}x${source.height} has ${source.rgb.length} bytes`);
      }
      return { source, frameWidth: source.width, frameHeight: source.height, decoded: { rgb: source.rgb, width: source.width, height: source.height, shrink: 1 }, box: given, timings };
    }
    if (source.encoded.length === 0) throw new EmotionMuseError('UNDECODABLE_FRAME', 'frame has no bytes');
    const size = encodedSize(source.encoded, source.encoding);
    if (!size) throw new EmotionMuseError('UNDECODABLE_FRAME', `${source.encoding} frame has no readable ${source.encoding === 'JPEG' ? 'SOF' : 'IHDR'} header`);
    if (size.width * size.height > this.rules.maxFramePixels) throw new EmotionMuseError('OVERSIZED_RECORD', `${source.encoding} frame of ${size.width}x${size.height} pixels is over the limit`);
    // With a face box from the edge the decode only needs to serve the crop; otherwise the detector.
    const shrink = given ? this.cropShrink(widen(given, size.width, size.height).width, 8) : shrinkFor(Math.max(size.width, size.height), this.detectorSide);
    return { source, frameWidth: size.width, frameHeight: size.height, decoded: await this.decodeAt(source, size, shrink), box: given, timings };
  }

  /** The largest shrink, at most `limit`, at which a crop `width` frame pixels wide keeps `inputSide` pixels. */
  private cropShrink(width: number, limit: number): number {
    return SHRINKS.find((s) => s <= limit && width / s >= this.inputSide) ?? 1;
  }

  private async decodeAt(source: { encoded: Uint8Array; encoding: 'JPEG' | 'PNG' }, size: { width: number; height: number }, shrink: number): Promise<Decoded> {
    const width = Math.ceil(size.width / shrink);
    const height = Math.ceil(size.height / shrink);
    let image = sharp(source.encoded, { limitInputPixels: this.rules.maxFramePixels, failOn: 'error' });
    // libvips turns a JPEG resize by 2, 4 or 8 into a scaled decode (shrink-on-load).
    if (shrink > 1) image = image.resize(width, height, { fit: 'fill' });
    try {
      const { data, info } = await image.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      if (info.channels !== 3) throw new EmotionMuseError('UNDECODABLE_FRAME', `decoded frame has ${info.channels} channels`);
      return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, shrink };
    } catch (err) {
      if (err instanceof EmotionMuseError) throw err;
      const message = errorMessage(err);
      if (/pixel limit/i.test(message)) throw new EmotionMuseError('OVERSIZED_RECORD', `${source.encoding} frame is over the pixel limit: ${message}`, { cause: err });
      throw new EmotionMuseError('UNDECODABLE_FRAME', `${source.encoding} frame could not be decoded: ${message}`, { cause: err });
    }
  }

  /** Letterboxes each decode into the detector's square and keeps each frame's largest face. */
  private async detect(works: readonly Work[]): Promise<void> {
    const side = this.detectorSide;
    const size = side * side * 3;
    for (let i = 0; i < works.length; i += this.rules.maxDetectBatch) {
      const run = works.slice(i, i + this.rules.maxDetectBatch);
      const t0 = now();
      const input = new Float32Array(run.length * size).fill(-1);
      const squares = run.map((w, k) => {
        const d = w.decoded!;
        const square = Math.max(d.width, d.height);
        const tw = Math.max(1, Math.round((d.width * side) / square));
        const th = Math.max(1, Math.round((d.height * side) / square));
        resampleInto(d.rgb, d.width, d.height, 3, tw, th, { out: input, offset: k * size, rowStride: side * 3, scale: 1 / 127.5, bias: -1 });
        return { width: square * d.shrink, height: square * d.shrink };
      });
      const boxes = await this.detector.detect(input, squares);
      const ms = now() - t0;
      run.forEach((w, k) => {
        w.timings.detectMs = ms;
        w.boxes = boxes[k]!;
        const largest = [...boxes[k]!].sort((a: FaceBox, b: FaceBox) => b.width * b.height - a.width * a.height)[0];
        w.box = largest ? { x: largest.x, y: largest.y, width: largest.width, height: largest.height } : null;
      });
    }
  }

  /** The grey crop of `box`, from the detector's decode when it is fine enough, else from a finer one. */
  private async cropFrom(w: Work, box: Box): Promise<Uint8Array | null> {
    const region = widen(box, w.frameWidth, w.frameHeight);
    if (region.width < 2 || region.height < 2) return null;
    let d = w.decoded!;
    const shrink = this.cropShrink(region.width, d.shrink);
    if (shrink < d.shrink && 'encoded' in w.source) d = await this.decodeAt(w.source, { width: w.frameWidth, height: w.frameHeight }, shrink);
    const s = d.shrink;
    const scaled = widen({ x: box.x / s, y: box.y / s, width: box.width / s, height: box.height / s }, d.width, d.height);
    if (scaled.width < 2 || scaled.height < 2) return null;
    const grey = greyRegion(d.rgb, d.width, 3, scaled);
    return this.finish(resizeGrey({ data: grey, width: scaled.width, height: scaled.height }, this.inputSide, this.inputSide));
  }
}
