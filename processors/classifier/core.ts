import { coalesce } from '../../runtime/coalesce.ts';
import { EmotionMuseError } from '../../runtime/errors.ts';
import type { Metrics } from '../../runtime/metrics.ts';
import type { InputRecord, ProcessorCore } from '../../runtime/processor.ts';
import type { EmotionScore, Frame } from '../../schemas/generated/types.ts';
import type { ClassifierEngine, FrameResult } from './engine.ts';

/**
 * frames -> emotion-scores. Stateless: `prepare` runs the batch through the engine (one detector
 * batch, one CNN batch), together with the batches other partitions' tasks hand in meanwhile;
 * `process` maps each result back to its record. A frame without a face gives
 * `faceFound: false` (counted, not dead-lettered).
 */
export function createClassifierCore(engine: ClassifierEngine, metrics?: Metrics, options: { maxBatch?: number; concurrency?: number; prepareAhead?: number } = {}): ProcessorCore<never, FrameResult> {
  const classify = coalesce((frames: Frame[]) => engine.classify(frames), options.maxBatch ?? 64, options.concurrency ?? 1);
  return {
    name: 'classifier',
    // Inference is stateless: a partition's next frames may go to the model while its last ones are still there.
    prepareAhead: options.prepareAhead ?? 4,
    async prepare(records) {
      const results = await classify(records.map((r) => r.value as Frame));
      if (metrics) {
        for (const r of results) {
          if (r instanceof EmotionMuseError) continue;
          metrics.stepSeconds.observe({ stage: 'classifier', step: 'decode' }, r.timings.decodeMs / 1000);
          metrics.stepSeconds.observe({ stage: 'classifier', step: 'preprocess' }, r.timings.preprocessMs / 1000);
          if (r.timings.detectMs > 0) metrics.stepSeconds.observe({ stage: 'classifier', step: 'detect' }, r.timings.detectMs / 1000);
          if (r.faceFound) metrics.stepSeconds.observe({ stage: 'classifier', step: 'infer' }, r.timings.inferMs / 1000);
          else metrics.skipped.inc({ stage: 'classifier', reason: 'no-face' });
        }
      }
      return results;
    },
    process(_state, record: InputRecord, result) {
      if (!result) throw new EmotionMuseError('PROCESSING_FAILED', 'no classifier result for this frame');
      const frame = record.value as Frame;
      const score: EmotionScore = {
        userId: frame.userId,
        sessionId: frame.sessionId,
        seq: frame.seq,
        captureTimeMs: frame.captureTimeMs,
        faceFound: result.faceFound,
        probabilities: result.probabilities,
        faceBox: result.faceBox,
        modelVersion: engine.modelVersion,
        timings: result.timings,
        processedTimeMs: Date.now(),
      };
      metrics?.endToEnd.observe({ path: 'score' }, Math.max(0, score.processedTimeMs - frame.captureTimeMs) / 1000);
      return { state: undefined, outputs: [{ to: 'emotion-scores', key: record.key, value: score }] };
    },
    ready: () => ({ ready: true }),
  };
}
