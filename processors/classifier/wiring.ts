import { FrameTokenChecker } from '../../auth/frame-token.ts';
import { hasTokenKey, tokenConfigOf, tokenKeyOptions } from '../../auth/options.ts';
import { TokenVerifier } from '../../auth/tokens.ts';
import { opt } from '../../runtime/config.ts';
import type { InputRecord } from '../../runtime/processor.ts';
import { EmotionMuseError } from '../../schemas/errors.ts';
import { LABELS } from '../../runtime/metrics.ts';
import { DEFAULT_MAX_INFERENCE_BATCH } from '../../vision/emotion-cnn.ts';
import { DEFAULT_DETECTOR_SIDES, formatDetectorSides, parseDetectorSides } from '../../vision/face-crop.ts';
import { emotionModelOption, entry, inferenceOptions, ortThreadsOption, providersOf } from '../options.ts';
import { createClassifierCore, DEFAULT_PREPARE_AHEAD } from './core.ts';
import { ClassifierEngine } from './engine.ts';

export const classifierOptions = {
  ...inferenceOptions,
  ...emotionModelOption,
  threads: ortThreadsOption(1, 'the classifier runs a session in each of its inference threads, so one each'),
  clahe: opt.bool('EM_CLAHE', 'clahe', false, 'Apply CLAHE (clip 2.0, 8x8 tiles) to the face crop, as the paper does (lowers this model\'s accuracy: see models/emotion.card.json)'),
  inferenceThreads: opt.int('EM_INFERENCE_THREADS', 'inference-threads', 2, 'Worker threads that run the models (each with its own copy), so that fetching and producing go on during inference and one batch need not wait for the previous one; 0 runs them on the main thread', { min: 0, max: 16 }),
  maxInferenceBatch: opt.int('EM_MAX_INFERENCE_BATCH', 'max-inference-batch', DEFAULT_MAX_INFERENCE_BATCH, 'Most frames in one classifier run, and the largest emotion CNN batch (a larger backlog runs as several, on the inference threads in parallel)', { min: 1 }),
  maxDetectBatch: opt.int('EM_MAX_DETECT_BATCH', 'max-detect-batch', 1, 'Largest face detector run (full frames); runs go through decode, detection and crop side by side, and one frame a run was the fastest per frame (its arena in every inference thread keeps the largest run\'s memory)', { min: 1 }),
  detector: opt.string('EM_DETECTOR', 'detector', formatDetectorSides(DEFAULT_DETECTOR_SIDES), 'Face detector input side (longer side, a multiple of 32), or a cascade tried in order on the frames still without a face (128/256); recall of each in vision/README.md'),
  prepareAhead: opt.int('EM_PREPARE_AHEAD', 'prepare-ahead', DEFAULT_PREPARE_AHEAD, 'Batches of a partition that may go to the model while its previous batch is still there (0: one at a time)', { min: 0, max: 64 }),
  minFaceScore: opt.number('EM_MIN_FACE_SCORE', 'min-face-score', 0.6, 'Face detector score threshold', { min: 0, max: 1 }),
  maxFramePixels: opt.int('EM_MAX_FRAME_PIXELS', 'max-frame-pixels', 4096 * 4096, 'Frames with more pixels go to the dead-letter topic (OVERSIZED_RECORD)', { min: 1 }),
  frameAuth: opt.oneOf('EM_FRAME_AUTH', 'frame-auth', 'auto', ['auto', 'required', 'off'], 'Each frame must carry its user\'s bearer token (Kafka header em-token: signature, expiry and subject equal to the key), else it is dead-lettered (TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED, TOKEN_WRONG_USER): required, off, or auto (required in the secured mode)'),
  frameTokenGraceMs: opt.int('EM_FRAME_TOKEN_GRACE_MS', 'frame-token-grace-ms', 600_000, 'A frame\'s token may have expired this long before the classifier reads it (a backlog after an outage)', { min: 0 }),
  ...tokenKeyOptions,
};

/** frames -> emotion-scores: the engine (detector and emotion CNN on the inference threads) and its model-info metric. */
export const classifier = entry({
  name: 'classifier',
  port: 9101,
  options: classifierOptions,
  create: async ({ metrics, logger, config, common }) => {
    const required = config.frameAuth === 'required' || (config.frameAuth === 'auto' && common.security === 'on');
    let authenticate: ((record: InputRecord) => Promise<EmotionMuseError | undefined>) | undefined;
    if (required) {
      const tokens = tokenConfigOf(config);
      if (!hasTokenKey(tokens)) throw new EmotionMuseError('CONFIG_INVALID', 'frames must carry their user\'s token (--frame-auth required, or auto in the secured mode), but no token key is configured: set EM_JWT_SECRET, --jwt-secret-file, --jwt-public-key-file or --jwt-jwks-file');
      const checker = new FrameTokenChecker(await TokenVerifier.create(tokens), config.frameTokenGraceMs / 1000);
      authenticate = (record) => checker.check(record.headers, record.key);
      logger.info('frames must carry their user\'s token (em-token header)', { graceMs: config.frameTokenGraceMs });
    } else logger.info('frames are taken without a token check (--frame-auth off): any writer of the frames topic can write any user\'s frames');
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
    for (const source of LABELS.faceSource) metrics.facelessFrames.inc({ stage: 'classifier', source }, 0);
    return createClassifierCore(engine, metrics, { maxBatch: config.maxInferenceBatch, concurrency: Math.max(1, config.inferenceThreads), prepareAhead: config.prepareAhead, authenticate });
  },
});
