import { opt } from '../runtime/config.ts';
import { EMOTIONS, type EmotionLabel } from '../schemas/kinds.ts';

/** Frames per second of a synthesized session, a video or a camera: one option for every command. */
export const fpsOption = opt.number('EM_FPS', 'fps', 10, 'Frames per second (of a synthesized session, a video, a camera)', { min: 0.1, max: 120 });

export interface Segment {
  readonly label: EmotionLabel;
  /** Offsets from the start of the session. */
  readonly startMs: number;
  readonly endMs: number;
}

/** Parses "neutral:8s,happy:6s,sad:1500ms" into consecutive segments. */
export function parseTimeline(text: string): Segment[] {
  const segments: Segment[] = [];
  let at = 0;
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z]+):(\d+(?:\.\d+)?)(ms|s)$/.exec(part);
    if (!m) throw new Error(`timeline segment "${part}" is not <emotion>:<duration>s (or ms)`);
    const label = m[1] as EmotionLabel;
    if (!(EMOTIONS as readonly string[]).includes(label)) throw new Error(`"${label}" is not one of ${EMOTIONS.join(', ')}`);
    const ms = Number(m[2]) * (m[3] === 's' ? 1000 : 1);
    if (ms <= 0) throw new Error(`segment "${part}" has no duration`);
    segments.push({ label, startMs: at, endMs: at + ms });
    at += ms;
  }
  if (segments.length === 0) throw new Error('the timeline is empty');
  return segments;
}

export function labelAt(timeline: readonly Segment[], offsetMs: number): EmotionLabel | undefined {
  return timeline.find((s) => offsetMs >= s.startMs && offsetMs < s.endMs)?.label;
}

/** A small seeded PRNG (mulberry32), so that the same seed gives the same session. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
