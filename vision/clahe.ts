/**
 * Contrast Limited Adaptive Histogram Equalisation of an 8-bit grey image, with OpenCV's
 * semantics: a tiles.x x tiles.y grid, per-tile histograms clipped at
 * max(1, clipLimit * tileArea / 256) with the excess spread evenly, and bilinear interpolation
 * between the four nearest tiles' mappings.
 */
export function clahe(src: Uint8Array, width: number, height: number, clipLimit = 2.0, tilesX = 8, tilesY = 8): Uint8Array {
  const tileW = width / tilesX;
  const tileH = height / tilesY;
  const luts = new Uint8Array(tilesX * tilesY * 256);
  const hist = new Int32Array(256);
  for (let ty = 0; ty < tilesY; ty++) {
    const y0 = Math.floor(ty * tileH);
    const y1 = Math.max(y0 + 1, Math.floor((ty + 1) * tileH));
    for (let tx = 0; tx < tilesX; tx++) {
      const x0 = Math.floor(tx * tileW);
      const x1 = Math.max(x0 + 1, Math.floor((tx + 1) * tileW));
      hist.fill(0);
      for (let y = y0; y < y1 && y < height; y++) {
        const row = y * width;
        for (let x = x0; x < x1 && x < width; x++) hist[src[row + x]!]!++;
      }
      const area = (Math.min(y1, height) - y0) * (Math.min(x1, width) - x0);
      const clip = Math.max(1, Math.floor((clipLimit * area) / 256));
      let excess = 0;
      for (let i = 0; i < 256; i++) {
        if (hist[i]! > clip) {
          excess += hist[i]! - clip;
          hist[i] = clip;
        }
      }
      const each = Math.floor(excess / 256);
      let residual = excess - each * 256;
      for (let i = 0; i < 256; i++) hist[i]! += each;
      if (residual > 0) {
        const step = Math.max(1, Math.floor(256 / residual));
        for (let i = 0; i < 256 && residual > 0; i += step, residual--) hist[i]!++;
      }
      const scale = 255 / area;
      const base = (ty * tilesX + tx) * 256;
      let sum = 0;
      for (let i = 0; i < 256; i++) {
        sum += hist[i]!;
        luts[base + i] = Math.min(255, Math.round(sum * scale));
      }
    }
  }
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const fy = y / tileH - 0.5;
    const fy1 = Math.floor(fy);
    const wy = fy - fy1;
    const ty1 = Math.max(0, fy1);
    const ty2 = Math.min(tilesY - 1, fy1 + 1);
    for (let x = 0; x < width; x++) {
      const fx = x / tileW - 0.5;
      const fx1 = Math.floor(fx);
      const wx = fx - fx1;
      const tx1 = Math.max(0, fx1);
      const tx2 = Math.min(tilesX - 1, fx1 + 1);
      const v = src[y * width + x]!;
      const a = luts[(ty1 * tilesX + tx1) * 256 + v]!;
      const b = luts[(ty1 * tilesX + tx2) * 256 + v]!;
      const c = luts[(ty2 * tilesX + tx1) * 256 + v]!;
      const d = luts[(ty2 * tilesX + tx2) * 256 + v]!;
      out[y * width + x] = Math.round((1 - wy) * ((1 - wx) * a + wx * b) + wy * ((1 - wx) * c + wx * d));
    }
  }
  return out;
}
