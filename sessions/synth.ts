import { readdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Frame } from '../schemas/generated/types.ts';
import type { SchemaRegistry } from '../schemas/registry.ts';
import { writeRecording } from '../schemas/recording.ts';
import { labelAt, seededRandom, type Segment } from './timeline.ts';

export interface SynthOptions {
  /** Folder with one subfolder of face images per emotion (FER-2013 layout). */
  readonly images: string;
  readonly timeline: readonly Segment[];
  /** @defaultValue 10 */
  readonly fps?: number;
  /** @defaultValue 7 */
  readonly seed?: number;
  /** @defaultValue 'user-1' */
  readonly userId?: string;
  /** @defaultValue 'synth-<seed>' */
  readonly sessionId?: string;
  /** Capture time of the first frame. @defaultValue 2026-01-01T00:00:00Z */
  readonly startTimeMs?: number;
}

/** What a labelled recording keeps in its metadata: the ground truth and how it was made. */
export interface LabelledSessionMeta {
  readonly kind: 'labelled-session';
  readonly timeline: readonly Segment[];
  readonly fps: number;
  readonly seed: number;
  readonly images: string;
  readonly userId: string;
  readonly sessionId: string;
  readonly startTimeMs: number;
  readonly frames: number;
}

/**
 * Frames of a labelled session: at each tick of `fps`, a real face image of the emotion the
 * timeline holds at that moment, chosen by a seeded generator, as an edge client's grey face
 * crop (GRAY8).
 */
export async function synthesizeSession(options: SynthOptions): Promise<{ frames: Frame[]; meta: LabelledSessionMeta }> {
  const fps = options.fps ?? 10;
  const seed = options.seed ?? 7;
  const userId = options.userId ?? 'user-1';
  const sessionId = options.sessionId ?? `synth-${seed}`;
  const startTimeMs = options.startTimeMs ?? Date.UTC(2026, 0, 1);
  const random = seededRandom(seed);
  const files = new Map<string, string[]>();
  for (const { label } of options.timeline) {
    if (files.has(label)) continue;
    const dir = path.join(options.images, label);
    const list = readdirSync(dir).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
    if (list.length === 0) throw new Error(`${dir} has no images`);
    files.set(label, list.map((f) => path.join(dir, f)));
  }
  const total = options.timeline[options.timeline.length - 1]!.endMs;
  const count = Math.floor((total * fps) / 1000);
  const decoded = new Map<string, { data: Buffer; width: number; height: number }>();
  const frames: Frame[] = [];
  for (let i = 0; i < count; i++) {
    const offset = (i * 1000) / fps;
    const label = labelAt(options.timeline, offset)!;
    const list = files.get(label)!;
    const file = list[Math.floor(random() * list.length)]!;
    let image = decoded.get(file);
    if (!image) {
      const { data, info } = await sharp(file).greyscale().raw().toBuffer({ resolveWithObject: true });
      image = { data, width: info.width, height: info.height };
      decoded.set(file, image);
    }
    frames.push({ userId, sessionId, seq: i + 1, captureTimeMs: startTimeMs + Math.round(offset), encoding: 'GRAY8', width: image.width, height: image.height, data: image.data, faceBox: null, probabilities: [], edgeModelVersion: '' });
  }
  return { frames, meta: { kind: 'labelled-session', timeline: options.timeline, fps, seed, images: options.images, userId, sessionId, startTimeMs, frames: frames.length } };
}

export async function writeLabelledSession(out: string, registry: SchemaRegistry, options: SynthOptions): Promise<LabelledSessionMeta> {
  const { frames, meta } = await synthesizeSession(options);
  await writeRecording(out, registry, frames, meta as unknown as Record<string, unknown>);
  return meta;
}
