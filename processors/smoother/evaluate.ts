import { EMOTIONS, type EmotionLabel } from '../../schemas/kinds.ts';
import type { EmotionChange, EmotionScore } from '../../schemas/generated/types.ts';
import { labelAt, type Segment } from '../../sessions/timeline.ts';
import { argmax, smooth, type SmootherConfig, type SmootherState } from './core.ts';

export interface FrameTrace {
  readonly offsetMs: number;
  readonly truth: EmotionLabel | undefined;
  /** Frame-level argmax (undefined: no face). */
  readonly frame: EmotionLabel | undefined;
  /** The smoothed label in force after this frame (undefined before the first full window). */
  readonly smoothed: EmotionLabel | undefined;
}

export interface ChangeDelay {
  readonly atMs: number;
  readonly to: EmotionLabel;
  /** Time from the true change to the emitted change of the same label; null when it never came. */
  readonly delayMs: number | null;
}

export interface SmootherEvaluation {
  /** Capture time the timeline's offsets count from. */
  readonly startTimeMs: number;
  readonly frames: number;
  readonly frameTransitions: number;
  readonly smoothedTransitions: number;
  /** 1 - smoothed / frame-level transitions. */
  readonly reduction: number;
  readonly frameAccuracy: number;
  readonly smoothedAccuracy: number;
  readonly delays: readonly ChangeDelay[];
  readonly changes: readonly EmotionChange[];
  readonly trace: readonly FrameTrace[];
}

/** Runs the smoother core over a session's scores and compares it with the ground-truth timeline. */
export function evaluateSmoother(scores: readonly EmotionScore[], timeline: readonly Segment[], startTimeMs: number, config: SmootherConfig): SmootherEvaluation {
  let state: SmootherState | undefined;
  const changes: EmotionChange[] = [];
  const trace: FrameTrace[] = [];
  for (const score of scores) {
    const r = smooth(state, score, config, score.captureTimeMs);
    state = r.state;
    if (r.outcome.kind === 'accepted' && r.outcome.change) changes.push(r.outcome.change);
    const offsetMs = score.captureTimeMs - startTimeMs;
    trace.push({
      offsetMs,
      truth: labelAt(timeline, offsetMs),
      frame: score.faceFound ? EMOTIONS[argmax(score.probabilities)] : undefined,
      smoothed: state.label ?? undefined,
    });
  }
  let frameTransitions = 0;
  let previous: EmotionLabel | undefined;
  for (const t of trace) {
    if (t.frame === undefined) continue;
    if (previous !== undefined && t.frame !== previous) frameTransitions++;
    previous = t.frame;
  }
  const smoothedTransitions = changes.filter((c) => c.previousLabel !== null).length;
  const delays = timeline.map((segment, i) => {
    const end = timeline[i + 1]?.startMs ?? Infinity;
    const hit = changes.find((c) => c.label === segment.label && c.captureTimeMs - startTimeMs >= segment.startMs && c.captureTimeMs - startTimeMs < end);
    // A segment whose label is already in force needs no change.
    const already = i > 0 && timeline[i - 1]!.label === segment.label;
    return { atMs: segment.startMs, to: segment.label, delayMs: already ? 0 : hit ? hit.captureTimeMs - startTimeMs - segment.startMs : null };
  });
  const share = (pick: (t: FrameTrace) => EmotionLabel | undefined) => trace.filter((t) => t.truth !== undefined && pick(t) === t.truth).length / Math.max(1, trace.length);
  return {
    startTimeMs,
    frames: trace.length,
    frameTransitions,
    smoothedTransitions,
    reduction: frameTransitions === 0 ? 0 : 1 - smoothedTransitions / frameTransitions,
    frameAccuracy: share((t) => t.frame),
    smoothedAccuracy: share((t) => t.smoothed),
    delays,
    changes,
    trace,
  };
}

const COLOURS: Record<EmotionLabel, string> = {
  angry: '#d62728', disgust: '#8c564b', fear: '#9467bd', happy: '#f2c12e', sad: '#1f77b4', surprise: '#ff7f0e', neutral: '#9e9e9e',
};

/** The timeline as an SVG picture: ground truth, frame argmax, smoothed label, change events. */
export function timelineSvg(result: SmootherEvaluation, title: string): string {
  const width = 1000;
  const left = 110;
  const rowH = 34;
  const rows = ['ground truth', 'frame argmax', 'smoothed', 'changes'];
  const span = Math.max(1, (result.trace[result.trace.length - 1]?.offsetMs ?? 0) + 100);
  const x = (ms: number) => left + ((width - left - 10) * ms) / span;
  const parts: string[] = [];
  const band = (row: number, pick: (t: FrameTrace) => EmotionLabel | undefined) => {
    result.trace.forEach((t, i) => {
      const label = pick(t);
      if (!label) return;
      const next = result.trace[i + 1]?.offsetMs ?? t.offsetMs + 100;
      parts.push(`<rect x="${x(t.offsetMs).toFixed(1)}" y="${40 + row * rowH}" width="${Math.max(0.5, x(next) - x(t.offsetMs)).toFixed(1)}" height="${rowH - 8}" fill="${COLOURS[label]}"/>`);
    });
  };
  band(0, (t) => t.truth);
  band(1, (t) => t.frame);
  band(2, (t) => t.smoothed);
  for (const c of result.changes) {
    const cx = x(c.captureTimeMs - result.startTimeMs);
    parts.push(`<line x1="${cx.toFixed(1)}" y1="${40 + 3 * rowH}" x2="${cx.toFixed(1)}" y2="${40 + 4 * rowH - 8}" stroke="${COLOURS[c.label as EmotionLabel]}" stroke-width="3"/>`);
    parts.push(`<text x="${(cx + 3).toFixed(1)}" y="${40 + 3 * rowH + 16}" font-size="10" font-family="sans-serif">${c.label}</text>`);
  }
  rows.forEach((r, i) => parts.push(`<text x="8" y="${40 + i * rowH + 18}" font-size="12" font-family="sans-serif">${r}</text>`));
  const legend = EMOTIONS.map((e, i) => `<rect x="${left + i * 120}" y="${50 + 4 * rowH}" width="12" height="12" fill="${COLOURS[e]}"/><text x="${left + i * 120 + 16}" y="${60 + 4 * rowH}" font-size="11" font-family="sans-serif">${e}</text>`);
  const seconds = Math.floor(span / 1000);
  const ticks = Array.from({ length: Math.floor(seconds / 2) + 1 }, (_, i) => i * 2).map((s) => `<text x="${x(s * 1000).toFixed(1)}" y="${36}" font-size="9" font-family="sans-serif" text-anchor="middle">${s}s</text>`);
  const height = 80 + 4 * rowH;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect width="100%" height="100%" fill="white"/><text x="8" y="16" font-size="13" font-family="sans-serif">${escapeXml(title)}</text>${ticks.join('')}${parts.join('')}${legend.join('')}</svg>\n`;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}
