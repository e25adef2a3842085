import { EMOTIONS, type EmotionLabel } from '../../schemas/kinds.ts';
import type { EmotionChange, EmotionScore } from '../../schemas/generated/types.ts';
import { labelAt, type Segment } from '../../sessions/timeline.ts';
import { percentile } from '../../observability/format.ts';
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

/** A random labelled timeline: segments of 2 to 20 s, each a different emotion from the one before, at least `minMs` long. */
export function randomTimeline(random: () => number, minMs = 60_000): Segment[] {
  const segments: Segment[] = [];
  let at = 0;
  while (at < minMs) {
    const previous = segments[segments.length - 1]?.label;
    const choices = EMOTIONS.filter((e) => e !== previous);
    const label = choices[Math.floor(random() * choices.length)]!;
    const ms = Math.round(2000 + random() * 18_000);
    segments.push({ label, startMs: at, endMs: at + ms });
    at += ms;
  }
  return segments;
}

export interface SessionScoresOptions {
  readonly userId: string;
  readonly sessionId: string;
  readonly startTimeMs: number;
  /** Frames per second; with `jitter`, each session draws its own from 5 to 15. @defaultValue 10 */
  readonly fps?: number;
  /** Dropped frames and a varying frame rate (a camera that stalls). */
  readonly jitter?: boolean;
  /** Share of frames without a face. @defaultValue 0.03 */
  readonly noFaceShare?: number;
}

/**
 * A labelled session at the score level: at each frame, the classifier's scores of a random real
 * face of the emotion the timeline holds (`pool`: scores of every image, by its labelled emotion,
 * computed once), some frames without a face, and with `jitter` a frame rate of 5 to 15 fps and
 * 10% of the frames dropped. The same image always has the same scores, so this equals
 * classifying the session's frames.
 */
export function sessionScores(pool: ReadonlyMap<EmotionLabel, ReadonlyArray<readonly number[] | null>>, timeline: readonly Segment[], random: () => number, o: SessionScoresOptions): EmotionScore[] {
  const fps = o.jitter ? 5 + random() * 10 : (o.fps ?? 10);
  const end = timeline[timeline.length - 1]!.endMs;
  const scores: EmotionScore[] = [];
  let seq = 0;
  for (let t = 0; t < end; t += 1000 / fps) {
    seq++;
    if (o.jitter && random() < 0.1) continue;
    const label = labelAt(timeline, t)!;
    const images = pool.get(label)!;
    const probabilities = random() < (o.noFaceShare ?? 0.03) ? null : images[Math.floor(random() * images.length)]!;
    const captureTimeMs = o.startTimeMs + Math.round(t);
    scores.push({
      userId: o.userId, sessionId: o.sessionId, seq, captureTimeMs, faceFound: probabilities !== null, probabilities: probabilities ? [...probabilities] : [],
      faceBox: null, modelVersion: 'eval', scoredAt: 'SERVER', timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 }, processedTimeMs: captureTimeMs,
    });
  }
  return scores;
}

export interface LabelledScores {
  readonly scores: readonly EmotionScore[];
  readonly timeline: readonly Segment[];
  readonly startTimeMs: number;
}

/** One scheme and parameter setting over many sessions. */
export interface SchemeSummary {
  readonly name: string;
  readonly config: SmootherConfig;
  readonly sessions: number;
  readonly minutes: number;
  readonly frameTransitions: number;
  readonly smoothedTransitions: number;
  readonly reduction: number;
  readonly frameAccuracy: number;
  readonly smoothedAccuracy: number;
  /** Over the true changes (a segment whose emotion differs from the one before) that were followed. */
  readonly delayMedianMs: number;
  readonly delayP90Ms: number;
  readonly trueChanges: number;
  readonly missed: number;
  /** Emitted changes that follow no true change, per minute of session. */
  readonly spuriousPerMinute: number;
}

/** The project's targets for a smoother (issue #20): all at once. */
export const SMOOTHER_TARGETS = { minReduction: 0.62, maxMedianDelayMs: 1500, maxSpuriousPerMinute: 1 } as const;

export function meetsTargets(s: SchemeSummary): boolean {
  return s.reduction >= SMOOTHER_TARGETS.minReduction && s.delayMedianMs <= SMOOTHER_TARGETS.maxMedianDelayMs && s.smoothedAccuracy >= s.frameAccuracy && s.spuriousPerMinute <= SMOOTHER_TARGETS.maxSpuriousPerMinute;
}

export function summarizeScheme(name: string, config: SmootherConfig, sessions: readonly LabelledScores[]): SchemeSummary {
  const n = { frames: 0, frameRight: 0, smoothedRight: 0, frameTransitions: 0, smoothedTransitions: 0, spurious: 0, missed: 0, trueChanges: 0, durationMs: 0 };
  const delays: number[] = [];
  for (const s of sessions) {
    const r = evaluateSmoother(s.scores, s.timeline, s.startTimeMs, config);
    n.frames += r.frames;
    n.frameRight += r.frameAccuracy * r.frames;
    n.smoothedRight += r.smoothedAccuracy * r.frames;
    n.frameTransitions += r.frameTransitions;
    n.smoothedTransitions += r.smoothedTransitions;
    n.durationMs += s.timeline[s.timeline.length - 1]!.endMs;
    // The first segment is the session's start, not a change; the change that follows a true
    // change is the first emitted one to its label inside its segment.
    const hits = new Set<EmotionChange>();
    s.timeline.forEach((segment, i) => {
      if (i === 0 || s.timeline[i - 1]!.label === segment.label) return;
      n.trueChanges++;
      const hit = r.changes.find((c) => c.previousLabel !== null && c.label === segment.label && c.captureTimeMs - s.startTimeMs >= segment.startMs && c.captureTimeMs - s.startTimeMs < segment.endMs);
      if (hit) {
        hits.add(hit);
        delays.push(hit.captureTimeMs - s.startTimeMs - segment.startMs);
      } else {
        n.missed++;
      }
    });
    n.spurious += r.changes.filter((c) => c.previousLabel !== null && !hits.has(c)).length;
  }
  const minutes = n.durationMs / 60_000;
  return {
    name, config, sessions: sessions.length, minutes, frameTransitions: n.frameTransitions, smoothedTransitions: n.smoothedTransitions,
    reduction: n.frameTransitions === 0 ? 0 : 1 - n.smoothedTransitions / n.frameTransitions,
    frameAccuracy: n.frameRight / Math.max(1, n.frames), smoothedAccuracy: n.smoothedRight / Math.max(1, n.frames),
    delayMedianMs: percentile(delays, 0.5), delayP90Ms: percentile(delays, 0.9), trueChanges: n.trueChanges, missed: n.missed,
    spuriousPerMinute: n.spurious / Math.max(1e-9, minutes),
  };
}

/** Probabilities sharpened or softened by a temperature: p_i^(1/t), renormalised (temperature scaling of the logits). */
export function withTemperature(p: readonly number[], t: number): number[] {
  const q = p.map((x) => Math.max(1e-12, x) ** (1 / t));
  const sum = q.reduce((a, b) => a + b, 0);
  return q.map((x) => x / sum);
}

/** The temperature that minimises the negative log-likelihood of the labelled scores (a grid from 0.25 to 4). */
export function fitTemperature(pool: ReadonlyMap<EmotionLabel, ReadonlyArray<readonly number[] | null>>): { temperature: number; nll: number; nllAt1: number } {
  const nll = (t: number) => {
    let sum = 0;
    let n = 0;
    for (const [label, list] of pool) {
      const i = EMOTIONS.indexOf(label);
      for (const p of list) {
        if (!p) continue;
        sum -= Math.log(Math.max(1e-12, withTemperature(p, t)[i]!));
        n++;
      }
    }
    return sum / Math.max(1, n);
  };
  let best = { temperature: 1, nll: nll(1) };
  for (let t = 0.25; t <= 4.0001; t += 0.05) {
    const v = nll(t);
    if (v < best.nll) best = { temperature: Math.round(t * 100) / 100, nll: v };
  }
  return { ...best, nllAt1: nll(1) };
}

/** The settings the many-session evaluation compares: the paper's scheme around T=10, H=5, and the filter around its defaults. */
export function schemeGrid(base: SmootherConfig): Array<{ name: string; config: SmootherConfig }> {
  const grid: Array<{ name: string; config: SmootherConfig }> = [];
  for (const windowSize of [5, 10]) for (const hysteresis of [1, 2, 3, 5]) grid.push({ name: `paper T=${windowSize} H=${hysteresis}`, config: { ...base, scheme: 'paper', windowSize, windowMs: 0, hysteresis } });
  for (const hysteresis of [2, 3]) grid.push({ name: `paper 500ms H=${hysteresis}`, config: { ...base, scheme: 'paper', windowMs: 500, hysteresis } });
  for (const switchRate of [0.02, 0.05, 0.1, 0.2]) for (const threshold of [0.8, 0.9, 0.95, 0.98, 0.99]) grid.push({ name: `filter rate=${switchRate} th=${threshold}`, config: { ...base, scheme: 'filter', switchRate, threshold } });
  return grid;
}

/** Transitions per minute against median change delay, one point per setting, the Pareto front joined (SVG). */
export function paretoSvg(summaries: readonly SchemeSummary[], title: string): string {
  const width = 900;
  const height = 560;
  const m = { left: 70, right: 20, top: 40, bottom: 60 };
  const pts = summaries.filter((s) => Number.isFinite(s.delayMedianMs)).map((s) => ({ s, x: s.delayMedianMs / 1000, y: s.smoothedTransitions / Math.max(1e-9, s.minutes) }));
  const maxX = Math.max(1, ...pts.map((p) => p.x)) * 1.1;
  const maxY = Math.max(1, ...pts.map((p) => p.y)) * 1.1;
  const X = (v: number) => m.left + ((width - m.left - m.right) * v) / maxX;
  const Y = (v: number) => height - m.bottom - ((height - m.top - m.bottom) * v) / maxY;
  const front = pts.filter((p) => !pts.some((q) => q !== p && q.x <= p.x && q.y <= p.y && (q.x < p.x || q.y < p.y))).sort((a, b) => a.x - b.x);
  const colour = (s: SchemeSummary) => (s.config.scheme === 'paper' ? '#1f77b4' : '#d62728');
  const parts: string[] = [];
  for (let i = 0; i <= 5; i++) {
    const vx = (maxX * i) / 5;
    const vy = (maxY * i) / 5;
    parts.push(`<line x1="${X(vx)}" y1="${Y(0)}" x2="${X(vx)}" y2="${Y(maxY)}" stroke="#eee"/><text x="${X(vx)}" y="${Y(0) + 16}" font-size="11" text-anchor="middle">${vx.toFixed(1)}</text>`);
    parts.push(`<line x1="${X(0)}" y1="${Y(vy)}" x2="${X(maxX)}" y2="${Y(vy)}" stroke="#eee"/><text x="${X(0) - 6}" y="${Y(vy) + 4}" font-size="11" text-anchor="end">${vy.toFixed(1)}</text>`);
  }
  parts.push(`<rect x="${X(0)}" y="${Y(maxY)}" width="${X(Math.min(maxX, SMOOTHER_TARGETS.maxMedianDelayMs / 1000)) - X(0)}" height="${Y(0) - Y(maxY)}" fill="#2ca02c" opacity="0.06"/>`);
  // the truth's own changes per minute: a scheme cannot usefully go below it
  const truth = summaries[0] ? summaries[0].trueChanges / Math.max(1e-9, summaries[0].minutes) : 0;
  parts.push(`<line x1="${X(0)}" y1="${Y(truth).toFixed(1)}" x2="${X(maxX)}" y2="${Y(truth).toFixed(1)}" stroke="#2ca02c" stroke-width="1.5"/><text x="${X(maxX) - 4}" y="${(Y(truth) + 14).toFixed(1)}" font-size="11" text-anchor="end" fill="#2ca02c">true changes per minute (${truth.toFixed(1)})</text>`);
  parts.push(`<polyline fill="none" stroke="#555" stroke-dasharray="4 3" points="${front.map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' ')}"/>`);
  for (const p of pts) {
    const ok = meetsTargets(p.s);
    parts.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="${ok ? 6 : 4}" fill="${colour(p.s)}" ${ok ? 'stroke="#2ca02c" stroke-width="3"' : ''}/>`);
    // labels on the front and the paper's own setting only (the rest would overlap)
    if (front.includes(p) || p.s.name === 'paper T=10 H=5') parts.push(`<text x="${(X(p.x) + 7).toFixed(1)}" y="${(Y(p.y) - 5).toFixed(1)}" font-size="9" fill="#333">${escapeXml(p.s.name.replace(/^(paper|filter) /, ''))}</text>`);
  }
  const ly = m.top + 14;
  const legend = `<circle cx="${width - 250}" cy="${ly}" r="5" fill="#1f77b4"/><text x="${width - 240}" y="${ly + 4}" font-size="12">paper (T, H)</text><circle cx="${width - 150}" cy="${ly}" r="5" fill="#d62728"/><text x="${width - 140}" y="${ly + 4}" font-size="12">filter (rate, th)</text>`;
  const axes = `<text x="${(m.left + width - m.right) / 2}" y="${height - 18}" font-size="13" text-anchor="middle">median delay of a true change (s); shaded: within 1.5 s; ringed: meets every target</text><text transform="translate(18 ${(m.top + height - m.bottom) / 2}) rotate(-90)" font-size="13" text-anchor="middle">emitted label changes per minute</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="${m.left}" y="24" font-size="14">${escapeXml(title)}</text>${legend}${parts.join('')}${axes}</svg>\n`;
}
