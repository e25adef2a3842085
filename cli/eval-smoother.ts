import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { loadConfig, opt } from '../runtime/config.ts';
import { createLogger } from '../runtime/log.ts';
import { ClassifierEngine } from '../processors/classifier/engine.ts';
import { classifierOptions, emotionModelOption, inferenceOptions, smootherOptions } from '../processors/index.ts';
import type { SmootherConfig } from '../processors/smoother/core.ts';
import {
  evaluateSmoother, fitTemperature, meetsTargets, withTemperature, paretoSvg, randomTimeline, schemeGrid, sessionScores, SMOOTHER_TARGETS, summarizeScheme, timelineSvg,
  type LabelledScores, type SchemeSummary,
} from '../processors/smoother/evaluate.ts';
import { SchemaRegistry } from '../schemas/registry.ts';
import { readRecording } from '../schemas/recording.ts';
import { EMOTIONS, type EmotionLabel } from '../schemas/kinds.ts';
import type { EmotionScore, Frame } from '../schemas/generated/types.ts';
import type { LabelledSessionMeta } from '../sessions/synth.ts';
import { seededRandom } from '../sessions/timeline.ts';
import { table as formatTable } from '../observability/format.ts';
import { progressBar } from './progress.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const smootherEvalOptions = {
  ...inferenceOptions,
  ...emotionModelOption,
  ...smootherOptions,
  recording: opt.string('EM_RECORDING', 'recording', '', 'A labelled recording (emotionmuse session synth) to evaluate one session'),
  sessions: opt.int('EM_EVAL_SESSIONS', 'sessions', 0, 'Synthesize this many labelled sessions and compare every scheme and setting on them', { min: 0 }),
  seed: opt.int('EM_SEED', 'seed', 1, 'Seed of the synthesized sessions', { min: 0 }),
  images: opt.string('EM_IMAGES', 'images', path.resolve(ROOT, '../shared/data/fer2013/public-test'), 'FER-style folder (one subfolder per emotion) of the faces the sessions are made of'),
  jitter: opt.bool('EM_JITTER', 'jitter', false, 'Sessions with a varying frame rate (5-15 fps) and 10% of the frames dropped'),
  pareto: opt.string('EM_PARETO', 'pareto', '', 'Where to write the Pareto picture (SVG; default smoother-pareto.svg)'),
  picture: opt.string('EM_PICTURE', 'picture', '', 'Where to write the timeline picture (SVG); default <recording>.timeline.svg or smoother-session.svg'),
  clahe: classifierOptions.clahe,
  json: opt.bool('EM_JSON', 'json', false, 'Print the report as JSON'),
};

type EvalConfig = ReturnType<typeof loadConfig<typeof smootherEvalOptions>>;

const smootherConfigOf = (c: EvalConfig): SmootherConfig => ({ scheme: c.scheme, windowSize: c.windowSize, windowMs: c.windowMs, hysteresis: c.hysteresis, sessionGapMs: c.sessionGapMs, noFace: c.noFace, switchRate: c.switchRate, threshold: c.threshold, accuracy: c.accuracy });

function engineOf(c: EvalConfig): Promise<ClassifierEngine> {
  return ClassifierEngine.create({ emotionModel: c.emotionModel, providers: c.providers as Array<'cuda' | 'cpu'>, threads: c.threads, clahe: c.clahe, logger: createLogger('warn') });
}

async function classify(engine: ClassifierEngine, frames: readonly Frame[], onProgress?: (done: number, total: number) => void): Promise<Array<{ faceFound: boolean; probabilities: number[] }>> {
  const out: Array<{ faceFound: boolean; probabilities: number[] }> = [];
  for (let i = 0; i < frames.length; i += 64) {
    const results = await engine.classify(frames.slice(i, i + 64));
    for (const r of results) {
      if (r instanceof Error) throw r;
      out.push({ faceFound: r.faceFound, probabilities: r.probabilities });
    }
    onProgress?.(Math.min(frames.length, i + 64), frames.length);
  }
  return out;
}

export async function evalSmoother(argv: string[]): Promise<number> {
  const config = loadConfig(smootherEvalOptions, { argv });
  if (config.sessions > 0) return evalManySessions(config);
  if (!config.recording) {
    console.error('eval smoother needs --recording <file> (one labelled session) or --sessions <N> (synthesized sessions)');
    return 2;
  }
  const registry = SchemaRegistry.load();
  const { frames, meta } = await readRecording(config.recording, registry);
  const session = meta as unknown as Partial<LabelledSessionMeta>;
  if (!session.timeline || session.startTimeMs === undefined) {
    console.error(`${config.recording} has no ground-truth timeline in its metadata (make one with \`emotionmuse session synth\`)`);
    return 2;
  }
  const engine = await engineOf(config);
  const results = await classify(engine, frames, config.json ? undefined : progressBar('classifying'));
  const scores: EmotionScore[] = frames.map((f, i) => ({ userId: f.userId, sessionId: f.sessionId, seq: f.seq, captureTimeMs: f.captureTimeMs, ...results[i]!, faceBox: null, modelVersion: engine.modelVersion, scoredAt: 'SERVER', timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 }, processedTimeMs: f.captureTimeMs }));
  const smootherConfig = smootherConfigOf(config);
  const result = evaluateSmoother(scores, session.timeline, session.startTimeMs, smootherConfig);
  const picture = config.picture || config.recording.replace(/(\.avro)?$/, '.timeline.svg');
  const setting = smootherConfig.scheme === 'paper' ? `T=${smootherConfig.windowSize}, H=${smootherConfig.hysteresis}` : `filter, rate ${smootherConfig.switchRate}/s, threshold ${smootherConfig.threshold}`;
  const title = `${path.basename(config.recording)}: ${setting}; transitions ${result.frameTransitions} (frame argmax) -> ${result.smoothedTransitions} (smoothed), ${(100 * result.reduction).toFixed(0)}% fewer`;
  writeFileSync(picture, timelineSvg(result, title));
  if (config.json) {
    const { trace: _trace, ...summary } = result;
    console.log(JSON.stringify({ recording: config.recording, picture, config: smootherConfig, ...summary }, null, 2));
    return 0;
  }
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  console.log(`smoother on ${config.recording} (${result.frames} frames, ${setting}, classifier ${engine.modelVersion} on ${engine.provider})
label transitions   frame-level argmax ${result.frameTransitions}   after smoothing ${result.smoothedTransitions}   reduction ${pct(result.reduction)} (the paper reports about 62 %)
frames matching the ground truth   frame argmax ${pct(result.frameAccuracy)}   smoothed label ${pct(result.smoothedAccuracy)}
true change at   to         emitted after`);
  for (const d of result.delays) console.log(`${`${(d.atMs / 1000).toFixed(1)} s`.padStart(14)}   ${d.to.padEnd(10)} ${d.delayMs === null ? 'never (missed)' : `${(d.delayMs / 1000).toFixed(1)} s`}`);
  console.log(`\nemitted changes: ${result.changes.map((c) => `${((c.captureTimeMs - session.startTimeMs!) / 1000).toFixed(1)}s ${c.previousLabel ?? '-'}->${c.label}`).join(', ')}`);
  console.log(`picture: ${picture}`);
  return 0;
}

/** Scores of every face in a FER-style folder, by labelled emotion, each classified once as an edge crop. */
async function scoreFolder(engine: ClassifierEngine, folder: string, onProgress?: (done: number, total: number) => void): Promise<Map<EmotionLabel, Array<number[] | null>>> {
  const files = EMOTIONS.flatMap((label) => readdirSync(path.join(folder, label)).sort().map((f) => ({ label, file: path.join(folder, label, f) })));
  const pool = new Map<EmotionLabel, Array<number[] | null>>(EMOTIONS.map((e) => [e, []]));
  for (let i = 0; i < files.length; i += 256) {
    const chunk = files.slice(i, i + 256);
    const frames: Frame[] = await Promise.all(chunk.map(async ({ file }, k) => {
      const { data, info } = await sharp(file).greyscale().raw().toBuffer({ resolveWithObject: true });
      return { userId: 'eval', sessionId: 'pool', seq: i + k + 1, captureTimeMs: 0, encoding: 'GRAY8', width: info.width, height: info.height, data, faceBox: null, probabilities: [], edgeModelVersion: '' };
    }));
    const results = await classify(engine, frames);
    results.forEach((r, k) => pool.get(chunk[k]!.label)!.push(r.faceFound ? r.probabilities : null));
    onProgress?.(Math.min(files.length, i + 256), files.length);
  }
  return pool;
}

async function evalManySessions(config: EvalConfig): Promise<number> {
  const engine = await engineOf(config);
  const pool = await scoreFolder(engine, config.images, config.json ? undefined : progressBar('classifying the faces'));
  const random = seededRandom(config.seed);
  const sessions: LabelledScores[] = Array.from({ length: config.sessions }, (_, i) => {
    const timeline = randomTimeline(random);
    const startTimeMs = Date.UTC(2026, 0, 1) + i * 3_600_000;
    return { timeline, startTimeMs, scores: sessionScores(pool, timeline, random, { userId: `eval-${i + 1}`, sessionId: `s${i + 1}`, startTimeMs, jitter: config.jitter }) };
  });
  const base = smootherConfigOf(config);
  const summaries: SchemeSummary[] = schemeGrid(base).map(({ name, config: c }) => summarizeScheme(name, c, sessions));
  // Temperature scaling, fitted on the same faces: the same sessions with calibrated scores, under the filter as configured.
  const fit = fitTemperature(pool);
  const calibrated = sessions.map((s) => ({ ...s, scores: s.scores.map((x) => (x.faceFound ? { ...x, probabilities: withTemperature(x.probabilities, fit.temperature) } : x)) }));
  summaries.push(summarizeScheme(`filter rate=${base.switchRate} th=${base.threshold}, scores at temperature ${fit.temperature}`, { ...base, scheme: 'filter' }, calibrated));
  const minutes = summaries[0]!.minutes;
  const what = `${config.sessions} sessions synthesized from ${config.images} (seed ${config.seed}${config.jitter ? ', 5-15 fps with 10% of frames dropped' : ', 10 fps'}, 3% of frames without a face, ${minutes.toFixed(0)} min, ${summaries[0]!.trueChanges} true changes), classifier ${engine.modelVersion} on ${engine.provider}`;
  const pareto = config.pareto || 'smoother-pareto.svg';
  writeFileSync(pareto, paretoSvg(summaries, `Smoothing schemes on ${config.sessions} sessions${config.jitter ? ' (jittered frame rate)' : ''}: label changes per minute against median delay`));
  // One session's timeline under the filter's defaults and under the paper's scheme.
  const picture = config.picture || 'smoother-session.svg';
  const first = sessions[0]!;
  const shown = evaluateSmoother(first.scores, first.timeline, first.startTimeMs, base);
  writeFileSync(picture, timelineSvg(shown, `session 1 of ${config.sessions}, ${base.scheme === 'paper' ? `paper T=${base.windowSize} H=${base.hysteresis}` : `filter rate=${base.switchRate} th=${base.threshold}`}: transitions ${shown.frameTransitions} -> ${shown.smoothedTransitions}`));
  if (config.json) {
    console.log(JSON.stringify({ sessions: config.sessions, seed: config.seed, jitter: config.jitter, images: config.images, model: engine.modelVersion, targets: SMOOTHER_TARGETS, summaries: summaries.map((s) => ({ ...s, meetsTargets: meetsTargets(s) })), pareto, picture }, null, 2));
    return 0;
  }
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const sec = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '-');
  const rows = summaries.map((s) => [
    s.name, `${s.smoothedTransitions} / ${s.frameTransitions}`, pct(s.reduction), `${pct(s.smoothedAccuracy)} / ${pct(s.frameAccuracy)}`,
    `${sec(s.delayMedianMs)} / ${sec(s.delayP90Ms)}`, `${s.missed} / ${s.trueChanges}`, s.spuriousPerMinute.toFixed(2), meetsTargets(s) ? 'yes' : '',
  ]);
  console.log(`smoothing schemes on ${what}\n`);
  console.log(formatTable(['scheme', 'transitions (smoothed / frame argmax)', 'fewer', 'frame accuracy (smoothed / argmax)', 'change delay s (median / p90)', 'missed changes', 'spurious changes / min', 'meets all targets'], rows));
  console.log(`\ntemperature scaling of the scores (fitted on the faces by log-likelihood): t = ${fit.temperature}, mean NLL ${fit.nll.toFixed(3)} against ${fit.nllAt1.toFixed(3)} at t = 1; the last row is the filter on the calibrated scores`);
  console.log(`targets, all at once: at least ${pct(SMOOTHER_TARGETS.minReduction)} fewer transitions than frame argmax, median delay at most ${SMOOTHER_TARGETS.maxMedianDelayMs / 1000} s, smoothed frame accuracy at least argmax's, at most ${SMOOTHER_TARGETS.maxSpuriousPerMinute} spurious change per minute`);
  console.log(`pictures: ${pareto} (Pareto), ${picture} (session 1)`);
  return 0;
}
