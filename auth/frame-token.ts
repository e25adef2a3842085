import type { IHeaders } from 'kafkajs';
import { EmotionMuseError } from '../schemas/errors.ts';
import { AuthError, type TokenVerifier } from './tokens.ts';

/**
 * Identity travels with each frame: the writer of a frame record (an edge client straight to
 * Kafka, or the gateway for its sockets) puts its user's bearer token in this header, and the
 * classifier checks it (signature, expiry, and `sub` equal to the record's key) before the frame
 * reaches the model. A shared Kafka principal may write the frames topic; the token says for whom.
 */
export const FRAME_TOKEN_HEADER = 'em-token';

/** The header of a frame record written for the token's user. */
export function frameTokenHeaders(token: string | undefined): IHeaders | undefined {
  return token ? { [FRAME_TOKEN_HEADER]: token } : undefined;
}

/**
 * Why a frame record may not be taken as its key's user's, or undefined when it may: TOKEN_MISSING,
 * TOKEN_INVALID, TOKEN_EXPIRED (more than `graceSeconds` past its expiry now: a backlog read late
 * still passes within the grace) or TOKEN_WRONG_USER. Never echoes the token.
 */
export async function frameTokenProblem(verifier: TokenVerifier, headers: IHeaders | undefined, key: string, graceSeconds: number): Promise<EmotionMuseError | undefined> {
  const raw = headers?.[FRAME_TOKEN_HEADER];
  const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
  const token = value === undefined ? '' : value.toString();
  try {
    const identity = await verifier.verify(token, { graceSeconds });
    if (identity.userId !== key) return new EmotionMuseError('TOKEN_WRONG_USER', `the frame's token is for another user than its key "${key.slice(0, 64)}"`);
    return undefined;
  } catch (err) {
    if (err instanceof AuthError && (err.code === 'TOKEN_MISSING' || err.code === 'TOKEN_EXPIRED' || err.code === 'TOKEN_INVALID')) {
      return new EmotionMuseError(err.code, err.code === 'TOKEN_MISSING' ? `the frame carries no ${FRAME_TOKEN_HEADER} header (its user's bearer token)` : `frame token: ${err.message}`);
    }
    return new EmotionMuseError('TOKEN_INVALID', `frame token: ${err instanceof Error ? err.message : String(err)}`);
  }
}
