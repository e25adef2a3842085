import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { ClassifierEngine } from '../../processors/classifier/engine.ts';
import { EmotionMuseError } from '../../schemas/errors.ts';
import { EMOTIONS, type EmotionLabel } from '../../schemas/kinds.ts';
import type { Frame } from '../../schemas/generated/types.ts';

const WIDTH = 640;
const HEIGHT = 480;
const FACE = 220;

/** A FER-2013 face (48x48 grey) enlarged and centred on a plain 640x480 camera frame, as RGB JPEG. */
async function cameraShot(file: string): Promise<Buffer> {
  const face = await sharp(file).resize(FACE, FACE, { kernel: 'cubic' }).toColourspace('srgb').png().toBuffer();
  return sharp({ create: { width: WIDTH, height: HEIGHT, channels: 3, background: { r: 96, g: 104, b: 112 } } })
    .composite([{ input: face, left: (WIDTH - FACE) / 2, top: (HEIGHT - FACE) / 2 }])
    .jpeg({ quality: 90 })
    .toBuffer();
}

export interface ExpressionVideo {
  readonly file: string;
  readonly labels: readonly EmotionLabel[];
  readonly secondsPerLabel: number;
}

/**
 * A y4m video for Chromium's fake camera (--use-file-for-fake-video-capture): real FER-2013 faces
 * (`images`: one folder per class) whose expression changes, `secondsPerLabel` of each label in
 * turn, a new face of that label every second. The faces are those of each folder, in name order,
 * that the server's classifier finds and labels as their folder says: the test is of the system
 * around the model, not of the model's accuracy (models/*.card.json holds that).
 */
export async function makeExpressionVideo(images: string, out: string, labels: readonly EmotionLabel[] = ['happy', 'sad'], secondsPerLabel = 10, fps = 10): Promise<ExpressionVideo> {
  const engine = await ClassifierEngine.create({ providers: ['cpu'] });
  const frames = path.join(path.dirname(out), 'frames');
  mkdirSync(frames, { recursive: true });
  let n = 0;
  for (const label of labels) {
    const files = readdirSync(path.join(images, label)).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
    const chosen: Buffer[] = [];
    for (let i = 0; i < files.length && chosen.length < secondsPerLabel; i += 8) {
      const shots = await Promise.all(files.slice(i, i + 8).map((f) => cameraShot(path.join(images, label, f))));
      const frame = (data: Buffer): Frame => ({ userId: 'v', sessionId: 'v', seq: 1, captureTimeMs: 0, encoding: 'JPEG', width: 0, height: 0, data, faceBox: null, probabilities: [], edgeModelVersion: '' });
      const results = await engine.classify(shots.map(frame));
      results.forEach((r, k) => {
        if (r instanceof EmotionMuseError || !r.faceFound || chosen.length >= secondsPerLabel) return;
        const best = r.probabilities.indexOf(Math.max(...r.probabilities));
        if (EMOTIONS[best] === label && r.probabilities[best]! >= 0.6) chosen.push(shots[k]!);
      });
    }
    if (chosen.length < 3) throw new Error(`only ${chosen.length} faces in ${images}/${label} that the classifier finds and labels ${label}`);
    for (let s = 0; s < secondsPerLabel; s++) {
      for (let f = 0; f < fps; f++) writeFileSync(path.join(frames, `f${String(n++).padStart(5, '0')}.jpg`), chosen[s % chosen.length]!);
    }
  }
  const ff = spawnSync('ffmpeg', ['-v', 'error', '-y', '-framerate', String(fps), '-i', path.join(frames, 'f%05d.jpg'), '-pix_fmt', 'yuv420p', '-f', 'yuv4mpegpipe', out]);
  if (ff.status !== 0) throw new Error(`ffmpeg could not make ${out}: ${ff.stderr.toString()}`);
  return { file: out, labels, secondsPerLabel };
}
