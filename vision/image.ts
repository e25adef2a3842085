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
  const xs = bilinearTable(src.width, width);
  const ys = bilinearTable(src.height, height);
  const d = src.data;
  const sw = src.width;
  for (let y = 0; y < height; y++) {
    const r0 = ys.i0[y]! * sw;
    const r1 = ys.i1[y]! * sw;
    const wy = ys.w[y]!;
    for (let x = 0; x < width; x++) {
      const x0 = xs.i0[x]!;
      const x1 = xs.i1[x]!;
      const wx = xs.w[x]!;
      const top = d[r0 + x0]! * (256 - wx) + d[r0 + x1]! * wx;
      const bottom = d[r1 + x0]! * (256 - wx) + d[r1 + x1]! * wx;
      out[y * width + x] = (top * (256 - wy) + bottom * wy + 32768) >> 16;
    }
  }
  return out;
}

interface Table {
  readonly i0: Int32Array;
  readonly i1: Int32Array;
  /** Weight of i1 in 1/256 steps. */
  readonly w: Int32Array;
}
const tables = new Map<string, Table>();

/** Source indices and 8-bit weights of bilinear sampling with half-pixel centres, cached per size pair. */
function bilinearTable(from: number, to: number): Table {
  const key = `${from}>${to}`;
  let t = tables.get(key);
  if (!t) {
    const i0 = new Int32Array(to);
    const i1 = new Int32Array(to);
    const w = new Int32Array(to);
    const scale = from / to;
    for (let i = 0; i < to; i++) {
      const f = Math.min(from - 1, Math.max(0, (i + 0.5) * scale - 0.5));
      i0[i] = Math.floor(f);
      i1[i] = Math.min(from - 1, i0[i]! + 1);
      w[i] = Math.round((f - i0[i]!) * 256);
    }
    t = { i0, i1, w };
    if (tables.size > 64) tables.clear();
    tables.set(key, t);
  }
  return t;
}

const NORMALISED = Float32Array.from({ length: 256 }, (_, p) => (p / 255 - 0.5) * 2);

/** Writes (p / 255 - 0.5) * 2 for each pixel into `out` at `offset` (the emotion model's input range). */
export function normaliseInto(grey: Uint8Array, out: Float32Array, offset: number): void {
  for (let i = 0; i < grey.length; i++) out[offset + i] = NORMALISED[grey[i]!]!;
}

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
