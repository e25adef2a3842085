import type http from 'node:http';
import { AuthError, type TokenVerifier } from './tokens.ts';

export interface Refusal {
  readonly status: 401 | 403;
  readonly body: { readonly error: string; readonly code: string };
}

/**
 * Whether a request may read `userId`'s data: its bearer token must verify and name that user.
 * Returns the refusal to send (401 without a valid token or without a configured key, 403 for
 * another user's token), or undefined when the request may go on.
 */
export async function authorizeUser(verifier: TokenVerifier | undefined, req: http.IncomingMessage, userId: string): Promise<Refusal | undefined> {
  if (!verifier) return { status: 401, body: { code: 'AUTH_NOT_CONFIGURED', error: 'this route needs a bearer token, and no token key is configured (EM_JWT_SECRET, EM_JWT_SECRET_FILE, EM_JWT_PUBLIC_KEY_FILE or EM_JWT_JWKS_FILE)' } };
  try {
    const identity = await verifier.verify(req.headers.authorization);
    if (identity.userId !== userId) return { status: 403, body: { code: 'FORBIDDEN', error: 'the token is for another user' } };
    return undefined;
  } catch (err) {
    if (err instanceof AuthError) return { status: 401, body: { code: err.code, error: err.message } };
    throw err;
  }
}
