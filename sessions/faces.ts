import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import sharp from 'sharp';

/** Real photos with faces that ship in the @vladmandic/face-api npm package (its demo folder). */
export const FACE_PHOTOS = [1, 2, 3, 4, 5, 6].map((i) => fileURLToPath(new URL(`../node_modules/@vladmandic/face-api/demo/sample${i}.jpg`, import.meta.url)));

export const FER_PUBLIC_TEST = path.resolve(fileURLToPath(new URL('../', import.meta.url)), '../shared/data/fer2013/public-test');

/** A 640x480 JPEG with no face in it: smooth colour gradients and a few rectangles. */
export async function noFacePhoto(): Promise<Buffer> {
  const w = 640;
  const h = 480;
  const rgb = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const box = (x > 100 && x < 220 && y > 300 && y < 420) || (x > 400 && x < 600 && y > 60 && y < 140);
      rgb[i] = box ? 200 : Math.round((x / w) * 120 + 60);
      rgb[i + 1] = box ? 40 : Math.round((y / h) * 140 + 50);
      rgb[i + 2] = box ? 60 : 180;
    }
  }
  return sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

/** A photo scaled down to 640 pixels wide, as an edge camera would send it. */
export async function cameraFrame(file: string): Promise<Buffer> {
  return sharp(file).resize(640).jpeg({ quality: 85 }).toBuffer();
}

interface PhotoLabels {
  readonly photos: Record<string, ReadonlyArray<readonly [number, number, number, number]>>;
}

/**
 * A 640x480 camera-like JPEG of one real face: the `face`-th labelled face of demo photo `photo`
 * (vision/labels/face-photos.json), scaled to `faceWidth` pixels and centred (offset by `dx`, `dy`).
 */
export async function webcamFrame(photo: number, face: number, options: { faceWidth?: number; dx?: number; dy?: number; quality?: number } = {}): Promise<Buffer> {
  const labels = JSON.parse(readFileSync(fileURLToPath(new URL('../vision/labels/face-photos.json', import.meta.url)), 'utf8')) as PhotoLabels;
  const file = FACE_PHOTOS[photo]!;
  const [x, y, w, h] = labels.photos[path.basename(file)]![face]!;
  const scale = (options.faceWidth ?? 200) / w;
  const meta = await sharp(file).metadata();
  const width = Math.round(meta.width! * scale);
  const height = Math.round(meta.height! * scale);
  const left = Math.round((x + w / 2) * scale - 320 + (options.dx ?? 0));
  const top = Math.round((y + h / 2) * scale - 240 + (options.dy ?? 0));
  // Padded first (black), so that a window reaching past the photo's edge stays whole.
  const pad = 640;
  const padded = await sharp(await sharp(file).resize(width, height).toBuffer()).extend({ top: pad, bottom: pad, left: pad, right: pad, background: '#000' }).toBuffer();
  return sharp(padded)
    .extract({ left: left + pad, top: top + pad, width: 640, height: 480 })
    .jpeg({ quality: options.quality ?? 85 })
    .toBuffer();
}
