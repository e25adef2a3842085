import { EmotionMuseError, errorMessage, type ErrorCode } from '../schemas/errors.ts';

export type FailureDecision =
  | { action: 'dead-letter'; code: ErrorCode; message: string }
  | { action: 'retry'; code: ErrorCode; message: string };

/**
 * The failure policy, per error code. `record`: what a record whose processing fails with the
 * code gets: the dead-letter topic (the record itself is bad), or a retry of its whole batch (a
 * service it needs failed: the record is valid and must not be dead-lettered). `attempts`: how
 * many times a batch failing with the code is tried before the processor stops (its partitions go
 * to another instance, and the failure is loud); `configured` is --max-batch-retries (0: for
 * ever, with backoff, while /readyz says the partition is stalled).
 */
export const FAILURE_POLICY: Readonly<Record<ErrorCode, { readonly record: 'dead-letter' | 'retry'; readonly attempts: number | 'configured' }>> = {
  NOT_SINGLE_OBJECT: { record: 'dead-letter', attempts: 'configured' },
  UNKNOWN_SCHEMA: { record: 'dead-letter', attempts: 'configured' },
  WRONG_SCHEMA_KIND: { record: 'dead-letter', attempts: 'configured' },
  MALFORMED_AVRO: { record: 'dead-letter', attempts: 'configured' },
  INVALID_RECORD: { record: 'dead-letter', attempts: 'configured' },
  OVERSIZED_RECORD: { record: 'dead-letter', attempts: 'configured' },
  UNDECODABLE_FRAME: { record: 'dead-letter', attempts: 'configured' },
  UNKNOWN_TRACK: { record: 'dead-letter', attempts: 'configured' },
  PROCESSING_FAILED: { record: 'dead-letter', attempts: 'configured' },
  TOKEN_MISSING: { record: 'dead-letter', attempts: 'configured' },
  TOKEN_INVALID: { record: 'dead-letter', attempts: 'configured' },
  TOKEN_EXPIRED: { record: 'dead-letter', attempts: 'configured' },
  TOKEN_WRONG_USER: { record: 'dead-letter', attempts: 'configured' },
  /** A service away (Redis down, a broker failing over): wait for it. */
  SERVICE_UNAVAILABLE: { record: 'retry', attempts: 'configured' },
  /** A service that answers but refuses (a Redis ACL without the permission, a wrong password): a retry will not fix the configuration for long. */
  SERVICE_REFUSED: { record: 'retry', attempts: 5 },
  CONFIG_INVALID: { record: 'retry', attempts: 1 },
};

/**
 * What happens to a record whose decoding or processing failed: the one place this is decided.
 * A domain error that a retry can help retries the batch; every other error, including
 * unexpected ones, sends the record to the dead-letter topic so the partition keeps moving.
 */
export function decideFailure(err: unknown): FailureDecision {
  if (err instanceof EmotionMuseError) {
    const retry = err.retriable || FAILURE_POLICY[err.code].record === 'retry';
    return { action: retry ? 'retry' : 'dead-letter', code: err.code, message: err.message };
  }
  return { action: 'dead-letter', code: 'PROCESSING_FAILED', message: errorMessage(err) };
}

/** The code a batch failed with: the first EmotionMuseError in the error's cause chain, else PROCESSING_FAILED. */
export function failureCode(err: unknown): ErrorCode {
  for (let e = err, depth = 0; e && depth < 5; depth++, e = (e as { cause?: unknown }).cause) if (e instanceof EmotionMuseError) return e.code;
  return 'PROCESSING_FAILED';
}

/** How many attempts a batch failing with `code` gets before the processor stops (Infinity: for ever). */
export function batchAttempts(code: ErrorCode, maxBatchRetries: number): number {
  const a = FAILURE_POLICY[code].attempts;
  if (a !== 'configured') return a;
  return maxBatchRetries > 0 ? maxBatchRetries : Infinity;
}
