import type { Message } from 'kafkajs';
import { ClassifierEngine } from '../../processors/classifier/engine.ts';
import { DEFAULT_SMOOTHER_CONFIG, smooth, type SmootherState } from '../../processors/smoother/core.ts';
import type { EmotionChange, EmotionScore } from '../../schemas/generated/types.ts';
import { synthesizeSession } from '../../sessions/synth.ts';
import { parseTimeline } from '../../sessions/timeline.ts';
import { FER_PUBLIC_TEST } from '../../sessions/faces.ts';
import { registry } from './frames.ts';

const TIMELINES = [
  'neutral:8s,happy:10s,sad:12s,neutral:8s,surprise:10s,happy:7s',
  'happy:9s,neutral:10s,angry:12s,sad:9s,neutral:15s',
  'sad:12s,happy:12s,surprise:8s,neutral:12s,fear:11s',
];

/**
 * Real classifier scores of synthesized labelled sessions: `users` users of 55 s at 10 fps from
 * the FER-2013 PublicTest images, through the real converted model, interleaved by capture time.
 */
export async function recordedScores(users: number): Promise<EmotionScore[]> {
  const engine = await ClassifierEngine.create({ providers: ['cpu'] });
  const all: EmotionScore[] = [];
  for (let u = 0; u < users; u++) {
    const { frames } = await synthesizeSession({ images: FER_PUBLIC_TEST, timeline: parseTimeline(TIMELINES[u % TIMELINES.length]!), fps: 10, seed: 100 + u, userId: `user-${u}`, sessionId: `session-${u}` });
    for (let i = 0; i < frames.length; i += 64) {
      const batch = frames.slice(i, i + 64);
      const results = await engine.classify(batch);
      results.forEach((r, k) => {
        if (r instanceof Error) throw r;
        const f = batch[k]!;
        all.push({ userId: f.userId, sessionId: f.sessionId, seq: f.seq, captureTimeMs: f.captureTimeMs, faceFound: r.faceFound, probabilities: r.probabilities, faceBox: r.faceBox, modelVersion: engine.modelVersion, scoredAt: 'SERVER', timings: r.timings, processedTimeMs: f.captureTimeMs });
      });
    }
  }
  return all.sort((a, b) => a.captureTimeMs - b.captureTimeMs || a.userId.localeCompare(b.userId));
}

export function scoreMessages(scores: readonly EmotionScore[]): Message[] {
  return scores.map((s) => ({ key: s.userId, value: registry.encode('emotion-score', s) }));
}

/** What an uninterrupted smoother emits for these scores: the pure core, run in order per user. */
export function expectedChanges(scores: readonly EmotionScore[]): Map<string, EmotionChange[]> {
  const states = new Map<string, SmootherState>();
  const out = new Map<string, EmotionChange[]>();
  for (const s of scores) {
    const r = smooth(states.get(s.userId), s, DEFAULT_SMOOTHER_CONFIG, 0);
    states.set(s.userId, r.state);
    if (r.outcome.kind === 'accepted' && r.outcome.change) out.set(s.userId, [...(out.get(s.userId) ?? []), r.outcome.change]);
  }
  return out;
}

/** Change events per user, without the emission time (the one field that depends on when it ran). */
export function changesByUser(values: ReadonlyArray<Buffer | null>): Map<string, Array<Omit<EmotionChange, 'emittedTimeMs'>>> {
  const out = new Map<string, Array<Omit<EmotionChange, 'emittedTimeMs'>>>();
  for (const v of values) {
    const { emittedTimeMs: _t, ...change } = registry.decode('emotion-change', v!);
    out.set(change.userId, [...(out.get(change.userId) ?? []), change]);
  }
  return out;
}

/** The expected changes as a reader sees them: through the Avro encoding (floats are float32 there), without the emission time. */
export function withoutEmissionTime(map: Map<string, EmotionChange[]>): Map<string, Array<Omit<EmotionChange, 'emittedTimeMs'>>> {
  return changesByUser([...map.values()].flat().map((c) => registry.encode('emotion-change', c)));
}
