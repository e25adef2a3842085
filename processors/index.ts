import type { OptionTable } from '../runtime/config.ts';
import { redisSecurity, type SecurityConfig } from '../runtime/security.ts';
import { opt } from '../runtime/config.ts';
import type { Logger } from '../runtime/log.ts';
import type { Metrics } from '../runtime/metrics.ts';
import { EXECUTION_PROVIDERS, type ExecutionProvider } from '../runtime/onnx.ts';
import type { ProcessorCore } from '../runtime/processor.ts';
import { createClassifierCore } from './classifier/core.ts';
import { DEFAULT_DETECTOR_SIDES, formatDetectorSides, parseDetectorSides } from '../vision/face-crop.ts';
import { hasTokenKey, tokenConfigOf, tokenKeyOptions } from '../auth/options.ts';
import { TokenVerifier } from '../auth/tokens.ts';
import { ClassifierEngine, DEFAULT_EMOTION_MODEL, EMOTION_MODELS, type EmotionModel } from './classifier/engine.ts';
import { createPassthroughCore } from './passthrough/core.ts';
import { createSmootherCore, DEFAULT_SMOOTHER_CONFIG, SMOOTHER_SCHEMES } from './smoother/core.ts';
import { createRecommenderCore, DEFAULT_RECOMMENDER_CONFIG } from './recommender/core.ts';
import { SCORING_GRAPHS, Scorer } from './recommender/scorer.ts';
import { UserStore } from './recommender/store.ts';
import { fileURLToPath } from 'node:url';

export interface ProcessorContext<C> {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The processor's own options (the entry's `options` table), validated. */
  readonly config: C;
  /** The options every processor takes (brokers, Redis, ...). */
  readonly common: { readonly redisUrl: string } & SecurityConfig;
}

export interface ProcessorEntry<T extends OptionTable = OptionTable> {
  /** Default HTTP port of /metrics, /healthz, /readyz. */
  readonly port: number;
  /** Options of this processor only; shown by `emotionmuse run <name> --help`. */
  readonly options: T;
  readonly create: (ctx: ProcessorContext<{ readonly [K in keyof T]: T[K] extends { default: infer D } ? D : never }>) => Promise<ProcessorCore<any, any>> | ProcessorCore<any, any>;
}

function entry<T extends OptionTable>(e: ProcessorEntry<T>): ProcessorEntry<T> {
  return e;
}

/** Options of the model-serving processors. */
export const inferenceOptions = {
  providers: opt.list('EM_EXECUTION_PROVIDERS', 'providers', ['cuda', 'cpu'], `ONNX Runtime execution providers to try in order (${EXECUTION_PROVIDERS.join(', ')})`),
  threads: opt.int('EM_ORT_THREADS', 'threads', 0, 'ONNX Runtime intra-op threads (0: one per core)', { min: 0 }),
};

export const emotionModelOption = {
  emotionModel: opt.oneOf('EM_EMOTION_MODEL', 'emotion-model', DEFAULT_EMOTION_MODEL, Object.keys(EMOTION_MODELS) as EmotionModel[], 'Emotion CNN: int8-48 (fine-tuned for 48x48 crops, quantized), float32-48 (the same in float), int8 or float32 (the converted original at 64x64); accuracy in each models/*.card.json'),
};

export const classifierOptions = {
  ...inferenceOptions,
  ...emotionModelOption,
  clahe: opt.bool('EM_CLAHE', 'clahe', false, 'Apply CLAHE (clip 2.0, 8x8 tiles) to the face crop, as the paper does (lowers this model\'s accuracy: see models/emotion.card.json)'),
  threads: opt.int('EM_ORT_THREADS', 'threads', 1, 'ONNX Runtime intra-op threads per inference thread (0: one per core)', { min: 0 }),
  inferenceThreads: opt.int('EM_INFERENCE_THREADS', 'inference-threads', 2, 'Worker threads that run the models (each with its own copy), so that fetching and producing go on during inference and one batch need not wait for the previous one; 0 runs them on the main thread', { min: 0, max: 16 }),
  maxInferenceBatch: opt.int('EM_MAX_INFERENCE_BATCH', 'max-inference-batch', 16, 'Most frames in one classifier run, and the largest emotion CNN batch (a larger backlog runs as several, on the inference threads in parallel)', { min: 1 }),
  maxDetectBatch: opt.int('EM_MAX_DETECT_BATCH', 'max-detect-batch', 4, 'Largest face detector batch (full frames): its arena in every inference thread keeps the largest batch\'s memory', { min: 1 }),
  detector: opt.string('EM_DETECTOR', 'detector', formatDetectorSides(DEFAULT_DETECTOR_SIDES), 'Face detector input side (longer side, a multiple of 32), or a cascade tried in order on the frames still without a face (128/256); recall of each in vision/README.md'),
  prepareAhead: opt.int('EM_PREPARE_AHEAD', 'prepare-ahead', 4, 'Batches of a partition that may go to the model while its previous batch is still there (0: one at a time)', { min: 0, max: 64 }),
  minFaceScore: opt.number('EM_MIN_FACE_SCORE', 'min-face-score', 0.6, 'Face detector score threshold', { min: 0, max: 1 }),
  maxFramePixels: opt.int('EM_MAX_FRAME_PIXELS', 'max-frame-pixels', 4096 * 4096, 'Frames with more pixels go to the dead-letter topic (OVERSIZED_RECORD)', { min: 1 }),
};

export const smootherOptions = {
  scheme: opt.oneOf('EM_SMOOTHER_SCHEME', 'scheme', DEFAULT_SMOOTHER_CONFIG.scheme, SMOOTHER_SCHEMES, 'Smoothing scheme: paper (mean of T frames, H windows agree) or filter (a forward filter over the seven classes, time-based; processors/smoother/README.md compares them)'),
  windowSize: opt.int('EM_SMOOTHER_WINDOW', 'window', DEFAULT_SMOOTHER_CONFIG.windowSize, 'Frames per non-overlapping window (the paper\'s T)', { min: 1 }),
  windowMs: opt.int('EM_SMOOTHER_WINDOW_MS', 'window-ms', DEFAULT_SMOOTHER_CONFIG.windowMs, 'paper: windows of this many ms of capture time instead of T frames (0: T frames)', { min: 0 }),
  hysteresis: opt.int('EM_SMOOTHER_HYSTERESIS', 'hysteresis', DEFAULT_SMOOTHER_CONFIG.hysteresis, 'Consecutive windows that must agree on a new label (the paper\'s H)', { min: 1 }),
  sessionGapMs: opt.int('EM_SMOOTHER_GAP_MS', 'session-gap-ms', DEFAULT_SMOOTHER_CONFIG.sessionGapMs, 'A longer gap between frames starts the user\'s state over', { min: 1 }),
  noFace: opt.oneOf('EM_SMOOTHER_NO_FACE', 'no-face', DEFAULT_SMOOTHER_CONFIG.noFace, ['skip', 'break-window'], 'Frames without a face: skip them, or discard the partial window'),
  switchRate: opt.number('EM_SMOOTHER_SWITCH_RATE', 'switch-rate', DEFAULT_SMOOTHER_CONFIG.switchRate, 'filter: label changes per second in the filter\'s prior (lower: steadier, slower)', { min: 0.0001, max: 10 }),
  threshold: opt.number('EM_SMOOTHER_THRESHOLD', 'threshold', DEFAULT_SMOOTHER_CONFIG.threshold, 'filter: posterior a new label needs before it is emitted', { min: 0.15, max: 0.9999 }),
  accuracy: opt.number('EM_SMOOTHER_ACCURACY', 'accuracy', DEFAULT_SMOOTHER_CONFIG.accuracy, 'filter: how often the classifier\'s top class is right (its PublicTest accuracy, models/*.card.json)', { min: 0.15, max: 0.99 }),
};

export const recommenderOptions = {
  ...inferenceOptions,
  modelDir: opt.string('EM_RECOMMENDER_MODEL', 'model-dir', fileURLToPath(new URL('../models/recommender-small', import.meta.url)), 'Folder of an exported recommender (scoring.onnx, tracks.tsv, music_emb.f32, card.json)'),
  scoringGraph: opt.oneOf('EM_SCORING_GRAPH', 'scoring-graph', 'auto', SCORING_GRAPHS, 'Scoring graph: exact = scoring.onnx (float32 over the catalogue); two-stage = scoring-int8.onnx (int8 candidates, exact float32 rescoring); auto = two-stage where the model folder has it'),
  lambda: opt.number('EM_RERANK_LAMBDA', 'lambda', DEFAULT_RECOMMENDER_CONFIG.lambda, 'Reranking: final = lambda * preference + (1 - lambda) * emotion compatibility', { min: 0, max: 1 }),
  topK: opt.int('EM_TOP_K', 'top-k', DEFAULT_RECOMMENDER_CONFIG.topK, 'Tracks per published list', { min: 1, max: 100 }),
  refreshIntervalMs: opt.int('EM_LISTEN_REFRESH_MS', 'listen-refresh-ms', DEFAULT_RECOMMENDER_CONFIG.refreshIntervalMs, 'Listens refresh a user\'s list at most once per this many ms', { min: 0 }),
  historySize: opt.int('EM_HISTORY_SIZE', 'history-size', 50, 'Listened tracks kept per user (the model reads the last 50)', { min: 1 }),
  userTtlSeconds: opt.int('EM_USER_TTL_S', 'user-ttl-s', 30 * 24 * 3600, 'Inactive users expire from Redis after this many seconds', { min: 1 }),
  redisPrefix: opt.string('EM_REDIS_PREFIX', 'redis-prefix', 'em:', 'Prefix of every Redis key'),
};

function providersOf(list: readonly string[]): ExecutionProvider[] {
  const bad = list.filter((p) => !(EXECUTION_PROVIDERS as readonly string[]).includes(p));
  if (bad.length > 0) throw new Error(`unknown execution provider(s): ${bad.join(', ')} (known: ${EXECUTION_PROVIDERS.join(', ')})`);
  return list as ExecutionProvider[];
}

/** Every processor `emotionmuse run <name>` can start; the topology says what each reads and writes. */
export const PROCESSORS: Record<string, ProcessorEntry<any>> = {
  passthrough: entry({
    port: 9100,
    options: {},
    create: ({ metrics }) => createPassthroughCore({ onSkip: (reason) => metrics.skipped.inc({ stage: 'passthrough', reason }) }),
  }),
  smoother: entry({
    port: 9102,
    options: smootherOptions,
    create: ({ metrics, config }) =>
      createSmootherCore(config, {
        onDrop: (reason) => metrics.skipped.inc({ stage: 'smoother', reason }),
        onReset: (why) => metrics.skipped.inc({ stage: 'smoother', reason: `state-reset-${why}` }),
        onStep: (ms) => metrics.stepSeconds.observe({ stage: 'smoother', step: 'smooth' }, ms / 1000),
        onChange: (change) => metrics.endToEnd.observe({ path: 'change' }, Math.max(0, change.emittedTimeMs - change.captureTimeMs) / 1000),
      }),
  }),
  recommender: entry({
    port: 9103,
    options: { ...recommenderOptions, ...tokenKeyOptions },
    create: async ({ metrics, logger, config, common }) => {
      // GET /users/{id}/recommendations answers only a bearer token for that user.
      const tokens = tokenConfigOf(config);
      const verifier = hasTokenKey(tokens) ? await TokenVerifier.create(tokens) : undefined;
      if (!verifier) logger.warn('no token key configured: GET /users/{id}/recommendations refuses every request (set EM_JWT_SECRET or a key file)');
      const scorer = await Scorer.open(config.modelDir, { providers: providersOf(config.providers), threads: config.threads, graph: config.scoringGraph, logger });
      logger.info('recommender model loaded', { model: scorer.modelVersion, tracks: scorer.catalogue.size, provider: scorer.provider, graph: scorer.graphFile });
      metrics.modelInfo.set({ stage: 'recommender', model: 'bilstm-va', version: scorer.modelVersion, provider: scorer.provider }, 1);
      const store = new UserStore(common.redisUrl, {
        prefix: config.redisPrefix,
        historySize: config.historySize,
        ttlSeconds: config.userTtlSeconds,
        onOperation: (_op, ms) => metrics.stepSeconds.observe({ stage: 'recommender', step: 'redis' }, ms / 1000),
      }, redisSecurity(common));
      await store.connect();
      return createRecommenderCore({ scorer, store, metrics, verifier, config: { ...DEFAULT_RECOMMENDER_CONFIG, lambda: config.lambda, topK: config.topK, refreshIntervalMs: config.refreshIntervalMs } });
    },
  }),
  classifier: entry({
    port: 9101,
    options: classifierOptions,
    create: async ({ metrics, logger, config }) => {
      const engine = await ClassifierEngine.create({
        emotionModel: config.emotionModel,
        inferenceThreads: config.inferenceThreads,
        providers: providersOf(config.providers),
        threads: config.threads,
        clahe: config.clahe,
        maxBatch: config.maxInferenceBatch,
        maxDetectBatch: config.maxDetectBatch,
        detectorSides: parseDetectorSides(config.detector),
        minFaceScore: config.minFaceScore,
        maxFramePixels: config.maxFramePixels,
        logger,
      });
      metrics.modelInfo.set({ stage: 'classifier', model: 'emotion', version: engine.modelVersion, provider: engine.provider }, 1);
      return createClassifierCore(engine, metrics, { maxBatch: config.maxInferenceBatch, concurrency: Math.max(1, config.inferenceThreads), prepareAhead: config.prepareAhead });
    },
  }),
};
