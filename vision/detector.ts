import type { ModelSession } from '../runtime/onnx.ts';
import { ort } from '../runtime/onnx.ts';

export interface FaceBox {
  /** Pixels in the source frame. */
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly score: number;
}

export interface DetectorOptions {
  /** Sigmoid score a box needs. @defaultValue 0.6 */
  readonly minScore?: number;
  /** Boxes overlapping a better one by more than this IoU are dropped. @defaultValue 0.3 */
  readonly iouThreshold?: number;
}

/** The side BlazeFace was trained at, and the default input side. */
export const DETECTOR_TRAINED_SIDE = 256;
/** The network's two heads: 2 anchors per cell at stride 16, 6 per cell at stride 32. */
const HEADS = [[16, 2], [32, 6]] as const;

/** Input sides the detector accepts: multiples of 32 (the coarser head's stride), 64 to 512. */
export function checkDetectorSide(side: number): number {
  if (!Number.isInteger(side) || side % 32 !== 0 || side < 64 || side > 512) throw new Error(`detector side must be a multiple of 32 from 64 to 512, not ${side}`);
  return side;
}

/** Anchors of each head at an input side: (side/16)^2 x 2 and (side/32)^2 x 6. */
export function anchorCounts(side: number): [number, number] {
  return HEADS.map(([stride, perCell]) => (side / stride) ** 2 * perCell) as [number, number];
}

/** Anchor centres in input pixels, in the order of the model's two heads. */
function anchors(side: number): Float32Array {
  const out: number[] = [];
  for (const [stride, perCell] of HEADS) {
    const cells = side / stride;
    for (let y = 0; y < cells; y++) for (let x = 0; x < cells; x++) for (let n = 0; n < perCell; n++) out.push(stride * (x + 0.5), stride * (y + 0.5));
  }
  return Float32Array.from(out);
}

const anchorCache = new Map<number, Float32Array>();
function anchorsOf(side: number): Float32Array {
  let a = anchorCache.get(side);
  if (!a) anchorCache.set(side, (a = anchors(side)));
  return a;
}

function iou(a: FaceBox, b: FaceBox): number {
  const x0 = Math.max(a.x, b.x);
  const y0 = Math.max(a.y, b.y);
  const x1 = Math.min(a.x + a.width, b.x + b.width);
  const y1 = Math.min(a.y + a.height, b.y + b.height);
  const inter = Math.max(0, x1 - x0) * Math.max(0, y1 - y0);
  return inter / (a.width * a.height + b.width * b.height - inter);
}

/** Greedy non-maximum suppression, best score first. */
export function nonMaxSuppression(boxes: FaceBox[], iouThreshold: number): FaceBox[] {
  const sorted = [...boxes].sort((a, b) => b.score - a.score);
  const kept: FaceBox[] = [];
  for (const box of sorted) if (kept.every((k) => iou(k, box) <= iouThreshold)) kept.push(box);
  return kept;
}

/**
 * Decodes one image's raw outputs at input side `side`: scores (one logit per anchor) and
 * regressors (16 per anchor), anchors in the order of the model's two heads. The regressors are in
 * input pixels (the network is fully convolutional, so a face of a given size in pixels gives the
 * same numbers at any side). Returns boxes scaled to a `width` x `height` frame: the square the
 * input was letterboxed from.
 */
export function decodeDetections(
  logits: Float32Array,
  regressors: Float32Array,
  width: number,
  height: number,
  options: DetectorOptions & { side?: number } = {},
): FaceBox[] {
  const side = options.side ?? DETECTOR_TRAINED_SIDE;
  const ANCHORS = anchorsOf(side);
  const minScore = options.minScore ?? 0.6;
  const minLogit = Math.log(minScore / (1 - minScore));
  const boxes: FaceBox[] = [];
  for (let i = 0; i < logits.length; i++) {
    const logit = logits[i]!;
    if (logit < minLogit) continue;
    const r = i * 16;
    const cx = (regressors[r]! + ANCHORS[i * 2]!) / side;
    const cy = (regressors[r + 1]! + ANCHORS[i * 2 + 1]!) / side;
    const w = regressors[r + 2]! / side;
    const h = regressors[r + 3]! / side;
    if (w <= 0 || h <= 0) continue;
    boxes.push({ x: (cx - w / 2) * width, y: (cy - h / 2) * height, width: w * width, height: h * height, score: 1 / (1 + Math.exp(-logit)) });
  }
  return nonMaxSuppression(boxes, options.iouThreshold ?? 0.3);
}

/** Runs the converted BlazeFace model on a batch of `side` x `side` RGB inputs normalised to [-1, 1]. */
export class FaceDetector {
  readonly side: number;
  constructor(
    private readonly session: ModelSession,
    private readonly options: DetectorOptions & { side?: number } = {},
  ) {
    this.side = checkDetectorSide(options.side ?? DETECTOR_TRAINED_SIDE);
  }

  /** `sizes`: for each input, the square (in frame pixels) it was letterboxed from. */
  async detect(inputs: Float32Array, sizes: ReadonlyArray<{ width: number; height: number }>): Promise<FaceBox[][]> {
    const n = sizes.length;
    const side = this.side;
    const [a16, a32] = anchorCounts(side);
    const feeds = { [this.session.inputNames[0]!]: new ort.Tensor('float32', inputs, [n, side, side, 3]) };
    const out = await this.session.run(feeds);
    const s16 = out.Identity!.data as Float32Array;
    const s32 = out.Identity_1!.data as Float32Array;
    const r16 = out.Identity_2!.data as Float32Array;
    const r32 = out.Identity_3!.data as Float32Array;
    const result: FaceBox[][] = [];
    for (let b = 0; b < n; b++) {
      const logits = new Float32Array(a16 + a32);
      logits.set(s16.subarray(b * a16, (b + 1) * a16), 0);
      logits.set(s32.subarray(b * a32, (b + 1) * a32), a16);
      const regs = new Float32Array((a16 + a32) * 16);
      regs.set(r16.subarray(b * a16 * 16, (b + 1) * a16 * 16), 0);
      regs.set(r32.subarray(b * a32 * 16, (b + 1) * a32 * 16), a16 * 16);
      result.push(decodeDetections(logits, regs, sizes[b]!.width, sizes[b]!.height, { ...this.options, side }));
    }
    return result;
  }
}
