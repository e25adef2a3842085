/**
 * What Avro cannot say about a record: finite numbers, ranges, probability vectors, bounded ids.
 * Every stage checks each input record with {@link checkRecord} after decoding it; a record that
 * fails is dead-lettered as INVALID_RECORD and never reaches a core or its state.
 */
import type { MessageKind } from './kinds.ts';
import type { EmotionChange, EmotionScore, Frame, Listen, MessageTypes } from './generated/types.ts';

/** Ids (users, sessions, tracks, listens): 1 to 128 characters. */
export const MAX_ID_LENGTH = 128;
/** How far seven probabilities may sum from 1 (float32 softmax outputs, rounded on the way). */
export const PROBABILITY_SUM_TOLERANCE = 0.01;

function id(what: string, value: string): string | undefined {
  if (value.length === 0 || value.length > MAX_ID_LENGTH) return `${what} must have 1 to ${MAX_ID_LENGTH} characters (has ${value.length})`;
  return undefined;
}

function finite(what: string, value: number, min = -Infinity, max = Infinity): string | undefined {
  if (!Number.isFinite(value)) return `${what} is ${value}, not a finite number`;
  if (value < min || value > max) return `${what} is ${value}, outside [${min}, ${max}]`;
  return undefined;
}

/** Seven finite probabilities in [0, 1] summing to 1 within the tolerance. */
export function probabilitiesProblem(what: string, p: readonly number[]): string | undefined {
  if (p.length !== 7) return `${what} holds ${p.length} probabilities, not 7`;
  let sum = 0;
  for (const [i, x] of p.entries()) {
    const bad = finite(`${what}[${i}]`, x, 0, 1);
    if (bad) return bad;
    sum += x;
  }
  if (Math.abs(sum - 1) > PROBABILITY_SUM_TOLERANCE) return `${what} sum to ${sum.toFixed(4)}, not 1`;
  return undefined;
}

function box(b: Frame['faceBox']): string | undefined {
  if (!b) return undefined;
  return finite('faceBox.x', b.x) ?? finite('faceBox.y', b.y) ?? finite('faceBox.width', b.width, 0) ?? finite('faceBox.height', b.height, 0);
}

const CHECKS: { readonly [K in MessageKind]?: (v: MessageTypes[K]) => string | undefined } = {
  frame: (f: Frame) => id('userId', f.userId) ?? id('sessionId', f.sessionId) ?? finite('seq', f.seq, 0) ?? finite('captureTimeMs', f.captureTimeMs, 0) ?? box(f.faceBox),
  'emotion-score': (s: EmotionScore) =>
    id('userId', s.userId) ?? id('sessionId', s.sessionId) ?? finite('seq', s.seq, 0) ?? finite('captureTimeMs', s.captureTimeMs, 0) ??
    (s.faceFound ? probabilitiesProblem('probabilities', s.probabilities) : s.probabilities.length > 0 ? 'a score without a face has no probabilities' : undefined) ?? box(s.faceBox),
  'emotion-change': (c: EmotionChange) =>
    id('userId', c.userId) ?? id('sessionId', c.sessionId) ?? probabilitiesProblem('probabilities', c.probabilities) ??
    finite('valence', c.valence, 0, 1) ?? finite('arousal', c.arousal, 0, 1) ?? finite('captureTimeMs', c.captureTimeMs, 0) ?? finite('windowEndSeq', c.windowEndSeq, 0) ??
    (c.confidence === null ? undefined : finite('confidence', c.confidence, 0, 1)),
  listen: (l: Listen) => id('listenId', l.listenId) ?? id('userId', l.userId) ?? id('trackId', l.trackId) ?? finite('listenedMs', l.listenedMs, 0) ?? finite('startTimeMs', l.startTimeMs),
};

/** Why a decoded record of `kind` is not acceptable, or undefined when it is. */
export function checkRecord<K extends MessageKind>(kind: K, value: MessageTypes[K]): string | undefined {
  return (CHECKS[kind] as ((v: MessageTypes[K]) => string | undefined) | undefined)?.(value);
}
