import { EmotionMuseError } from '../schemas/errors.ts';
import { probabilitiesProblem } from '../schemas/validate.ts';

export { PROBABILITY_SUM_TOLERANCE } from '../schemas/validate.ts';
export const MAX_MODEL_VERSION_LENGTH = 128;

/**
 * Checks probabilities scored on a device: seven finite numbers in [0, 1] summing to 1 within
 * the tolerance, and a model version of 1 to 128 characters. Throws INVALID_RECORD otherwise.
 */
export function checkEdgeScores(probabilities: readonly number[], modelVersion: string): void {
  const problem = probabilitiesProblem('edge probabilities', probabilities);
  if (problem) throw new EmotionMuseError('INVALID_RECORD', problem);
  if (modelVersion.length === 0 || modelVersion.length > MAX_MODEL_VERSION_LENGTH) throw new EmotionMuseError('INVALID_RECORD', `edge model version must have 1 to ${MAX_MODEL_VERSION_LENGTH} characters`);
}
