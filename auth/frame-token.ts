import type { IHeaders } from 'kafkajs';
import { EmotionMuseError } from '../schemas/errors.ts';
import { AuthError, type Identity, type TokenVerifier } from './tokens.ts';

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
 * Checks frame tokens for a classifier. A client sends the same token with every frame, so a
 * token whose signature passed is remembered (up to `maxRemembered`, the oldest forgotten first)
 * and only its expiry and user are checked again: the signature is verified once per token, not
 * once per frame.
 */
export class FrameTokenChecker {
  private readonly known = new Map<string, { userId: string; expiresAtMs: number }>();

  constructor(
    private readonly verifier: TokenVerifier,
    private readonly graceSeconds: number,
    private readonly maxRemembered = 10_000,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Why a frame record may not be taken as its key's user's, or undefined when it may:
   * TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED (more than the grace past its expiry now: a
   * backlog read late still passes within it) or TOKEN_WRONG_USER. Never echoes the token.
   */
  async check(headers: IHeaders | undefined, key: string): Promise<EmotionMuseError | undefined> {
    const token = headerToken(headers);
    let seen = this.known.get(token);
    // A remembered token's expiry does not move: past it (and the grace) it is refused as jose would.
    if (seen && this.clock() > seen.expiresAtMs + this.graceSeconds * 1000) return new EmotionMuseError('TOKEN_EXPIRED', 'frame token: the token has expired');
    if (!seen) {
      const identity = await verifyFrameToken(this.verifier, token, this.graceSeconds);
      if (identity instanceof EmotionMuseError) return identity;
      if (this.known.size >= this.maxRemembered) this.known.delete(this.known.keys().next().value!);
      this.known.set(token, (seen = { userId: identity.userId, expiresAtMs: identity.expiresAtMs }));
    }
    return seen.userId === key ? undefined : wrongUser(key);
  }
}

function headerToken(headers: IHeaders | undefined): string {
  const raw = headers?.[FRAME_TOKEN_HEADER];
  const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
  return value === undefined ? '' : value.toString();
}

const wrongUser = (key: string) => new EmotionMuseError('TOKEN_WRONG_USER', `the frame's token is for another user than its key "${key.slice(0, 64)}"`);

/** The token's identity, or the error a frame carrying it is dead-lettered with. */
async function verifyFrameToken(verifier: TokenVerifier, token: string, graceSeconds: number): Promise<Identity | EmotionMuseError> {
  try {
    return await verifier.verify(token, { graceSeconds });
  } catch (err) {
    if (err instanceof AuthError && (err.code === 'TOKEN_MISSING' || err.code === 'TOKEN_EXPIRED' || err.code === 'TOKEN_INVALID')) {
      return new EmotionMuseError(err.code, err.code === 'TOKEN_MISSING' ? `the frame carries no ${FRAME_TOKEN_HEADER} header (its user's bearer token)` : `frame token: ${err.message}`);
    }
    return new EmotionMuseError('TOKEN_INVALID', `frame token: ${err instanceof Error ? err.message : String(err)}`);
  }
}
