/** An 8-bit grey image, row-major. */
export interface GreyImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/**
 * Resizes a grey image: area averaging when shrinking (no aliasing), bilinear with half-pixel
 * centres when growing (as OpenCV's INTER_AREA / INTER_LINEAR do).
 */
export function resizeGrey(src: GreyImage, width: number, height: number): Uint8Array {
  if (src.width === width && src.height === height) return src.data;
  const out = new Uint8Array(width * height);
  const sx = src.width / width;
  const sy = src.height / height;
  if (sx >= 1 && sy >= 1) {
    for (let y = 0; y < height; y++) {
      const y0 = y * sy;
      const y1 = y0 + sy;
      for (let x = 0; x < width; x++) {
        const x0 = x * sx;
        const x1 = x0 + sx;
        let sum = 0;
        for (let yy = Math.floor(y0); yy < Math.ceil(y1); yy++) {
          const wy = Math.min(yy + 1, y1) - Math.max(yy, y0);
          const row = yy * src.width;
          for (let xx = Math.floor(x0); xx < Math.ceil(x1); xx++) {
            const wx = Math.min(xx + 1, x1) - Math.max(xx, x0);
            sum += src.data[row + xx]! * wx * wy;
          }
        }
        out[y * width + x] = Math.round(sum / (sx * sy));
      }
    }
    return out;
  }
  for (let y = 0; y < height; y++) {
    const fy = Math.min(src.height - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(src.height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(src.width - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(src.width - 1, x0 + 1);
      const wx = fx - x0;
      const a = src.data[y0 * src.width + x0]!;
      const b = src.data[y0 * src.width + x1]!;
      const c = src.data[y1 * src.width + x0]!;
      const d = src.data[y1 * src.width + x1]!;
      out[y * width + x] = Math.round((1 - wy) * ((1 - wx) * a + wx * b) + wy * ((1 - wx) * c + wx * d));
    }
  }
  return out;
}

/** Writes (p / 255 - 0.5) * 2 for each pixel into `out` at `offset` (the emotion model's input range). */
export function normaliseInto(grey: Uint8Array, out: Float32Array, offset: number): void {
  for (let i = 0; i < grey.length; i++) out[offset + i] = (grey[i]! / 255 - 0.5) * 2;
}
