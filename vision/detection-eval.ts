/**
 * Detection quality on labelled 640x480 scenes built from real photos: the face photos of the npm
 * package @vladmandic/face-api (boxes in vision/labels/face-photos.json) scaled and cut into camera
 * frames, FER-2013 training faces pasted at known boxes onto generated backgrounds, and scenes
 * with no face. Scenes are JPEG-encoded and go through the same path as camera frames
 * (FaceCropper.detectAll), at each detector side asked for.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { seededRandom } from '../sessions/timeline.ts';
import { iou, type FaceBox, type FaceDetector } from './detector.ts';

export { iou };
import { FaceTrack, type Box, type FaceCropper } from './face-crop.ts';

export const SCENE_WIDTH = 640;
export const SCENE_HEIGHT = 480;
/** Face widths in scenes are drawn log-uniformly from this range (pixels of the 640x480 frame). */
export const FACE_WIDTHS: readonly [number, number] = [30, 300];
export const MATCH_IOU = 0.5;

export interface Scene {
  readonly kind: 'photo' | 'fer' | 'none';
  readonly jpeg: Buffer;
  /** Faces that must be found. */
  readonly faces: readonly Box[];
  /** Faces cut by the frame's edge: a detection there is neither a hit nor a false positive. */
  readonly ignore: readonly Box[];
}

export interface SceneSources {
  /** Folder of the face photos (sample1.jpg ...) and their labels. */
  readonly photosDir: string;
  readonly labels: Record<string, ReadonlyArray<readonly [number, number, number, number]>>;
  /** FER-2013 images (48x48 grey): one folder per class. */
  readonly ferDir: string;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export function defaultSceneSources(): SceneSources {
  const labels = JSON.parse(readFileSync(path.join(ROOT, 'vision/labels/face-photos.json'), 'utf8')) as { photos: SceneSources['labels'] };
  return { photosDir: path.join(ROOT, 'node_modules/@vladmandic/face-api/demo'), labels: labels.photos, ferDir: path.resolve(ROOT, '../shared/data/fer2013/train') };
}

function visibleFraction(b: Box): number {
  const w = Math.max(0, Math.min(SCENE_WIDTH, b.x + b.width) - Math.max(0, b.x));
  const h = Math.max(0, Math.min(SCENE_HEIGHT, b.y + b.height) - Math.max(0, b.y));
  return (w * h) / (b.width * b.height);
}

/** A generated background without faces: a two-colour gradient, rectangles, discs and noise. */
function background(random: () => number): Buffer {
  const rgb = Buffer.alloc(SCENE_WIDTH * SCENE_HEIGHT * 3);
  const c0 = [0, 1, 2].map(() => random() * 255);
  const c1 = [0, 1, 2].map(() => random() * 255);
  const shapes = Array.from({ length: 2 + Math.floor(random() * 6) }, () => ({
    disc: random() < 0.4,
    x: random() * SCENE_WIDTH,
    y: random() * SCENE_HEIGHT,
    w: 20 + random() * 250,
    h: 20 + random() * 200,
    colour: [0, 1, 2].map(() => random() * 255),
  }));
  const noise = 4 + random() * 20;
  for (let y = 0; y < SCENE_HEIGHT; y++) {
    for (let x = 0; x < SCENE_WIDTH; x++) {
      const t = (x + y) / (SCENE_WIDTH + SCENE_HEIGHT);
      let colour = [c0[0]! * (1 - t) + c1[0]! * t, c0[1]! * (1 - t) + c1[1]! * t, c0[2]! * (1 - t) + c1[2]! * t];
      for (const s of shapes) {
        const inside = s.disc ? ((x - s.x) / (s.w / 2)) ** 2 + ((y - s.y) / (s.w / 2)) ** 2 <= 1 : x >= s.x && x < s.x + s.w && y >= s.y && y < s.y + s.h;
        if (inside) colour = s.colour;
      }
      const i = (y * SCENE_WIDTH + x) * 3;
      for (let c = 0; c < 3; c++) rgb[i + c] = Math.max(0, Math.min(255, colour[c]! + (random() - 0.5) * noise));
    }
  }
  return rgb;
}

const logUniform = (random: () => number, [lo, hi]: readonly [number, number]) => Math.exp(Math.log(lo) + random() * (Math.log(hi) - Math.log(lo)));

async function photoScene(random: () => number, sources: SceneSources, photos: string[]): Promise<Scene> {
  const name = photos[Math.floor(random() * photos.length)]!;
  const boxes = sources.labels[name]!;
  const meanWidth = boxes.reduce((s, b) => s + b[2], 0) / boxes.length;
  const scale = logUniform(random, FACE_WIDTHS) / meanWidth;
  const file = path.join(sources.photosDir, name);
  const meta = await sharp(file).metadata();
  const width = Math.round(meta.width! * scale);
  const height = Math.round(meta.height! * scale);
  // Put one face, chosen at random, somewhere in the window.
  const anchor = boxes[Math.floor(random() * boxes.length)]!;
  const fx = (anchor[0] + anchor[2] / 2) * scale;
  const fy = (anchor[1] + anchor[3] / 2) * scale;
  const left = Math.round(fx - random() * SCENE_WIDTH);
  const top = Math.round(fy - random() * SCENE_HEIGHT);
  return photoWindow(sources, name, scale, left, top);
}

/** A 640x480 window at (left, top) of demo photo `name` scaled by `scale`, with its labelled faces. */
async function photoWindow(sources: SceneSources, name: string, scale: number, left: number, top: number): Promise<Scene> {
  const boxes = sources.labels[name]!;
  const file = path.join(sources.photosDir, name);
  const meta = await sharp(file).metadata();
  const width = Math.round(meta.width! * scale);
  const height = Math.round(meta.height! * scale);
  const resized = await sharp(file).resize(width, height).raw().toBuffer();
  const canvas = Buffer.alloc(SCENE_WIDTH * SCENE_HEIGHT * 3);
  for (let y = 0; y < SCENE_HEIGHT; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= height) continue;
    const x0 = Math.max(0, -left);
    const x1 = Math.min(SCENE_WIDTH, width - left);
    if (x1 <= x0) continue;
    resized.copy(canvas, (y * SCENE_WIDTH + x0) * 3, (sy * width + x0 + left) * 3, (sy * width + x1 + left) * 3);
  }
  const faces: Box[] = [];
  const ignore: Box[] = [];
  for (const [x, y, w, h] of boxes) {
    const b = { x: x * scale - left, y: y * scale - top, width: w * scale, height: h * scale };
    const v = visibleFraction(b);
    if (v >= 0.9) faces.push(b);
    else if (v > 0) ignore.push(b);
  }
  const jpeg = await sharp(canvas, { raw: { width: SCENE_WIDTH, height: SCENE_HEIGHT, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
  return { kind: 'photo', jpeg, faces, ignore };
}

async function ferScene(random: () => number, ferFiles: string[], count: number): Promise<Scene> {
  const faces: Box[] = [];
  const overlays: sharp.OverlayOptions[] = [];
  for (let tries = 0; faces.length < count && tries < 50; tries++) {
    const side = Math.round(logUniform(random, FACE_WIDTHS));
    if (side >= SCENE_HEIGHT) continue;
    const b = { x: Math.floor(random() * (SCENE_WIDTH - side)), y: Math.floor(random() * (SCENE_HEIGHT - side)), width: side, height: side };
    if (faces.some((f) => (b.x < f.x + f.width && f.x < b.x + b.width && b.y < f.y + f.height && f.y < b.y + b.height))) continue;
    const file = ferFiles[Math.floor(random() * ferFiles.length)]!;
    overlays.push({ input: await sharp(file).resize(side, side, { kernel: 'cubic' }).toColourspace('srgb').png().toBuffer(), left: b.x, top: b.y });
    faces.push(b);
  }
  const jpeg = await sharp(background(random), { raw: { width: SCENE_WIDTH, height: SCENE_HEIGHT, channels: 3 } }).composite(overlays).jpeg({ quality: 85 }).toBuffer();
  return { kind: count === 0 ? 'none' : 'fer', jpeg, faces, ignore: [] };
}

function listImages(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listImages(path.join(dir, e.name)) : /\.(jpe?g|png)$/i.test(e.name) ? [path.join(dir, e.name)] : []));
}

/** `count` scenes: 40% from the photos, 45% FER faces (1 to 3), 15% without a face. */
export async function buildScenes(count: number, seed: number, sources: SceneSources = defaultSceneSources(), onProgress?: (done: number, total: number) => void): Promise<Scene[]> {
  const random = seededRandom(seed);
  const photos = Object.keys(sources.labels).sort();
  const ferFiles = listImages(sources.ferDir).sort();
  if (ferFiles.length === 0) throw new Error(`${sources.ferDir} holds no images`);
  const scenes: Scene[] = [];
  for (let i = 0; i < count; i++) {
    const r = random();
    scenes.push(r < 0.4 ? await photoScene(random, sources, photos) : r < 0.85 ? await ferScene(random, ferFiles, 1 + Math.floor(random() * 3)) : await ferScene(random, ferFiles, 0));
    onProgress?.(i + 1, count);
  }
  return scenes;
}

/**
 * `count` camera-like sequences of `frames` frames: a window of a demo photo around one face (80 to
 * 250 pixels wide) that drifts a few pixels and zooms slightly from frame to frame, as a person in
 * front of a camera moves; in every other sequence the view cuts at mid-sequence to another face of
 * another size and place, so that a followed face is lost and must be found again.
 */
export async function buildSequences(count: number, frames: number, seed: number, sources: SceneSources = defaultSceneSources(), onProgress?: (done: number, total: number) => void): Promise<Scene[][]> {
  const random = seededRandom(seed);
  const photos = Object.keys(sources.labels).sort();
  const sequences: Scene[][] = [];
  const start = () => {
    const name = photos[Math.floor(random() * photos.length)]!;
    const boxes = sources.labels[name]!;
    const face = boxes[Math.floor(random() * boxes.length)]!;
    const scale = logUniform(random, [80, 250]) / face[2];
    return { name, scale, cx: (face[0] + face[2] / 2) * scale + (random() - 0.5) * 200, cy: (face[1] + face[3] / 2) * scale + (random() - 0.5) * 120 };
  };
  for (let i = 0; i < count; i++) {
    let view = start();
    const scenes: Scene[] = [];
    for (let f = 0; f < frames; f++) {
      if (i % 2 === 1 && f === Math.floor(frames / 2)) view = start();
      view.cx += (random() - 0.5) * 8;
      view.cy += (random() - 0.5) * 8;
      const zoom = 1 + (random() - 0.5) * 0.008;
      view.scale *= zoom;
      view.cx *= zoom;
      view.cy *= zoom;
      scenes.push(await photoWindow(sources, view.name, view.scale, Math.round(view.cx - SCENE_WIDTH / 2), Math.round(view.cy - SCENE_HEIGHT / 2)));
    }
    sequences.push(scenes);
    onProgress?.(i + 1, count);
  }
  return sequences;
}

export interface DetectionReport {
  /** The detector setting: a side, or a cascade (`128/256`). */
  readonly detector: string;
  readonly scenes: number;
  readonly faces: number;
  /** Faces found (IoU >= 0.5 with a detection), over all faces. */
  readonly recall: number;
  /** Recall of faces under 64, 64 to 128, and over 128 pixels wide. */
  readonly recallBySize: { readonly small: number; readonly medium: number; readonly large: number };
  /** Detections that match no face and no face cut by the frame's edge, per scene. */
  readonly falsePositivesPerScene: number;
  /** Scenes with a face whose largest face was found (matched by a detection). */
  readonly largestRecall: number;
  /** Scenes with a face whose largest detection is a face (what the classifier crops). */
  readonly largestCorrect: number;
  /** Scenes without a face in which something was detected. */
  readonly falseAlarmScenes: number;
  readonly msPerFrame: number;
}

export function scoreDetections(scenes: readonly Scene[], detections: readonly FaceBox[][], detector: string, msPerFrame: number): DetectionReport {
  let faces = 0;
  let found = 0;
  let falsePositives = 0;
  let withFace = 0;
  let largestOk = 0;
  let largestFound = 0;
  let noFace = 0;
  let falseAlarm = 0;
  const bySize = { small: [0, 0], medium: [0, 0], large: [0, 0] };
  scenes.forEach((scene, i) => {
    const dets = [...detections[i]!].sort((a, b) => b.score - a.score);
    const matched = new Set<number>();
    for (const d of dets) {
      let best = -1;
      let bestIou = MATCH_IOU;
      scene.faces.forEach((f, k) => {
        const v = iou(d, f);
        if (!matched.has(k) && v >= bestIou) {
          best = k;
          bestIou = v;
        }
      });
      if (best >= 0) matched.add(best);
      else if (!scene.ignore.some((g) => iou(d, g) >= 0.3)) falsePositives++;
    }
    faces += scene.faces.length;
    found += matched.size;
    if (scene.faces.length > 0) {
      let biggest = 0;
      scene.faces.forEach((f, k) => {
        if (f.width * f.height > scene.faces[biggest]!.width * scene.faces[biggest]!.height) biggest = k;
      });
      if (matched.has(biggest)) largestFound++;
    }
    scene.faces.forEach((f, k) => {
      const bucket = f.width < 64 ? bySize.small : f.width < 128 ? bySize.medium : bySize.large;
      bucket[0]!++;
      if (matched.has(k)) bucket[1]!++;
    });
    if (scene.faces.length > 0) {
      withFace++;
      const largest = [...dets].sort((a, b) => b.width * b.height - a.width * a.height)[0];
      if (largest && scene.faces.some((f) => iou(largest, f) >= MATCH_IOU)) largestOk++;
    } else if (scene.ignore.length === 0) {
      noFace++;
      if (dets.length > 0) falseAlarm++;
    }
  });
  const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
  return {
    detector,
    scenes: scenes.length,
    faces,
    recall: ratio(found, faces),
    // NaN where a size holds no face (JSON: null).
    recallBySize: { small: bySize.small[1]! / bySize.small[0]!, medium: bySize.medium[1]! / bySize.medium[0]!, large: bySize.large[1]! / bySize.large[0]! },
    falsePositivesPerScene: ratio(falsePositives, scenes.length),
    largestRecall: ratio(largestFound, withFace),
    largestCorrect: ratio(largestOk, withFace),
    falseAlarmScenes: ratio(falseAlarm, noFace),
    msPerFrame,
  };
}

/**
 * The classifier's detection before the scaled decode (round 1), for reference: the whole frame
 * decoded, letterboxed by libvips into a 256x256 square (top left, black), BlazeFace at 256x256.
 */
export async function evaluateReference(detector: FaceDetector, scenes: readonly Scene[], batch = 8): Promise<DetectionReport> {
  const side = 256;
  const detections: FaceBox[][] = [];
  const t0 = performance.now();
  for (let i = 0; i < scenes.length; i += batch) {
    const run = scenes.slice(i, i + batch);
    const tensor = new Float32Array(run.length * side * side * 3);
    await Promise.all(
      run.map(async (scene, k) => {
        const { data } = await sharp(await sharp(scene.jpeg).removeAlpha().raw().toBuffer(), { raw: { width: SCENE_WIDTH, height: SCENE_HEIGHT, channels: 3 } })
          .resize(side, side, { fit: 'contain', position: 'left top', background: { r: 0, g: 0, b: 0 } })
          .raw()
          .toBuffer({ resolveWithObject: true });
        for (let p = 0; p < data.length; p++) tensor[k * side * side * 3 + p] = data[p]! / 127.5 - 1;
      }),
    );
    detections.push(...(await detector.detect(tensor, { width: side, height: side }, run.map(() => Math.max(SCENE_WIDTH, SCENE_HEIGHT) / side))));
  }
  return scoreDetections(scenes, detections, 'round 1: 256x256, whole decode', (performance.now() - t0) / scenes.length);
}

/**
 * Crops every frame of every sequence in order, as an edge client would, searching the whole of
 * each frame or (with `track`) following the face; scored per frame like the scenes.
 */
export async function evaluateSequences(cropper: FaceCropper, sequences: readonly Scene[][], track: boolean): Promise<DetectionReport & { readonly windowShare: number }> {
  const detections: FaceBox[][] = [];
  let window = 0;
  let total = 0;
  const t0 = performance.now();
  for (const sequence of sequences) {
    const face = track ? new FaceTrack() : undefined;
    for (const scene of sequence) {
      const [boxes] = await cropper.detectAll([{ encoded: scene.jpeg, encoding: 'JPEG', track: face }]);
      detections.push(boxes!);
    }
    window += face?.counts.window ?? 0;
    total += sequence.length;
  }
  const report = scoreDetections(sequences.flat(), detections, `${cropper.describe()}${track ? ', following the face' : ', whole frame'}`, (performance.now() - t0) / total);
  return { ...report, windowShare: window / total };
}

/** Runs the cropper's detector over every scene (in batches of `batch`) and scores it. */
export async function evaluateDetector(cropper: FaceCropper, scenes: readonly Scene[], batch = 8, keep?: FaceBox[][]): Promise<DetectionReport> {
  const detections: FaceBox[][] = [];
  const t0 = performance.now();
  for (let i = 0; i < scenes.length; i += batch) {
    detections.push(...(await cropper.detectAll(scenes.slice(i, i + batch).map((s) => ({ encoded: s.jpeg, encoding: 'JPEG' as const })))));
  }
  keep?.push(...detections);
  return scoreDetections(scenes, detections, cropper.describe(), (performance.now() - t0) / scenes.length);
}

/**
 * A contact sheet (PNG or JPEG) of the first `count` scenes at a quarter of their size, labelled faces in
 * green, detections in red, faces cut by the frame's edge in grey: what the figures count.
 */
export async function detectionSheet(scenes: readonly Scene[], detections: readonly FaceBox[][], format: 'png' | 'jpeg' = 'png', count = 24, columns = 6): Promise<Buffer> {
  const w = SCENE_WIDTH / 2;
  const h = SCENE_HEIGHT / 2;
  const tiles = await Promise.all(
    scenes.slice(0, count).map(async (scene, i) => {
      const rect = (b: { x: number; y: number; width: number; height: number }, colour: string, dash = '') =>
        `<rect x="${b.x}" y="${b.y}" width="${b.width}" height="${b.height}" fill="none" stroke="${colour}" stroke-width="4"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`;
      const svg = `<svg width="${SCENE_WIDTH}" height="${SCENE_HEIGHT}" xmlns="http://www.w3.org/2000/svg">${scene.faces.map((f) => rect(f, '#2ecc40')).join('')}${scene.ignore.map((f) => rect(f, '#aaaaaa', '8,6')).join('')}${(detections[i] ?? []).map((d) => rect(d, '#ff4136', '12,6')).join('')}</svg>`;
      const drawn = await sharp(scene.jpeg).composite([{ input: Buffer.from(svg) }]).png().toBuffer();
      return { input: await sharp(drawn).resize(w, h).png().toBuffer(), left: (i % columns) * w, top: Math.floor(i / columns) * h };
    }),
  );
  const rows = Math.ceil(tiles.length / columns);
  const sheet = sharp({ create: { width: columns * w, height: rows * h, channels: 3, background: '#ffffff' } }).composite(tiles);
  return format === 'jpeg' ? sheet.jpeg({ quality: 80 }).toBuffer() : sheet.png().toBuffer();
}
