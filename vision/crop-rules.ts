/**
 * The face-crop rules as pure functions over RGB pixels, shared by the server's FaceCropper
 * (vision/face-crop.ts, which adds decoding, batching, cascades and tracking) and the web client,
 * which runs them in the browser on camera frames. No Node or runtime dependency here.
 */
import { clahe } from './clahe.ts';
import { DETECTOR_STRIDE, type DetectorInput, type FaceBox } from './anchors.ts';
import { resizeGrey } from './image.ts';
import { copyInto, greyRegion, resampleInto, type ResampleTarget } from './resample.ts';

export const CROP_MARGIN = 0.1;

export interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** The size of a frame scaled so that its longer side is `side` (never enlarged). */
export function scaledTo(width: number, height: number, side: number): { width: number; height: number } {
  const k = Math.min(1, side / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * k)), height: Math.max(1, Math.round(height * k)) };
}

/** The box widened by 10% on each side, clipped to the frame, in whole pixels. */
export function widen(box: Box, width: number, height: number): { left: number; top: number; width: number; height: number } {
  const left = Math.max(0, Math.round(box.x - CROP_MARGIN * box.width));
  const top = Math.max(0, Math.round(box.y - CROP_MARGIN * box.height));
  const right = Math.min(width, Math.round(box.x + box.width + CROP_MARGIN * box.width));
  const bottom = Math.min(height, Math.round(box.y + box.height + CROP_MARGIN * box.height));
  return { left, top, width: Math.max(0, right - left), height: Math.max(0, bottom - top) };
}

/**
 * How an image of `width` x `height` meets the detector at `side`: scaled by `k` so that its longer
 * side is `side`, padded (bottom right) to `input`, multiples of 32.
 */
export function letterbox(width: number, height: number, side: number): { k: number; scaled: { width: number; height: number }; input: DetectorInput } {
  const k = side / Math.max(width, height);
  const scaled = { width: Math.max(1, Math.round(width * k)), height: Math.max(1, Math.round(height * k)) };
  return { k, scaled, input: { width: Math.ceil(scaled.width / DETECTOR_STRIDE) * DETECTOR_STRIDE, height: Math.ceil(scaled.height / DETECTOR_STRIDE) * DETECTOR_STRIDE } };
}

/** Writes an RGB image scaled to `scaled` into the detector's input tensor, normalised to [-1, 1] by `target`. */
export function fillDetectorInput(rgb: Uint8Array, width: number, height: number, scaled: { width: number; height: number }, target: ResampleTarget): void {
  if (width === scaled.width && height === scaled.height) copyInto(rgb, width, height, target);
  else resampleInto(rgb, width, height, 3, scaled.width, scaled.height, target);
}

/** The largest box, or undefined. */
export function largest<B extends Box>(boxes: readonly B[]): B | undefined {
  return [...boxes].sort((a, b) => b.width * b.height - a.width * a.height)[0];
}

/**
 * The grey crop of `box` (pixels of this RGB image): widened by 10%, BT.601 grey, resized to
 * `inputSide` square (area averaging when shrinking), optionally CLAHE. Null when the widened box
 * is under 2 pixels.
 */
export function cropGrey(rgb: Uint8Array, width: number, height: number, box: Box, inputSide: number, withClahe = false): Uint8Array | null {
  const region = widen(box, width, height);
  if (region.width < 2 || region.height < 2) return null;
  const grey = resizeGrey({ data: greyRegion(rgb, width, 3, region), width: region.width, height: region.height }, inputSide, inputSide);
  return withClahe ? clahe(grey, inputSide, inputSide) : grey;
}

/** Runs the detector on a batch of inputs; `scales` are frame pixels per input pixel of each. */
export type DetectFn = (tensor: Float32Array, input: DetectorInput, scales: readonly number[]) => Promise<FaceBox[][]>;

export interface FrameCrop {
  /** The largest face, in frame pixels; null when there is none. */
  readonly box: Box | null;
  /** Its grey crop, `inputSide` square; null without a face. */
  readonly crop: Uint8Array | null;
}

/**
 * One RGB camera frame through the rules at one detector side: letterbox, detect, largest face,
 * widen, grey, resize (and CLAHE). The web client runs exactly this; the server's FaceCropper
 * gives the same crop for the same RGB frame (tests/unit/face-crop.test.ts pins it).
 */
export async function cropRgbFrame(rgb: Uint8Array, width: number, height: number, detect: DetectFn, o: { side: number; inputSide: number; clahe?: boolean }): Promise<FrameCrop> {
  const { k, scaled, input } = letterbox(width, height, o.side);
  const tensor = new Float32Array(input.width * input.height * 3).fill(-1);
  fillDetectorInput(rgb, width, height, scaled, { out: tensor, offset: 0, rowStride: input.width * 3, scale: 1 / 127.5, bias: -1 });
  const [boxes] = await detect(tensor, input, [1 / k]);
  const face = largest(boxes ?? []);
  if (!face) return { box: null, crop: null };
  const box = { x: face.x, y: face.y, width: face.width, height: face.height };
  const crop = cropGrey(rgb, width, height, box, o.inputSide, o.clahe);
  return crop ? { box, crop } : { box: null, crop: null };
}
