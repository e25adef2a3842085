import { EmotionMuseError } from '../runtime/errors.ts';

/** How far the 7 probabilities may sum from 1 (float32 softmax outputs, rounded on the way). */
export const PROBABILITY_SUM_TOLERANCE = 0.01;
export const MAX_MODEL_VERSION_LENGTH = 128;

/**
 * Checks probabilities scored on a device: seven finite numbers in [0, 1] summing to 1 within
 * the tolerance, and a model version of 1 to 128 characters. Throws INVALID_RECORD otherwise.
 */
export function checkEdgeScores(probabilities: readonly number[], modelVersion: string): void {
  if (probabilities.length !== 7) throw new EmotionMuseError('INVALID_RECORD', `edge scores hold ${probabilities.length} probabilities, not 7`);
  let sum = 0;
  for (const p of probabilities) {
    if (!Number.isFinite(p) || p < 0 || p > 1) throw new EmotionMuseError('INVALID_RECORD', `edge score ${p} is not a probability`);
    sum += p;
  }
  if (Math.abs(sum - 1) > PROBABILITY_SUM_TOLERANCE) throw new EmotionMuseError('INVALID_RECORD', `edge probabilities sum to ${sum.toFixed(4)}, not 1`);
  if (modelVersion.length === 0 || modelVersion.length > MAX_MODEL_VERSION_LENGTH) throw new EmotionMuseError('INVALID_RECORD', `edge model version must have 1 to ${MAX_MODEL_VERSION_LENGTH} characters`);
}
