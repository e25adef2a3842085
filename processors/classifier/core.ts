import { coalesce } from '../../runtime/coalesce.ts';
import { EmotionMuseError } from '../../schemas/errors.ts';
import type { Metrics } from '../../runtime/metrics.ts';
import type { InputRecord, ProcessorCore } from '../../runtime/processor.ts';
import type { EmotionScore, Frame } from '../../schemas/generated/types.ts';
import { DEFAULT_MAX_INFERENCE_BATCH } from '../../vision/emotion-cnn.ts';
import { checkEdgeScores } from '../../vision/scores.ts';
import type { ClassifierEngine, FrameResult } from './engine.ts';

/** What the classifier makes of one frame: the engine's result, or an edge client's own verdict. */
type Verdict = (FrameResult & { readonly scoredAt: 'SERVER' | 'EDGE'; readonly modelVersion: string }) | EmotionMuseError;
/** Later batches of a partition that may be at the model while one is (the classifier's --prepare-ahead). */
export const DEFAULT_PREPARE_AHEAD = 4;
const NO_TIMINGS = { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 };

/**
 * The verdict on a frame that an edge client has already judged, or undefined when the engine must
 * see it: NONE (the device found no face) gives a faceless score, SCORES (the device ran the CNN)
 * passes its validated probabilities on, marked as scored at the edge. Neither may carry bytes.
 */
export function edgeVerdict(frame: Frame): Verdict | undefined {
  if (frame.encoding !== 'NONE' && frame.encoding !== 'SCORES') return undefined;
  try {
    if (frame.data.length > 0) throw new EmotionMuseError('INVALID_RECORD', `a ${frame.encoding} frame carries ${frame.data.length} bytes; it must carry none`);
    if (frame.encoding === 'NONE') return { faceFound: false, probabilities: [], faceBox: null, timings: NO_TIMINGS, scoredAt: 'EDGE', modelVersion: frame.edgeModelVersion || 'edge' };
    checkEdgeScores(frame.probabilities, frame.edgeModelVersion);
    return { faceFound: true, probabilities: frame.probabilities, faceBox: frame.faceBox, timings: NO_TIMINGS, scoredAt: 'EDGE', modelVersion: frame.edgeModelVersion };
  } catch (err) {
    return err as EmotionMuseError;
  }
}

/**
 * frames -> emotion-scores. Stateless: `prepare` runs the batch's image frames through the engine
 * (one detector batch, one CNN batch), together with the batches other partitions' tasks hand in
 * meanwhile; frames an edge client has judged (NONE, SCORES) skip the engine. `process` maps each
 * result back to its record. A frame without a face gives `faceFound: false` (counted, not
 * dead-lettered); invalid edge scores are dead-lettered as INVALID_RECORD.
 */
export function createClassifierCore(
  engine: ClassifierEngine,
  metrics?: Metrics,
  options: {
    maxBatch?: number;
    concurrency?: number;
    prepareAhead?: number;
    /** Why a frame may not be taken as its key's user's (auth/frame-token.ts), checked before it reaches the model; none: every frame is. */
    authenticate?: (record: InputRecord) => Promise<EmotionMuseError | undefined>;
  } = {},
): ProcessorCore<never, Verdict> {
  const engineBatch = coalesce((frames: Frame[]) => engine.classify(frames), options.maxBatch ?? DEFAULT_MAX_INFERENCE_BATCH, options.concurrency ?? 1);
  const classify = async (frames: Frame[]): Promise<Verdict[]> => {
    const verdicts = frames.map(edgeVerdict);
    const images = frames.filter((_, i) => verdicts[i] === undefined);
    const results = images.length > 0 ? await engineBatch(images) : [];
    let k = 0;
    return verdicts.map((v) => {
      if (v) return v;
      const r = results[k++]!;
      return r instanceof EmotionMuseError ? r : { ...r, scoredAt: 'SERVER' as const, modelVersion: engine.modelVersion };
    });
  };
  return {
    name: 'classifier',
    // Inference is stateless: a partition's next frames may go to the model while its last ones are still there.
    prepareAhead: options.prepareAhead ?? DEFAULT_PREPARE_AHEAD,
    async prepare(records) {
      // A frame that fails its identity check is dead-lettered with its code and never classified.
      const refused = options.authenticate ? await Promise.all(records.map((r) => options.authenticate!(r))) : [];
      const allowed = records.filter((_, i) => !refused[i]);
      const classified = await classify(allowed.map((r) => r.value as Frame));
      let k = 0;
      const results = records.map((_, i) => refused[i] ?? classified[k++]!);
      if (metrics) {
        for (const r of results) {
          if (r instanceof EmotionMuseError) continue;
          if (r.scoredAt === 'EDGE') {
            if (!r.faceFound) metrics.facelessFrames.inc({ stage: 'classifier', source: 'edge' });
            continue;
          }
          metrics.stepSeconds.observe({ stage: 'classifier', step: 'decode' }, r.timings.decodeMs / 1000);
          metrics.stepSeconds.observe({ stage: 'classifier', step: 'preprocess' }, r.timings.preprocessMs / 1000);
          if (r.timings.detectMs > 0) metrics.stepSeconds.observe({ stage: 'classifier', step: 'detect' }, r.timings.detectMs / 1000);
          if (r.faceFound) metrics.stepSeconds.observe({ stage: 'classifier', step: 'infer' }, r.timings.inferMs / 1000);
          else metrics.facelessFrames.inc({ stage: 'classifier', source: 'server' });
        }
      }
      return results;
    },
    process(_state, record: InputRecord, result) {
      if (!result) throw new EmotionMuseError('PROCESSING_FAILED', 'no classifier result for this frame');
      if (result instanceof EmotionMuseError) throw result;
      const frame = record.value as Frame;
      const score: EmotionScore = {
        userId: frame.userId,
        sessionId: frame.sessionId,
        seq: frame.seq,
        captureTimeMs: frame.captureTimeMs,
        faceFound: result.faceFound,
        probabilities: result.probabilities,
        faceBox: result.faceBox,
        modelVersion: result.modelVersion,
        scoredAt: result.scoredAt,
        timings: result.timings,
        processedTimeMs: Date.now(),
      };
      metrics?.endToEnd.observe({ path: 'score' }, Math.max(0, score.processedTimeMs - frame.captureTimeMs) / 1000);
      return { state: undefined, outputs: [{ to: 'emotion-scores', key: record.key, value: score }] };
    },
    ready: () => ({ ready: true }),
  };
}
