/**
 * Separable resampling of interleaved 8-bit images (RGB or grey) into float tensors: area
 * averaging along an axis that shrinks, bilinear with half-pixel centres along one that grows.
 * The detector's letterboxed input is written straight into its batch tensor with it.
 */

/** For each output index along one axis: the first source index, how many follow, and their weights. */
interface AxisWeights {
  readonly start: Int32Array;
  readonly count: Int32Array;
  /** `maxTaps` weights per output index, summing to 1. */
  readonly weights: Float32Array;
  readonly maxTaps: number;
}

const cache = new Map<string, AxisWeights>();

export function axisWeights(from: number, to: number): AxisWeights {
  const key = `${from}>${to}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const scale = from / to;
  const maxTaps = scale > 1 ? Math.ceil(scale) + 1 : 2;
  const start = new Int32Array(to);
  const count = new Int32Array(to);
  const weights = new Float32Array(to * maxTaps);
  for (let i = 0; i < to; i++) {
    if (scale > 1) {
      const a = i * scale;
      const b = a + scale;
      const first = Math.floor(a);
      const last = Math.min(from, Math.ceil(b));
      start[i] = first;
      count[i] = last - first;
      for (let s = first; s < last; s++) weights[i * maxTaps + s - first] = (Math.min(s + 1, b) - Math.max(s, a)) / scale;
    } else {
      const f = Math.min(from - 1, Math.max(0, (i + 0.5) * scale - 0.5));
      const i0 = Math.floor(f);
      const i1 = Math.min(from - 1, i0 + 1);
      start[i] = i0;
      count[i] = i1 > i0 ? 2 : 1;
      weights[i * maxTaps] = i1 > i0 ? 1 - (f - i0) : 1;
      if (i1 > i0) weights[i * maxTaps + 1] = f - i0;
    }
  }
  const w = { start, count, weights, maxTaps };
  if (cache.size > 128) cache.clear();
  cache.set(key, w);
  return w;
}

export interface ResampleTarget {
  readonly out: Float32Array;
  /** Index of the target's top-left value in `out`. */
  readonly offset: number;
  /** Values per target row (the tensor's row, which may be wider than the resampled image). */
  readonly rowStride: number;
  /** Applied to each resampled value (0..255) before it is stored. */
  readonly scale: number;
  readonly bias: number;
}

/**
 * Resamples the `channels`-interleaved `src` (`width` x `height`) to `toWidth` x `toHeight`,
 * writing `value * scale + bias` into `target` (same channel interleaving).
 */
export function resampleInto(src: Uint8Array, width: number, height: number, channels: number, toWidth: number, toHeight: number, target: ResampleTarget): void {
  if (width === toWidth * 2 && height === toHeight * 2) return halveInto(src, width, channels, toWidth, toHeight, target);
  const xw = axisWeights(width, toWidth);
  const yw = axisWeights(height, toHeight);
  const rowLen = toWidth * channels;
  // Horizontal pass over the source rows that the vertical pass needs (all of them when shrinking).
  const rows = new Float32Array(height * rowLen);
  for (let y = 0; y < height; y++) {
    const srcRow = y * width * channels;
    const dstRow = y * rowLen;
    for (let x = 0; x < toWidth; x++) {
      const s0 = xw.start[x]!;
      const n = xw.count[x]!;
      const wBase = x * xw.maxTaps;
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += src[srcRow + (s0 + k) * channels + c]! * xw.weights[wBase + k]!;
        rows[dstRow + x * channels + c] = acc;
      }
    }
  }
  const { out, offset, rowStride, scale, bias } = target;
  for (let y = 0; y < toHeight; y++) {
    const s0 = yw.start[y]!;
    const n = yw.count[y]!;
    const wBase = y * yw.maxTaps;
    const dst = offset + y * rowStride;
    for (let i = 0; i < rowLen; i++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += rows[(s0 + k) * rowLen + i]! * yw.weights[wBase + k]!;
      out[dst + i] = acc * scale + bias;
    }
  }
}

/** Exactly half the size: the mean of each 2x2 block (what area averaging gives, in one pass). */
function halveInto(src: Uint8Array, width: number, channels: number, toWidth: number, toHeight: number, target: ResampleTarget): void {
  const { out, offset, rowStride } = target;
  const scale = target.scale / 4;
  const { bias } = target;
  const srcRow = width * channels;
  for (let y = 0; y < toHeight; y++) {
    const r0 = 2 * y * srcRow;
    const r1 = r0 + srcRow;
    const d = offset + y * rowStride;
    for (let x = 0; x < toWidth; x++) {
      const s0 = r0 + 2 * x * channels;
      const s1 = r1 + 2 * x * channels;
      for (let c = 0; c < channels; c++) {
        out[d + x * channels + c] = (src[s0 + c]! + src[s0 + channels + c]! + src[s1 + c]! + src[s1 + channels + c]!) * scale + bias;
      }
    }
  }
}

/** Copies an RGB image of the target's size into it, as `value * scale + bias`. */
export function copyInto(src: Uint8Array, width: number, height: number, target: ResampleTarget): void {
  const { out, offset, rowStride, scale, bias } = target;
  const rowLen = width * 3;
  for (let y = 0; y < height; y++) {
    const s = y * rowLen;
    const d = offset + y * rowStride;
    for (let i = 0; i < rowLen; i++) out[d + i] = src[s + i]! * scale + bias;
  }
}

/**
 * The grey of a rectangle of an interleaved RGB (or grey) image, as ITU-R BT.601 luma
 * (0.299 R + 0.587 G + 0.114 B, OpenCV's RGB2GRAY, in 8-bit fixed point).
 */
export function greyRegion(src: Uint8Array, width: number, channels: number, region: { left: number; top: number; width: number; height: number }): Uint8Array {
  const out = new Uint8Array(region.width * region.height);
  for (let y = 0; y < region.height; y++) {
    const row = ((region.top + y) * width + region.left) * channels;
    const o = y * region.width;
    if (channels === 1) {
      out.set(src.subarray(row, row + region.width), o);
      continue;
    }
    for (let x = 0; x < region.width; x++) {
      const p = row + x * channels;
      out[o + x] = (src[p]! * 4899 + src[p + 1]! * 9617 + src[p + 2]! * 1868 + 8192) >> 14;
    }
  }
  return out;
}
