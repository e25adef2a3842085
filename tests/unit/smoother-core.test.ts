import { describe, expect, it } from 'vitest';
import { DEFAULT_SMOOTHER_CONFIG, LEFT_SESSIONS_KEPT, smooth, smootherStateVersion, TABLE_II, valenceArousal, type SmootherConfig, type SmootherState } from '../../processors/smoother/core.ts';
import { EMOTIONS, type EmotionLabel } from '../../schemas/kinds.ts';
import { buildTopology } from '../../topology/topology.ts';
import { STATE_VERSIONS } from '../../processors/index.ts';
import type { EmotionChange, EmotionScore } from '../../schemas/generated/types.ts';

/** The paper's scheme (the default is the filter: smoother-filter.test.ts). */
const PAPER: SmootherConfig = { ...DEFAULT_SMOOTHER_CONFIG, scheme: 'paper' };
const T = PAPER.windowSize;
const H = PAPER.hysteresis;

function onehot(label: EmotionLabel, confidence = 0.7): number[] {
  return EMOTIONS.map((e) => (e === label ? confidence : (1 - confidence) / 6));
}

/** Replays a script of windows ("happy" = a whole window of frames whose mean argmax is happy). */
function run(script: Array<EmotionLabel | { gapMs?: number; session?: string; noFace?: number; late?: boolean; from?: { session: string; seq: number } }>, config: SmootherConfig = PAPER) {
  let state: SmootherState | undefined;
  let seq = 0;
  let t = 0;
  let session = 's1';
  const changes: EmotionChange[] = [];
  const dropped: string[] = [];
  const feed = (score: EmotionScore) => {
    const r = smooth(state, score, config, 0);
    state = r.state;
    if (r.outcome.kind === 'dropped') dropped.push(r.outcome.reason);
    else if (r.outcome.change) changes.push(r.outcome.change);
  };
  const frame = (probabilities: number[], faceFound = true): EmotionScore => ({
    userId: 'u', sessionId: session, seq: ++seq, captureTimeMs: (t += 100), faceFound, probabilities: faceFound ? probabilities : [],
    faceBox: null, modelVersion: 'm', scoredAt: 'SERVER', timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 }, processedTimeMs: 0,
  });
  for (const step of script) {
    if (typeof step === 'string') {
      for (let i = 0; i < T; i++) feed(frame(onehot(step)));
    } else {
      if (step.gapMs) t += step.gapMs;
      if (step.session) {
        session = step.session;
        seq = 0;
      }
      for (let i = 0; i < (step.noFace ?? 0); i++) feed(frame([], false));
      if (step.late) feed({ ...frame(onehot('angry')), seq: seq - 5 });
      if (step.from) feed({ ...frame(onehot('angry')), sessionId: step.from.session, seq: step.from.seq });
    }
  }
  return { changes: changes.map((c) => `${c.previousLabel ?? '-'}>${c.label}`), dropped, state: state!, raw: changes };
}

const rep = (label: EmotionLabel, n: number): EmotionLabel[] => Array.from({ length: n }, () => label);

describe('smoother core: windows and hysteresis', () => {
  it.each([
    { name: 'the first full window sets the initial label', script: ['neutral'], changes: ['->neutral'] },
    { name: 'a partial first window emits nothing', script: [], changes: [] },
    { name: 'H-1 differing windows are not enough', script: ['neutral', ...rep('happy', H - 1)], changes: ['->neutral'] },
    { name: 'exactly H consecutive windows of the same candidate change the label', script: ['neutral', ...rep('happy', H)], changes: ['->neutral', 'neutral>happy'] },
    { name: 'an interrupting window of the current label resets the count', script: ['neutral', ...rep('happy', H - 1), 'neutral', ...rep('happy', H - 1)], changes: ['->neutral'] },
    { name: 'a different candidate restarts the count', script: ['neutral', ...rep('happy', H - 1), ...rep('sad', H - 1)], changes: ['->neutral'] },
    { name: 'a different candidate can win after its own H windows', script: ['neutral', ...rep('happy', 2), ...rep('sad', H)], changes: ['->neutral', 'neutral>sad'] },
    { name: 'changes chain', script: ['neutral', ...rep('happy', H), ...rep('sad', H)], changes: ['->neutral', 'neutral>happy', 'happy>sad'] },
  ] as const)('$name', ({ script, changes }) => {
    expect(run([...script]).changes).toEqual(changes);
  });

  it('averages the window: the argmax of the mean, not of the last frame, decides', () => {
    let state: SmootherState | undefined;
    const out: string[] = [];
    for (let i = 1; i <= T; i++) {
      // 9 frames lean happy, the last frame is strongly sad: the mean is still happy.
      const p = i < T ? onehot('happy', 0.6) : onehot('sad', 0.99);
      const r = smooth(state, { userId: 'u', sessionId: 's', seq: i, captureTimeMs: i * 100, faceFound: true, probabilities: p, faceBox: null, modelVersion: '', scoredAt: 'SERVER', timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 }, processedTimeMs: 0 }, PAPER, 0);
      state = r.state;
      if (r.outcome.kind === 'accepted' && r.outcome.change) out.push(r.outcome.change.label);
    }
    expect(out).toEqual(['happy']);
  });

  it('describes the change: smoothed probabilities, Table II valence and arousal, window position, capture time', () => {
    const { raw } = run(['neutral', ...rep('happy', H)]);
    const change = raw[1]!;
    expect(change.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    const expected = valenceArousal(onehot('happy'));
    expect(change.valence).toBeCloseTo(expected.valence, 9);
    expect(change.arousal).toBeCloseTo(expected.arousal, 9);
    expect(change.valence).toBeCloseTo(0.7 * TABLE_II.happy.valence + (0.3 / 6) * (0.18 + 0.15 + 0.22 + 0.2 + 0.55 + 0.5), 9);
    expect(change).toMatchObject({ windowIndex: H, windowEndSeq: (H + 1) * T, captureTimeMs: (H + 1) * T * 100, previousLabel: 'neutral', label: 'happy' });
  });
});

describe('smoother core: sessions, gaps, late frames, frames without a face', () => {
  it('a gap longer than the session gap starts over (the next window is a new initial label, its change from the mood before the gap)', () => {
    expect(run(['neutral', ...rep('happy', H - 1), { gapMs: 6000 }, 'happy']).changes).toEqual(['->neutral', 'neutral>happy']);
  });

  it('a session that resumes after a gap in the mood it left emits no change (it emitted one from nothing before), and follows the next change as usual', () => {
    expect(run(['neutral', ...rep('happy', H), { gapMs: 6000 }, 'happy', 'happy']).changes).toEqual(['->neutral', 'neutral>happy']);
    expect(run(['neutral', ...rep('happy', H), { gapMs: 6000 }, 'happy', { gapMs: 6000 }, 'happy', ...rep('sad', H)]).changes).toEqual(['->neutral', 'neutral>happy', 'happy>sad']);
    const filter = { ...DEFAULT_SMOOTHER_CONFIG };
    const before = run([...rep('happy', 3)], filter).changes;
    expect(before).toEqual(['->happy']);
    expect(run([...rep('happy', 3), { gapMs: 60_000 }, ...rep('happy', 3)], filter).changes).toEqual(['->happy']);
    expect(run([...rep('happy', 3), { gapMs: 60_000 }, ...rep('sad', 3)], filter).changes).toEqual(['->happy', 'happy>sad']);
  });

  it('a gap shorter than the session gap keeps the state', () => {
    expect(run(['neutral', ...rep('happy', H - 1), { gapMs: 2000 }, 'happy']).changes).toEqual(['->neutral', 'neutral>happy']);
  });

  it('a new session id resets the state', () => {
    const r = run(['neutral', ...rep('happy', H - 1), { session: 's2' }, 'happy']);
    expect(r.changes).toEqual(['->neutral', '->happy']);
    expect(r.state.sessionId).toBe('s2');
  });

  it('drops a score from a session the user has left (a repeat after an upstream restart), without starting it over', () => {
    const r = run(['neutral', { session: 's2' }, 'happy', { from: { session: 's1', seq: 3 } }, { from: { session: 's1', seq: 99 } }, ...rep('sad', H)]);
    expect(r.dropped).toEqual(['late-or-duplicate', 'late-or-duplicate']);
    expect(r.changes).toEqual(['->neutral', '->happy', 'happy>sad']);
    expect(r.state.sessionId).toBe('s2');
    expect(r.state.leftSessions).toEqual(['s1']);
  });

  it('remembers only the newest sessions it left', () => {
    const sessions = Array.from({ length: LEFT_SESSIONS_KEPT + 3 }, (_, i) => ({ session: `s${i + 2}` }));
    const r = run(['neutral', ...sessions.flatMap((s) => [s, 'happy' as const])]);
    expect(r.state.leftSessions).toHaveLength(LEFT_SESSIONS_KEPT);
    expect(r.state.leftSessions[0]).toBe(`s${LEFT_SESSIONS_KEPT + 3}`);
  });

  it('drops and counts a late or duplicate frame, without touching the window', () => {
    const r = run(['neutral', { late: true }, { late: true }, ...rep('happy', H)]);
    expect(r.dropped).toEqual(['late-or-duplicate', 'late-or-duplicate']);
    expect(r.changes).toEqual(['->neutral', 'neutral>happy']);
  });

  it('skips frames without a face by default, and can discard the partial window instead', () => {
    const script = [{ noFace: 3 }, 'neutral'] as const;
    expect(run([...script]).changes).toEqual(['->neutral']);
    // 5 happy frames, then no face, then a full neutral window: break-window forgets the happy half.
    let state: SmootherState | undefined;
    const config = { ...PAPER, noFace: 'break-window' as const };
    const labels: string[] = [];
    const feed = (seq: number, p: number[] | null) => {
      const r = smooth(state, { userId: 'u', sessionId: 's', seq, captureTimeMs: seq * 100, faceFound: p !== null, probabilities: p ?? [], faceBox: null, modelVersion: '', scoredAt: 'SERVER', timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 }, processedTimeMs: 0 }, config, 0);
      state = r.state;
      if (r.outcome.kind === 'accepted' && r.outcome.change) labels.push(r.outcome.change.label);
    };
    let seq = 0;
    for (let i = 0; i < 5; i++) feed(++seq, onehot('happy', 0.99));
    feed(++seq, null);
    expect(state!.windowCount).toBe(0);
    for (let i = 0; i < T; i++) feed(++seq, onehot('neutral', 0.4));
    expect(labels).toEqual(['neutral']);
  });

  it('derives the state version from its parameters', () => {
    expect(smootherStateVersion(PAPER)).toBe('v2-t10-h5-g5000-skip');
    expect(smootherStateVersion({ ...PAPER, hysteresis: 3 })).not.toBe(smootherStateVersion(PAPER));
    // `topics apply` creates the changelog of the default parameters: the wiring derives its version once.
    expect(STATE_VERSIONS.smoother).toBe(smootherStateVersion(DEFAULT_SMOOTHER_CONFIG));
    expect(buildTopology({ stateVersions: STATE_VERSIONS }).processors.find((p) => p.name === 'smoother')?.stateVersion).toBe(smootherStateVersion(DEFAULT_SMOOTHER_CONFIG));
  });
});
