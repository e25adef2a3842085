import type { ModelSession } from '../../runtime/onnx.ts';
import { ort } from '../../runtime/onnx.ts';

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

export const DETECTOR_INPUT = 256;

/** Anchor centres in input pixels: 16x16 cells x 2 at stride 16, then 8x8 cells x 6 at stride 32 (BlazeFace front). */
function anchors(size: number): Float32Array {
  const out: number[] = [];
  for (const [stride, perCell] of [[size / 16, 2], [size / 8, 6]] as const) {
    const cells = Math.ceil(size / stride);
    for (let y = 0; y < cells; y++) for (let x = 0; x < cells; x++) for (let n = 0; n < perCell; n++) out.push(stride * (x + 0.5), stride * (y + 0.5));
  }
  return Float32Array.from(out);
}

const ANCHORS = anchors(DETECTOR_INPUT);

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
 * Decodes one image's raw outputs: scores (896 logits) and regressors (896 x 16), anchors in
 * the order of the model's two heads. Returns boxes scaled to a `width` x `height` frame.
 */
export function decodeDetections(
  logits: Float32Array,
  regressors: Float32Array,
  width: number,
  height: number,
  options: DetectorOptions = {},
): FaceBox[] {
  const minScore = options.minScore ?? 0.6;
  const minLogit = Math.log(minScore / (1 - minScore));
  const boxes: FaceBox[] = [];
  for (let i = 0; i < logits.length; i++) {
    const logit = logits[i]!;
    if (logit < minLogit) continue;
    const r = i * 16;
    const cx = (regressors[r]! + ANCHORS[i * 2]!) / DETECTOR_INPUT;
    const cy = (regressors[r + 1]! + ANCHORS[i * 2 + 1]!) / DETECTOR_INPUT;
    const w = regressors[r + 2]! / DETECTOR_INPUT;
    const h = regressors[r + 3]! / DETECTOR_INPUT;
    if (w <= 0 || h <= 0) continue;
    boxes.push({ x: (cx - w / 2) * width, y: (cy - h / 2) * height, width: w * width, height: h * height, score: 1 / (1 + Math.exp(-logit)) });
  }
  return nonMaxSuppression(boxes, options.iouThreshold ?? 0.3);
}

/** Runs the converted BlazeFace model on a batch of 256x256 RGB inputs normalised to [-1, 1]. */
export class FaceDetector {
  constructor(
    private readonly session: ModelSession,
    private readonly options: DetectorOptions = {},
  ) {}

  async detect(inputs: Float32Array, sizes: ReadonlyArray<{ width: number; height: number }>): Promise<FaceBox[][]> {
    const n = sizes.length;
    const feeds = { [this.session.inputNames[0]!]: new ort.Tensor('float32', inputs, [n, DETECTOR_INPUT, DETECTOR_INPUT, 3]) };
    const out = await this.session.run(feeds);
    const s16 = out.Identity!.data as Float32Array;
    const s32 = out.Identity_1!.data as Float32Array;
    const r16 = out.Identity_2!.data as Float32Array;
    const r32 = out.Identity_3!.data as Float32Array;
    const result: FaceBox[][] = [];
    for (let b = 0; b < n; b++) {
      const logits = new Float32Array(896);
      logits.set(s16.subarray(b * 512, (b + 1) * 512), 0);
      logits.set(s32.subarray(b * 384, (b + 1) * 384), 512);
      const regs = new Float32Array(896 * 16);
      regs.set(r16.subarray(b * 512 * 16, (b + 1) * 512 * 16), 0);
      regs.set(r32.subarray(b * 384 * 16, (b + 1) * 384 * 16), 512 * 16);
      result.push(decodeDetections(logits, regs, sizes[b]!.width, sizes[b]!.height, this.options));
    }
    return result;
  }
}
