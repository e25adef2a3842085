/**
 * BlazeFace's geometry and output decoding, with no runtime behind it: the server runs the model
 * on ONNX Runtime for Node (vision/detector.ts), the web client on ONNX Runtime Web, and both
 * read its outputs here.
 */
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

/** The side BlazeFace was trained at. */
export const DETECTOR_TRAINED_SIDE = 256;
/** The network's two heads: 2 anchors per cell at stride 16, 6 per cell at stride 32. */
const HEADS = [[16, 2], [32, 6]] as const;
/** Input sizes are multiples of the coarser head's stride. */
export const DETECTOR_STRIDE = 32;

/** Detector sides (the input's longer side) the detector accepts: multiples of 32, 64 to 512. */
export function checkDetectorSide(side: number): number {
  if (!Number.isInteger(side) || side % DETECTOR_STRIDE !== 0 || side < 64 || side > 512) throw new Error(`detector side must be a multiple of 32 from 64 to 512, not ${side}`);
  return side;
}

/** The network's input: `width` x `height` pixels, both multiples of 32. */
export interface DetectorInput {
  readonly width: number;
  readonly height: number;
}

/** Anchors of each head for an input: (w/16)(h/16) x 2 and (w/32)(h/32) x 6. */
export function anchorCounts(input: DetectorInput): [number, number] {
  return HEADS.map(([stride, perCell]) => (input.width / stride) * (input.height / stride) * perCell) as [number, number];
}

/** Anchor centres in input pixels, in the order of the model's two heads (rows, then columns, then anchors). */
function anchors(input: DetectorInput): Float32Array {
  const out: number[] = [];
  for (const [stride, perCell] of HEADS) {
    for (let y = 0; y < input.height / stride; y++) for (let x = 0; x < input.width / stride; x++) for (let n = 0; n < perCell; n++) out.push(stride * (x + 0.5), stride * (y + 0.5));
  }
  return Float32Array.from(out);
}

const anchorCache = new Map<string, Float32Array>();
function anchorsOf(input: DetectorInput): Float32Array {
  const key = `${input.width}x${input.height}`;
  let a = anchorCache.get(key);
  if (!a) anchorCache.set(key, (a = anchors(input)));
  return a;
}

/** Intersection over union of two boxes. */
export function iou(a: Omit<FaceBox, 'score'>, b: Omit<FaceBox, 'score'>): number {
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
 * Decodes one image's raw outputs for an input of `input` pixels: scores (one logit per anchor)
 * and regressors (16 per anchor), anchors in the order of the model's two heads. The regressors
 * are in input pixels (the network is fully convolutional, so a face of a given size in pixels
 * gives the same numbers at any input size). Boxes come back in frame pixels: input pixels times
 * `scale` (the frame was letterboxed, top left, at 1/scale).
 */
export function decodeDetections(
  logits: Float32Array,
  regressors: Float32Array,
  input: DetectorInput,
  scale: number,
  options: DetectorOptions = {},
): FaceBox[] {
  const centres = anchorsOf(input);
  const minScore = options.minScore ?? 0.6;
  const minLogit = Math.log(minScore / (1 - minScore));
  const boxes: FaceBox[] = [];
  for (let i = 0; i < logits.length; i++) {
    const logit = logits[i]!;
    if (logit < minLogit) continue;
    const r = i * 16;
    const cx = regressors[r]! + centres[i * 2]!;
    const cy = regressors[r + 1]! + centres[i * 2 + 1]!;
    const w = regressors[r + 2]!;
    const h = regressors[r + 3]!;
    if (w <= 0 || h <= 0) continue;
    boxes.push({ x: (cx - w / 2) * scale, y: (cy - h / 2) * scale, width: w * scale, height: h * scale, score: 1 / (1 + Math.exp(-logit)) });
  }
  return nonMaxSuppression(boxes, options.iouThreshold ?? 0.3);
}

/** The model's four outputs for a batch: scores and regressors of the stride-16 and stride-32 heads. */
export interface DetectorOutputs {
  readonly s16: Float32Array;
  readonly s32: Float32Array;
  readonly r16: Float32Array;
  readonly r32: Float32Array;
}

/** Decodes each image of a batch: its two heads joined, then {@link decodeDetections}. */
export function decodeBatch(out: DetectorOutputs, input: DetectorInput, scales: readonly number[], options: DetectorOptions = {}): FaceBox[][] {
  const [a16, a32] = anchorCounts(input);
  const result: FaceBox[][] = [];
  for (let b = 0; b < scales.length; b++) {
    const logits = new Float32Array(a16 + a32);
    logits.set(out.s16.subarray(b * a16, (b + 1) * a16), 0);
    logits.set(out.s32.subarray(b * a32, (b + 1) * a32), a16);
    const regs = new Float32Array((a16 + a32) * 16);
    regs.set(out.r16.subarray(b * a16 * 16, (b + 1) * a16 * 16), 0);
    regs.set(out.r32.subarray(b * a32 * 16, (b + 1) * a32 * 16), a16 * 16);
    result.push(decodeDetections(logits, regs, input, scales[b]!, options));
  }
  return result;
}

/** The model's output names for the four heads. */
export const DETECTOR_OUTPUTS = { s16: 'Identity', s32: 'Identity_1', r16: 'Identity_2', r32: 'Identity_3' } as const;
