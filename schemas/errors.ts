/**
 * Error codes of the whole pipeline. Every dead-lettered record carries one of these,
 * and the dead-letter counter is labelled by it.
 */
export const ErrorCodes = [
  'NOT_SINGLE_OBJECT',
  'UNKNOWN_SCHEMA',
  'WRONG_SCHEMA_KIND',
  'MALFORMED_AVRO',
  'INVALID_RECORD',
  'OVERSIZED_RECORD',
  'UNDECODABLE_FRAME',
  'UNKNOWN_TRACK',
  'PROCESSING_FAILED',
  'CONFIG_INVALID',
  'SERVICE_UNAVAILABLE',
  'SERVICE_REFUSED',
  /** A frame without its user's bearer token (the em-token header), where the classifier requires one. */
  'TOKEN_MISSING',
  /** A frame whose token is not signed by the configured key, is malformed, or fails a claim. */
  'TOKEN_INVALID',
  /** A frame whose token had expired (past its grace) when the classifier read it. */
  'TOKEN_EXPIRED',
  /** A frame whose token is another user's than the record's key. */
  'TOKEN_WRONG_USER',
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

/** A domain error: a code from {@link ErrorCodes}, whether a retry can help, and the cause it wraps. */
export class EmotionMuseError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'EmotionMuseError';
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** A message that failed to decode against the known schemas. Never retriable: the bytes will not change. */
export class DecodeError extends EmotionMuseError {
  constructor(code: ErrorCode, message: string, cause?: unknown) {
    super(code, message, { retriable: false, cause });
    this.name = 'DecodeError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
