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
  // Per column, its two nearest tiles and the weight of the second (the same for every row).
  const cols = Array.from({ length: width }, (_, x) => neighbours(x, tileW, tilesX));
  for (let y = 0; y < height; y++) {
    const [ty1, ty2, wy] = neighbours(y, tileH, tilesY);
    for (let x = 0; x < width; x++) {
      const [tx1, tx2, wx] = cols[x]!;
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

/** The two tiles nearest a pixel along one axis (their centres around it, clamped at the edges) and the weight of the second. */
function neighbours(p: number, tileSize: number, tiles: number): [number, number, number] {
  const f = p / tileSize - 0.5;
  const f1 = Math.floor(f);
  return [Math.max(0, f1), Math.min(tiles - 1, f1 + 1), f - f1];
}
