import { describe, expect, it } from 'vitest';
import { DEFAULT_SMOOTHER_CONFIG, smooth, smootherStateVersion, type SmootherConfig, type SmootherState } from '../../processors/smoother/core.ts';
import { fitTemperature, meetsTargets, randomTimeline, sessionScores, summarizeScheme, withTemperature, type SchemeSummary } from '../../processors/smoother/evaluate.ts';
import { EMOTIONS, type EmotionLabel } from '../../schemas/kinds.ts';
import { seededRandom } from '../../sessions/timeline.ts';
import type { EmotionChange, EmotionScore } from '../../schemas/generated/types.ts';

const FILTER: SmootherConfig = { ...DEFAULT_SMOOTHER_CONFIG, scheme: 'filter', switchRate: 0.1, threshold: 0.8, accuracy: 0.64 };

function probs(label: EmotionLabel, confidence: number): number[] {
  return EMOTIONS.map((e) => (e === label ? confidence : (1 - confidence) / 6));
}

/** Feeds frames (a label and a confidence each, or null for no face) `everyMs` apart; returns the changes and at which frame they came. */
function feed(frames: Array<[EmotionLabel, number] | null>, config: SmootherConfig = FILTER, everyMs = 100) {
  let state: SmootherState | undefined;
  const changes: Array<EmotionChange & { frame: number }> = [];
  frames.forEach((f, i) => {
    const score: EmotionScore = {
      userId: 'u', sessionId: 's', seq: i + 1, captureTimeMs: 1_000_000 + i * everyMs, faceFound: f !== null, probabilities: f ? probs(f[0], f[1]) : [],
      faceBox: null, modelVersion: 'm', scoredAt: 'SERVER', timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 }, processedTimeMs: 0,
    };
    const r = smooth(state, score, config, 0);
    state = r.state;
    if (r.outcome.kind === 'accepted' && r.outcome.change) changes.push({ ...r.outcome.change, frame: i });
  });
  return { changes, state: state! };
}

const run = (label: EmotionLabel, n: number, confidence = 0.9): Array<[EmotionLabel, number]> => Array.from({ length: n }, () => [label, confidence]);

describe('smoother: the forward filter scheme', () => {
  // Each row: frames in, the changes expected out (label and the frame it comes at, or a bound).
  const cases: Array<{ name: string; frames: Array<[EmotionLabel, number] | null>; expect: Array<{ label: EmotionLabel; from: EmotionLabel | null; atMost: number; atLeast?: number }> }> = [
    { name: 'confident faces give a first label within a few frames', frames: run('happy', 10), expect: [{ label: 'happy', from: null, atMost: 3 }] },
    { name: 'a lasting change follows within half a second at 10 fps', frames: [...run('happy', 30), ...run('sad', 20)], expect: [{ label: 'happy', from: null, atMost: 3 }, { label: 'sad', from: 'happy', atLeast: 31, atMost: 35 }] },
    { name: 'one or two stray frames change nothing', frames: [...run('happy', 30), ...run('angry', 2), ...run('happy', 20)], expect: [{ label: 'happy', from: null, atMost: 3 }] },
    { name: 'weak evidence (a third of the mass) takes longer than strong', frames: [...run('neutral', 30), ...run('fear', 40, 0.34)], expect: [{ label: 'neutral', from: null, atMost: 3 }, { label: 'fear', from: 'neutral', atLeast: 36, atMost: 60 }] },
    { name: 'frames without a face are skipped, not counted against the label', frames: [...run('happy', 20), null, null, null, ...run('happy', 10)], expect: [{ label: 'happy', from: null, atMost: 3 }] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { changes } = feed(c.frames);
      expect(changes.map((x) => [x.previousLabel, x.label])).toEqual(c.expect.map((e) => [e.from, e.label]));
      c.expect.forEach((e, i) => {
        expect(changes[i]!.frame, `${e.label}`).toBeLessThanOrEqual(e.atMost);
        expect(changes[i]!.frame, `${e.label}`).toBeGreaterThanOrEqual(e.atLeast ?? 0);
      });
    });
  }

  it('is time-based: a camera at 5 fps changes in about the same time, not twice the frames stretched', () => {
    const at10 = feed([...run('happy', 60), ...run('sad', 30)], FILTER, 100).changes[1]!;
    const at5 = feed([...run('happy', 30), ...run('sad', 15)], FILTER, 200).changes[1]!;
    const delay10 = at10.captureTimeMs - (1_000_000 + 60 * 100);
    const delay5 = at5.captureTimeMs - (1_000_000 + 30 * 200);
    expect(delay5).toBeLessThanOrEqual(delay10 * 2);
    expect(delay5).toBeLessThan(1500);
  });

  it('carries its posterior in the change: probabilities sum to one and peak at the label, valence and arousal from them', () => {
    const { changes } = feed([...run('happy', 30), ...run('sad', 20)]);
    const change = changes[1]!;
    expect(change.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    expect(change.probabilities[EMOTIONS.indexOf('sad')]).toBeGreaterThanOrEqual(FILTER.threshold);
    expect(change.valence).toBeLessThan(0.4);
  });

  it('has a state version of its own, from its parameters; the paper\'s stays what it was', () => {
    expect(smootherStateVersion(FILTER)).toBe('v1-filter-r0.1-th0.8-a0.64-g5000');
    expect(smootherStateVersion({ ...FILTER, threshold: 0.9 })).not.toBe(smootherStateVersion(FILTER));
    expect(smootherStateVersion({ ...DEFAULT_SMOOTHER_CONFIG, scheme: 'paper' })).toBe('v2-t10-h5-g5000-skip');
  });
});

describe('smoother: the paper\'s scheme with time-based windows (--window-ms)', () => {
  const PAPER_MS: SmootherConfig = { ...DEFAULT_SMOOTHER_CONFIG, scheme: 'paper', windowMs: 1000, hysteresis: 3 };
  // Each row: the frame interval, and when (capture time after the switch) the change may come.
  const rows = [
    { everyMs: 100, fps: 10 },
    { everyMs: 200, fps: 5 },
    { everyMs: 50, fps: 20 },
  ];
  for (const r of rows) {
    it(`changes about H windows of 1 s after the switch at ${r.fps} fps, as at any other rate`, () => {
      const before = 10_000 / r.everyMs;
      const { changes } = feed([...run('happy', before), ...run('sad', 10_000 / r.everyMs)], PAPER_MS, r.everyMs);
      expect(changes.map((c) => c.label)).toEqual(['happy', 'sad']);
      const delay = changes[1]!.captureTimeMs - (1_000_000 + before * r.everyMs);
      expect(delay).toBeGreaterThanOrEqual(2000);
      expect(delay).toBeLessThanOrEqual(4200);
    });
  }

  it('counts frames, not time, without it: at 5 fps the same T=10 takes twice as long', () => {
    const counted: SmootherConfig = { ...PAPER_MS, windowMs: 0, windowSize: 10 };
    const at5 = feed([...run('happy', 50), ...run('sad', 50)], counted, 200).changes[1]!;
    expect(at5.captureTimeMs - (1_000_000 + 50 * 200)).toBeGreaterThanOrEqual(5000);
    expect(smootherStateVersion(PAPER_MS)).toBe('v2-w1000ms-h3-g5000-skip');
  });
});

describe('smoother evaluation over many sessions', () => {
  // A made-up classifier: the true class with 0.6 of the mass 64% of the time, a random other class otherwise.
  const random = seededRandom(5);
  const pool = new Map(EMOTIONS.map((label) => [label, Array.from({ length: 40 }, () => {
    const top = random() < 0.64 ? label : EMOTIONS[Math.floor(random() * 7)]!;
    return probs(top, 0.6);
  })]));
  const sessions = Array.from({ length: 12 }, (_, i) => {
    const timeline = randomTimeline(random);
    const startTimeMs = i * 3_600_000;
    return { timeline, startTimeMs, scores: sessionScores(pool, timeline, random, { userId: 'u', sessionId: `s${i}`, startTimeMs }) };
  });

  it('fits a temperature above 1 to an overconfident classifier (0.6 of the mass, right 64% of the time) and 1 keeps the scores', () => {
    const sharp = new Map([...pool].map(([label, list]) => [label, list.map((p) => withTemperature(p, 0.5))]));
    const fit = fitTemperature(sharp);
    expect(fit.temperature).toBeGreaterThan(1);
    expect(fit.nll).toBeLessThan(fit.nllAt1);
    expect(withTemperature([0.5, 0.25, 0.25], 1).map((x) => x.toFixed(6))).toEqual(['0.500000', '0.250000', '0.250000']);
  });

  it('makes timelines of 2-20 s segments, a minute at least, no emotion twice in a row', () => {
    const t = randomTimeline(seededRandom(1));
    expect(t[t.length - 1]!.endMs).toBeGreaterThanOrEqual(60_000);
    for (const [i, s] of t.entries()) {
      expect(s.endMs - s.startMs).toBeGreaterThanOrEqual(2000);
      expect(s.endMs - s.startMs).toBeLessThanOrEqual(20_000);
      if (i > 0) expect(s.label).not.toBe(t[i - 1]!.label);
    }
  });

  it('drops frames and varies the rate when jittered', () => {
    const timeline = randomTimeline(seededRandom(2));
    const steady = sessionScores(pool, timeline, seededRandom(3), { userId: 'u', sessionId: 's', startTimeMs: 0 });
    const jittered = sessionScores(pool, timeline, seededRandom(3), { userId: 'u', sessionId: 's', startTimeMs: 0, jitter: true });
    const gaps = (s: EmotionScore[]) => new Set(s.slice(1).map((x, i) => x.captureTimeMs - s[i]!.captureTimeMs));
    expect(gaps(steady).size).toBeLessThanOrEqual(2);
    expect(gaps(jittered).size).toBeGreaterThan(2);
    expect(steady.filter((s) => !s.faceFound).length).toBeGreaterThan(0);
  });

  it('measures the trade-off: the paper\'s scheme is steady and slow, the filter quicker with as few spurious changes', () => {
    const paper: SchemeSummary = summarizeScheme('paper', { ...DEFAULT_SMOOTHER_CONFIG, scheme: 'paper' }, sessions);
    const filter: SchemeSummary = summarizeScheme('filter', FILTER, sessions);
    expect(paper.reduction).toBeGreaterThan(0.9);
    expect(paper.delayMedianMs).toBeGreaterThan(4000);
    expect(filter.delayMedianMs).toBeLessThan(1500);
    expect(filter.smoothedAccuracy).toBeGreaterThan(filter.frameAccuracy);
    expect(filter.spuriousPerMinute).toBeLessThan(1);
    expect(meetsTargets(filter)).toBe(true);
    expect(meetsTargets(paper)).toBe(false);
    expect(paper.trueChanges).toBe(filter.trueChanges);
  });
});
