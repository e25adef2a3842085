import { EMOTIONS, type EmotionLabel } from '../../schemas/kinds.ts';
import { TABLE_II, valenceArousal } from '../../schemas/emotions.ts';

export { TABLE_II, valenceArousal };
import type { EmotionChange, EmotionScore } from '../../schemas/generated/types.ts';
import type { ProcessorCore } from '../../runtime/processor.ts';
import type { ResetReason, SkipReason } from '../../runtime/metrics.ts';


/**
 * `paper`: the paper's mean over T frames per non-overlapping window and a change after H
 * windows agree. `filter`: a forward filter (an HMM with sticky transitions) over the seven
 * classes, one update per face, time-based, that emits a change when a new label's posterior
 * passes a threshold.
 */
export const SMOOTHER_SCHEMES = ['paper', 'filter'] as const;
export type SmootherScheme = (typeof SMOOTHER_SCHEMES)[number];

export interface SmootherConfig {
  /** @defaultValue 'filter' */
  readonly scheme: SmootherScheme;
  /** Frames per non-overlapping window (the paper's T). @defaultValue 10 */
  readonly windowSize: number;
  /**
   * paper: windows by time instead of by count when above 0: a window is closed by the first face
   * at least this long after the window's first face, so that a camera that drops frames does not
   * stretch the windows. @defaultValue 0 (T frames)
   */
  readonly windowMs: number;
  /** Consecutive windows whose argmax must be the same new label before it changes (the paper's H). @defaultValue 5 */
  readonly hysteresis: number;
  /** A gap in capture time longer than this starts the user's state over. @defaultValue 5000 */
  readonly sessionGapMs: number;
  /**
   * Frames without a face: `skip` leaves the window as it is (the next faces fill it);
   * `break-window` discards the partial window (the hysteresis count stays).
   * @defaultValue 'skip'
   */
  readonly noFace: 'skip' | 'break-window';
  /**
   * filter: how often the true label changes, per second, in the filter's prior. Between two faces
   * `dt` apart the label stays with probability exp(-switchRate * dt), so dropped frames do not
   * stretch anything. @defaultValue 0.05
   */
  readonly switchRate: number;
  /** filter: the posterior a new label needs before it is emitted. @defaultValue 0.98 */
  readonly threshold: number;
  /**
   * filter: how often the classifier's top class is the true one (its PublicTest accuracy, in
   * its model card); the emission model is a symmetric confusion with this diagonal.
   * @defaultValue 0.67
   */
  readonly accuracy: number;
}

/** The filter by default: on 50 synthesized sessions it follows a change in under a second where the paper's T=10, H=5 takes five (README.md). */
export const DEFAULT_SMOOTHER_CONFIG: SmootherConfig = { scheme: 'filter', windowSize: 10, windowMs: 0, hysteresis: 5, sessionGapMs: 5000, noFace: 'skip', switchRate: 0.05, threshold: 0.98, accuracy: 0.67 };

/** Sessions a user has left that the state remembers, newest first. */
export const LEFT_SESSIONS_KEPT = 8;

/** Per-user state; plain JSON, kept in the changelog. */
export interface SmootherState {
  readonly sessionId: string;
  /**
   * Sessions this user has left, newest first (at most LEFT_SESSIONS_KEPT): a score from one of
   * them is late or a duplicate (an at-least-once upstream repeating records after a restart),
   * not a new session.
   */
  readonly leftSessions: readonly string[];
  readonly lastSeq: number;
  readonly lastCaptureMs: number;
  /** Sum and count of the probability vectors of the window being filled. */
  readonly windowSum: readonly number[];
  readonly windowCount: number;
  /** paper with windowMs: capture time of the window's first face. */
  readonly windowStartMs?: number;
  /** Windows completed in this session. */
  readonly windows: number;
  readonly label: EmotionLabel | null;
  readonly candidate: EmotionLabel | null;
  readonly streak: number;
  /** filter: the posterior over the seven classes after the last face (null before the first). */
  readonly belief?: readonly number[] | null;
  /** filter: capture time of the last face. */
  readonly lastFaceMs?: number;
  /**
   * After a gap in the same session: the label in force before it (the mood last published).
   * The first label after the gap is emitted only when it is another one.
   */
  readonly resumed?: EmotionLabel | null;
}

export type StepOutcome =
  | { readonly kind: 'accepted'; readonly change?: EmotionChange; readonly reset?: 'new-session' | 'gap' }
  | { readonly kind: 'dropped'; readonly reason: 'late-or-duplicate' };

function fresh(score: EmotionScore, leftSessions: readonly string[], resumed: EmotionLabel | null = null): SmootherState {
  return { sessionId: score.sessionId, leftSessions, lastSeq: -Infinity, lastCaptureMs: score.captureTimeMs, windowSum: new Array(7).fill(0), windowCount: 0, windows: 0, label: null, candidate: null, streak: 0, ...(resumed ? { resumed } : {}) };
}

export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}


/**
 * One frame's score through the smoother: the pure algorithm, shared by the processor and the
 * evaluation tool. Returns the user's next state and what happened.
 */
export function smooth(state: SmootherState | undefined, score: EmotionScore, config: SmootherConfig = DEFAULT_SMOOTHER_CONFIG, now = Date.now()): { state: SmootherState; outcome: StepOutcome } {
  let s = state;
  let reset: 'new-session' | 'gap' | undefined;
  if (s && s.sessionId !== score.sessionId) reset = 'new-session';
  else if (s && score.seq > s.lastSeq && score.captureTimeMs - s.lastCaptureMs > config.sessionGapMs) reset = 'gap';
  const late = reset === 'new-session' ? s!.leftSessions.includes(score.sessionId) : !reset && s !== undefined && score.seq <= s.lastSeq;
  if (late) return { state: s!, outcome: { kind: 'dropped', reason: 'late-or-duplicate' } };
  if (!s) s = fresh(score, []);
  else if (reset === 'new-session') s = fresh(score, [s.sessionId, ...s.leftSessions].slice(0, LEFT_SESSIONS_KEPT));
  // A gap starts the smoothing over, but the session's mood in force stays known: the same mood after it is no change.
  else if (reset === 'gap') s = fresh(score, s.leftSessions, s.label ?? s.resumed ?? null);
  s = { ...s, lastSeq: score.seq, lastCaptureMs: score.captureTimeMs };

  if (!score.faceFound || score.probabilities.length !== 7) {
    if (config.noFace === 'break-window' && s.windowCount > 0) s = { ...s, windowSum: new Array(7).fill(0), windowCount: 0 };
    return { state: s, outcome: { kind: 'accepted', reset } };
  }

  if (config.scheme === 'filter') {
    const { state: next, change } = filterStep(s, score, config, now);
    return { state: next, outcome: { kind: 'accepted', reset, change } };
  }

  const windowSum = s.windowSum.map((v, i) => v + score.probabilities[i]!);
  const windowCount = s.windowCount + 1;
  const windowStartMs = s.windowCount === 0 ? score.captureTimeMs : (s.windowStartMs ?? score.captureTimeMs);
  const full = config.windowMs > 0 ? score.captureTimeMs - windowStartMs >= config.windowMs : windowCount >= config.windowSize;
  if (!full) return { state: { ...s, windowSum, windowCount, ...(config.windowMs > 0 ? { windowStartMs } : {}) }, outcome: { kind: 'accepted', reset } };

  const mean = windowSum.map((v) => v / windowCount);
  const top = EMOTIONS[argmax(mean)]!;
  const windows = s.windows + 1;
  const closed = { ...s, windowSum: new Array<number>(7).fill(0), windowCount: 0, windows };
  const change = (previous: EmotionLabel | null, label: EmotionLabel): EmotionChange => ({
    userId: score.userId,
    sessionId: score.sessionId,
    previousLabel: previous,
    label,
    probabilities: mean,
    ...valenceArousal(mean),
    windowIndex: windows - 1,
    windowEndSeq: score.seq,
    captureTimeMs: score.captureTimeMs,
    emittedTimeMs: now,
    scheme: 'paper',
    confidence: null,
  });

  if (s.label === null) {
    const state = { ...closed, label: top, candidate: null, streak: 0 };
    if (top === s.resumed) return { state, outcome: { kind: 'accepted', reset } };
    return { state, outcome: { kind: 'accepted', reset, change: change(s.resumed ?? null, top) } };
  }
  if (top === s.label) return { state: { ...closed, candidate: null, streak: 0 }, outcome: { kind: 'accepted', reset } };
  const streak = top === s.candidate ? s.streak + 1 : 1;
  if (streak >= config.hysteresis) {
    return { state: { ...closed, label: top, candidate: null, streak: 0 }, outcome: { kind: 'accepted', reset, change: change(s.label, top) } };
  }
  return { state: { ...closed, candidate: top, streak }, outcome: { kind: 'accepted', reset } };
}

/**
 * The filter's step for one face: predict (the label stays with probability exp(-rate dt), else
 * moves to any other class alike), weigh by the emission model, renormalise; a label is emitted
 * when its posterior reaches the threshold and it is not the label in force.
 */
function filterStep(s: SmootherState, score: EmotionScore, config: SmootherConfig, now: number): { state: SmootherState; change?: EmotionChange } {
  const k = EMOTIONS.length;
  const p = score.probabilities;
  let prior: number[];
  if (s.belief) {
    const dt = Math.max(0, score.captureTimeMs - (s.lastFaceMs ?? score.captureTimeMs)) / 1000;
    const move = 1 - Math.exp(-config.switchRate * dt);
    prior = s.belief.map((b) => (1 - move) * b + (move * (1 - b)) / (k - 1));
  } else {
    prior = new Array<number>(k).fill(1 / k);
  }
  // P(the classifier says p | true class c): its top class is right with `accuracy`, else any
  // other alike; a soft output weighs each class by its probability.
  const miss = (1 - config.accuracy) / (k - 1);
  const weighted = prior.map((b, c) => b * (config.accuracy * p[c]! + miss * (1 - p[c]!)));
  const total = weighted.reduce((a, b) => a + b, 0) || 1;
  const belief = weighted.map((w) => w / total);
  const top = argmax(belief);
  const label = EMOTIONS[top]!;
  const windows = s.windows + 1;
  const next: SmootherState = { ...s, belief, lastFaceMs: score.captureTimeMs, windows };
  if (label === s.label || belief[top]! < config.threshold) return { state: next };
  // The mood in force before a gap, reached again: no change.
  if (s.label === null && label === s.resumed) return { state: { ...next, label } };
  const change: EmotionChange = {
    userId: score.userId,
    sessionId: score.sessionId,
    previousLabel: s.label ?? s.resumed ?? null,
    label,
    // the posterior: what the filter believes, for the recommender
    probabilities: belief,
    ...valenceArousal(belief),
    windowIndex: windows - 1,
    windowEndSeq: score.seq,
    captureTimeMs: score.captureTimeMs,
    emittedTimeMs: now,
    scheme: 'filter',
    confidence: belief[top]!,
  };
  return { state: { ...next, label }, change };
}

/** The state's version is derived from the parameters, so a changed scheme, T, H, gap or policy never reads old state. */
export function smootherStateVersion(config: SmootherConfig): string {
  if (config.scheme === 'filter') return `v1-filter-r${config.switchRate}-th${config.threshold}-a${config.accuracy}-g${config.sessionGapMs}`;
  const window = config.windowMs > 0 ? `w${config.windowMs}ms` : `t${config.windowSize}`;
  return `v2-${window}-h${config.hysteresis}-g${config.sessionGapMs}-${config.noFace}`;
}

/** emotion-scores -> emotion-changes, per user, with the state in the runtime's changelog. */
export function createSmootherCore(config: SmootherConfig = DEFAULT_SMOOTHER_CONFIG, hooks: { onDrop?: (reason: SkipReason) => void; onReset?: (why: ResetReason) => void; onStep?: (ms: number) => void; onChange?: (change: EmotionChange) => void } = {}): ProcessorCore<SmootherState> {
  return {
    name: 'smoother',
    stateVersion: smootherStateVersion(config),
    process(state, record) {
      const t0 = performance.now();
      const { state: next, outcome } = smooth(state, record.value as EmotionScore, config);
      hooks.onStep?.(performance.now() - t0);
      if (outcome.kind === 'dropped') {
        hooks.onDrop?.(outcome.reason);
        return { state, outputs: [] };
      }
      if (outcome.reset) hooks.onReset?.(outcome.reset);
      if (outcome.change) hooks.onChange?.(outcome.change);
      return { state: next, outputs: outcome.change ? [{ to: 'emotion-changes', key: record.key, value: outcome.change }] : [] };
    },
  };
}
