import { EmotionMuseError, errorMessage, type ErrorCode } from '../schemas/errors.ts';

export type FailureDecision =
  | { action: 'dead-letter'; code: ErrorCode; message: string }
  | { action: 'retry'; message: string };

/**
 * What happens to a record whose decoding or processing failed: the one place this is decided.
 * A domain error that a retry can help (a service away) retries the batch; every other error,
 * including unexpected ones, sends the record to the dead-letter topic so the partition keeps moving.
 */
export function decideFailure(err: unknown): FailureDecision {
  if (err instanceof EmotionMuseError) {
    return err.retriable ? { action: 'retry', message: err.message } : { action: 'dead-letter', code: err.code, message: err.message };
  }
  return { action: 'dead-letter', code: 'PROCESSING_FAILED', message: errorMessage(err) };
}
