import path from 'node:path';
import sharp from 'sharp';
import { EmotionMuseError, errorMessage } from '../schemas/errors.ts';
import type { Logger } from '../runtime/log.ts';
import { openSession, type ExecutionProvider } from '../runtime/onnx.ts';
import { clahe } from './clahe.ts';
import { checkDetectorSide, FaceDetector, iou, type FaceBox } from './detector.ts';
import { cropGrey, fillDetectorInput, letterbox, scaledTo, widen, type Box } from './crop-rules.ts';
import { encodedSize, resizeGrey, type GreyImage } from './image.ts';
import { DEFAULT_CASCADE_MIN_WIDTH, DEFAULT_DETECTOR_SIDES, FaceTrack, formatDetectorSides, ROI_SCALE, ROI_SIDE, TRACK_IOU } from './face-track.ts';
import { resampleInto } from './resample.ts';
import { NODE_DETECTOR_FILE } from './model-specs.ts';

export { CROP_MARGIN, scaledTo, widen, type Box } from './crop-rules.ts';
export { encodedSize } from './image.ts';
export { DEFAULT_CASCADE_MIN_WIDTH, DEFAULT_DETECTOR_SIDES, FaceTrack, formatDetectorSides, parseDetectorSides, ROI_SCALE, ROI_SIDE, TRACK_IOU } from './face-track.ts';

// libvips' operation cache keeps decoded pixels of recent inputs for reuse; every frame here is
// new, so it only holds memory (up to 50 MiB by default).
sharp.cache(false);

/**
 * The face-crop rules, one module for the classifier and every edge client (so that the same
 * frame gives the same crop on the device and on the server):
 *
 * 1. decode (JPEG at a reduced scale: libjpeg's DCT scaling, 1/2, 1/4 or 1/8, to the smallest
 *    image at least as large as the detector's largest input);
 * 2. scale the frame so that its longer side is the detector's side, pad it (bottom right, black)
 *    to multiples of 32, and run BlazeFace; with a cascade of sides (`128/256`), the frames in
 *    which the first side finds no face go through the next;
 * 3. take the largest face, widen its box by 10% on each side, clipped to the frame;
 * 4. crop from a decode whose face is at least `inputSide` pixels wide (the detector's, or a
 *    finer one decoded for it), grey (BT.601 luma), resize to `inputSide` (area averaging when
 *    shrinking, bilinear when growing), optionally CLAHE (clip 2.0, 8x8 tiles).
 */
export interface CropRules {
  /**
   * The detector's input side (the longer side of its input, a multiple of 32), or a cascade of
   * sides tried in order on the frames still without a face. @defaultValue [256]
   */
  readonly detectorSides?: readonly number[];
  /** Side of the grey crop (the emotion CNN's input). @defaultValue 48 */
  readonly inputSide?: number;
  /** CLAHE on the crop. @defaultValue false */
  readonly clahe?: boolean;
  /** Detector score threshold. @defaultValue 0.6 */
  readonly minFaceScore?: number;
  /**
   * In a cascade, a side's faces are kept only when the largest is at least this many of that
   * side's input pixels wide; otherwise the frame goes to the next side. @defaultValue 24
   */
  readonly cascadeMinWidth?: number;
  /**
   * Largest detector run (frames); runs go through decode, detection and crop side by side. One
   * frame a run was the fastest per frame when measured (processors/classifier/README.md) and
   * keeps the arena of each inference thread smallest. @defaultValue 1
   */
  readonly maxDetectBatch?: number;
  /** Frames with more pixels are refused (OVERSIZED_RECORD), read from the header before decoding. @defaultValue 4096 * 4096 */
  readonly maxFramePixels?: number;
}

/** One image to crop a face from. `faceBox` (frame pixels) skips detection; `track` follows a stream's face. */
export type CropSource =
  | { readonly encoded: Uint8Array; readonly encoding: 'JPEG' | 'PNG'; readonly faceBox?: Box | null; readonly track?: FaceTrack }
  /** Raw RGB; `shrink` > 1 when it is the camera frame scaled down by that factor (boxes come back in frame pixels). */
  | { readonly rgb: Uint8Array; readonly width: number; readonly height: number; readonly shrink?: number; readonly faceBox?: Box | null; readonly track?: FaceTrack }
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

/** A decoded image at 1/`shrink` of the frame's size (any factor >= 1), RGB interleaved. */
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

function trackOf(w: Work): FaceTrack | undefined {
  return 'grey' in w.source ? undefined : w.source.track;
}

/** Detect, widen, crop, grey, resize (and CLAHE) for batches of frames; see {@link CropRules}. */
export class FaceCropper {
  readonly detectorSides: readonly number[];
  readonly inputSide: number;
  private readonly rules: Required<Omit<CropRules, 'detectorSides' | 'inputSide'>>;

  private constructor(
    private readonly detector: FaceDetector,
    rules: CropRules,
  ) {
    this.detectorSides = (rules.detectorSides ?? DEFAULT_DETECTOR_SIDES).map(checkDetectorSide);
    if (this.detectorSides.length === 0) throw new Error('the detector needs at least one side');
    this.inputSide = rules.inputSide ?? 48;
    this.rules = {
      clahe: rules.clahe ?? false,
      cascadeMinWidth: rules.cascadeMinWidth ?? DEFAULT_CASCADE_MIN_WIDTH,
      minFaceScore: rules.minFaceScore ?? 0.6,
      maxDetectBatch: rules.maxDetectBatch ?? 1,
      maxFramePixels: rules.maxFramePixels ?? 4096 * 4096,
    };
  }

  /** The detector setting in words: `256`, or `128/256 (kept from 24 px)` for a cascade. */
  describe(): string {
    const sides = formatDetectorSides(this.detectorSides);
    return this.detectorSides.length > 1 && this.rules.cascadeMinWidth > 0 ? `${sides} (kept from ${this.rules.cascadeMinWidth} px)` : sides;
  }

  static async create(options: FaceCropperOptions): Promise<FaceCropper> {
    const { session } = await openSession(path.join(options.modelsDir, NODE_DETECTOR_FILE), {
      providers: options.providers ?? ['cuda', 'cpu'],
      threads: options.threads,
      inferenceThreads: options.inferenceThreads,
      logger: options.logger,
    });
    return new FaceCropper(new FaceDetector(session, { minScore: options.minFaceScore ?? 0.6 }), options);
  }

  /**
   * Crops the largest face of each source. A source without a face is a normal result
   * (`faceFound: false`); one that cannot be decoded is an EmotionMuseError (UNDECODABLE_FRAME,
   * OVERSIZED_RECORD) in its slot.
   */
  async crop(sources: readonly CropSource[]): Promise<Array<FaceCrop | EmotionMuseError>> {
    const results: Array<FaceCrop | EmotionMuseError> = new Array(sources.length);
    // Runs of the detector's batch size go through decode, detection and crop each on its own, side
    // by side: one run's detection (in an inference thread) overlaps another's decode and crop
    // (libuv's threads and this one), and every inference thread gets a run to do.
    const runs: number[][] = [];
    for (let i = 0; i < sources.length; i += this.rules.maxDetectBatch) runs.push(Array.from({ length: Math.min(this.rules.maxDetectBatch, sources.length - i) }, (_, k) => i + k));
    await Promise.all(runs.map((run) => this.cropRun(sources, run, results)));
    return results;
  }

  /** `crop` for the sources at `indices`, written into `results`. */
  private async cropRun(sources: readonly CropSource[], indices: readonly number[], results: Array<FaceCrop | EmotionMuseError>): Promise<void> {
    const works: Array<Work | undefined> = [];
    await Promise.all(
      indices.map(async (index, k) => {
        const source = sources[index]!;
        const t0 = now();
        try {
          if ('grey' in source) {
            results[index] = this.fromGrey(source.grey);
            return;
          }
          works[k] = await this.decode(source);
          works[k]!.timings.decodeMs = now() - t0;
        } catch (err) {
          results[index] = err instanceof EmotionMuseError ? err : new EmotionMuseError('UNDECODABLE_FRAME', errorMessage(err), { cause: err });
        }
      }),
    );
    const ready = works.filter((w): w is Work => w !== undefined);
    await this.search(ready.filter((w) => w.box === undefined));
    await Promise.all(
      indices.map(async (index, k) => {
        const w = works[k];
        if (!w) return;
        const t0 = now();
        const crop = w.box ? await this.cropFrom(w, w.box) : null;
        w.timings.preprocessMs = now() - t0;
        results[index] = { faceFound: crop !== null, box: crop ? w.box! : null, crop, frameWidth: w.frameWidth, frameHeight: w.frameHeight, timings: w.timings };
        const track = trackOf(w);
        if (track) track.box = crop ? w.box! : null;
      }),
    );
  }

  /**
   * Every face the detector keeps in each image (frame pixels), for evaluating detection; an image
   * that cannot be decoded throws. Runs the same decode and letterbox as `crop`.
   */
  async detectAll(sources: ReadonlyArray<Exclude<CropSource, { grey: GreyImage }>>): Promise<FaceBox[][]> {
    const works = await Promise.all(sources.map((s) => this.decode({ ...s, faceBox: null })));
    await this.search(works);
    for (const w of works) {
      const track = trackOf(w);
      if (track) track.box = w.box ?? null;
    }
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
      const shrink = source.shrink ?? 1;
      const decoded = { rgb: source.rgb, width: source.width, height: source.height, shrink };
      return { source, frameWidth: Math.round(source.width * shrink), frameHeight: Math.round(source.height * shrink), decoded, box: given, timings };
    }
    if (source.encoded.length === 0) throw new EmotionMuseError('UNDECODABLE_FRAME', 'frame has no bytes');
    const size = encodedSize(source.encoded, source.encoding);
    if (!size) throw new EmotionMuseError('UNDECODABLE_FRAME', `${source.encoding} frame has no readable ${source.encoding === 'JPEG' ? 'SOF' : 'IHDR'} header`);
    if (size.width * size.height > this.rules.maxFramePixels) throw new EmotionMuseError('OVERSIZED_RECORD', `${source.encoding} frame of ${size.width}x${size.height} pixels is over the limit`);
    // With a face box from the edge the decode only needs to serve the crop; otherwise it is made
    // at the size the detector's largest side sees, and the crop comes from it when it is fine enough.
    const target = given ? this.cropSize(size, widen(given, size.width, size.height).width, Infinity) : scaledTo(size.width, size.height, Math.max(...this.detectorSides));
    return { source, frameWidth: size.width, frameHeight: size.height, decoded: await this.decodeAt(source, size, target), box: given, timings };
  }

  /**
   * The decode size for a crop `width` frame pixels wide: the smallest of 1/8, 1/4, 1/2 and whole
   * (the scales libjpeg decodes at for little cost) under `maxShrink` that keeps `inputSide`
   * pixels across the crop.
   */
  private cropSize(size: { width: number; height: number }, width: number, maxShrink: number): { width: number; height: number } {
    const shrink = SHRINKS.find((f) => f < maxShrink && width / f >= this.inputSide) ?? 1;
    return { width: Math.ceil(size.width / shrink), height: Math.ceil(size.height / shrink) };
  }

  /** Decodes at `target` size: libvips decodes a JPEG at 1/2, 1/4 or 1/8 (shrink-on-load) and reduces the rest of the way. */
  private async decodeAt(source: { encoded: Uint8Array; encoding: 'JPEG' | 'PNG' }, size: { width: number; height: number }, target: { width: number; height: number }): Promise<Decoded> {
    const { width, height } = target;
    const shrink = size.width / width;
    let image = sharp(source.encoded, { limitInputPixels: this.rules.maxFramePixels, failOn: 'error' });
    if (width !== size.width || height !== size.height) image = image.resize(width, height, { fit: 'fill', kernel: 'linear' });
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

  /** Finds the faces of frames: followed ones in their window first, the rest (and the lost) in the whole frame. */
  private async search(works: readonly Work[]): Promise<void> {
    const tracked = works.filter((w) => trackOf(w)?.box && trackOf(w)!.sinceFull < trackOf(w)!.refreshFrames);
    await this.detectInWindows(tracked);
    const whole = new Set(works.filter((w) => w.box === undefined));
    await this.detect([...whole]);
    for (const w of works) {
      const track = trackOf(w);
      if (!track) continue;
      if (whole.has(w)) {
        track.sinceFull = 0;
        track.counts.whole++;
      } else {
        track.sinceFull++;
        track.counts.window++;
      }
    }
  }

  /**
   * Looks for each tracked frame's face in a square window, ROI_SCALE times the last face's size,
   * around its last box (clipped to the frame), at ROI_SIDE. Frames whose window finds no face
   * keep `box` undefined, for the whole-frame search.
   */
  private async detectInWindows(works: readonly Work[]): Promise<void> {
    const side = ROI_SIDE;
    const size = side * side * 3;
    const windows = works.flatMap((w) => {
      const d = w.decoded!;
      const last = trackOf(w)!.box!;
      const span = Math.min(d.width, d.height, Math.round((ROI_SCALE * Math.max(last.width, last.height)) / d.shrink));
      // A face under a quarter of the window's input is better searched in the whole frame.
      if (span < side / 2) return [];
      const cx = (last.x + last.width / 2) / d.shrink;
      const cy = (last.y + last.height / 2) / d.shrink;
      const left = Math.max(0, Math.min(d.width - span, Math.round(cx - span / 2)));
      const top = Math.max(0, Math.min(d.height - span, Math.round(cy - span / 2)));
      return [{ w, left, top, span }];
    });
    for (let i = 0; i < windows.length; i += this.rules.maxDetectBatch) {
      const run = windows.slice(i, i + this.rules.maxDetectBatch);
      const t0 = now();
      const tensor = new Float32Array(run.length * size);
      run.forEach((win, k) => {
        const d = win.w.decoded!;
        const region = new Uint8Array(win.span * win.span * 3);
        for (let y = 0; y < win.span; y++) region.set(d.rgb.subarray(((win.top + y) * d.width + win.left) * 3, ((win.top + y) * d.width + win.left + win.span) * 3), y * win.span * 3);
        resampleInto(region, win.span, win.span, 3, side, side, { out: tensor, offset: k * size, rowStride: side * 3, scale: 1 / 127.5, bias: -1 });
      });
      const boxes = await this.detector.detect(tensor, { width: side, height: side }, run.map((win) => (win.span * win.w.decoded!.shrink) / side));
      const ms = now() - t0;
      run.forEach((win, k) => {
        const s = win.w.decoded!.shrink;
        const found = boxes[k]!.map((b) => ({ ...b, x: b.x + win.left * s, y: b.y + win.top * s }));
        win.w.timings.detectMs += ms;
        // The face followed is the one that overlaps its last box; anything else (a cut, another
        // person stepping in) sends the frame to the whole-frame search.
        const last = trackOf(win.w)!.box!;
        const same = found.filter((b) => iou(b, last) >= TRACK_IOU).sort((a, b) => b.width * b.height - a.width * a.height)[0];
        if (!same) return;
        win.w.boxes = found;
        win.w.box = { x: same.x, y: same.y, width: same.width, height: same.height };
      });
    }
  }

  /** Runs the cascade of detector sides: each side sees the frames in which no earlier side found a face. */
  private async detect(works: readonly Work[]): Promise<void> {
    let left = works;
    for (const [i, side] of this.detectorSides.entries()) {
      if (left.length === 0) break;
      await this.detectAt(left, side);
      const last = i === this.detectorSides.length - 1;
      left = left.filter((w) => {
        if (w.boxes!.length === 0) return true;
        const k = side / Math.max(w.frameWidth, w.frameHeight);
        return !last && w.box!.width * k < this.rules.cascadeMinWidth;
      });
    }
  }

  /** Scales each decode to `side` on its longer side, pads it to multiples of 32 and keeps each frame's faces. */
  private async detectAt(works: readonly Work[], side: number): Promise<void> {
    const groups = new Map<string, Array<{ w: Work; width: number; height: number; scale: number }>>();
    for (const w of works) {
      const d = w.decoded!;
      // (the decode is already this size for the cascade's largest side)
      const { k, scaled, input } = letterbox(d.width, d.height, side);
      const key = `${input.width}x${input.height}`;
      const list = groups.get(key) ?? [];
      list.push({ w, width: scaled.width, height: scaled.height, scale: d.shrink / k });
      groups.set(key, list);
    }
    for (const [key, items] of groups) {
      const [iw, ih] = key.split('x').map(Number) as [number, number];
      const input = { width: iw, height: ih };
      const size = iw * ih * 3;
      for (let i = 0; i < items.length; i += this.rules.maxDetectBatch) {
        const run = items.slice(i, i + this.rules.maxDetectBatch);
        const t0 = now();
        const tensor = new Float32Array(run.length * size).fill(-1);
        run.forEach((it, k) => {
          const d = it.w.decoded!;
          fillDetectorInput(d.rgb, d.width, d.height, it, { out: tensor, offset: k * size, rowStride: iw * 3, scale: 1 / 127.5, bias: -1 });
        });
        const boxes = await this.detector.detect(tensor, input, run.map((it) => it.scale));
        const ms = now() - t0;
        run.forEach((it, k) => {
          const w = it.w;
          w.timings.detectMs += ms;
          w.boxes = boxes[k]!;
          const largest = [...boxes[k]!].sort((a: FaceBox, b: FaceBox) => b.width * b.height - a.width * a.height)[0];
          w.box = largest ? { x: largest.x, y: largest.y, width: largest.width, height: largest.height } : null;
        });
      }
    }
  }

  /** The grey crop of `box`, from the detector's decode when it is fine enough, else from a finer one. */
  private async cropFrom(w: Work, box: Box): Promise<Uint8Array | null> {
    const region = widen(box, w.frameWidth, w.frameHeight);
    if (region.width < 2 || region.height < 2) return null;
    let d = w.decoded!;
    if (region.width / d.shrink < this.inputSide && d.shrink > 1 && 'encoded' in w.source) {
      const size = { width: w.frameWidth, height: w.frameHeight };
      d = await this.decodeAt(w.source, size, this.cropSize(size, region.width, d.shrink));
    }
    const s = d.shrink;
    return cropGrey(d.rgb, d.width, d.height, { x: box.x / s, y: box.y / s, width: box.width / s, height: box.height / s }, this.inputSide, this.rules.clahe);
  }
}
