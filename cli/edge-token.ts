import { readFileSync } from 'node:fs';
import { tokenKeyOptions } from '../auth/options.ts';
import { mintDevelopmentToken } from '../auth/tokens.ts';
import { opt } from '../runtime/config.ts';

/**
 * Where an edge command (publish, replay, the pipeline's demo users) gets the bearer token it
 * sends with each frame (auth/frame-token.ts): EM_EDGE_TOKEN, or --token-file; else, on a
 * development machine that has the token secret (EM_JWT_SECRET or --jwt-secret-file), a token
 * made for each user; else none (a classifier that requires tokens then dead-letters the frames
 * as TOKEN_MISSING).
 */
export const edgeTokenOptions = {
  tokenFile: opt.string('EM_EDGE_TOKEN_FILE', 'token-file', '', 'File holding the user\'s bearer token, sent with every frame (or set EM_EDGE_TOKEN); without either, a development token is made for each user when the token secret is at hand (EM_JWT_SECRET or --jwt-secret-file)'),
  jwtSecretFile: tokenKeyOptions.jwtSecretFile,
};

/** Each user's token for their frames (undefined: none to send). The token itself is never printed. */
export function edgeTokens(c: { tokenFile: string; jwtSecretFile: string }, env: NodeJS.ProcessEnv = process.env): (userId: string) => Promise<string | undefined> {
  const given = env.EM_EDGE_TOKEN || (c.tokenFile ? readFileSync(c.tokenFile, 'utf8').trim() : '');
  if (given) return async () => given;
  const secretFile = c.jwtSecretFile || env.EM_JWT_SECRET_FILE || '';
  const secret = secretFile ? undefined : env.EM_JWT_SECRET || undefined;
  if (!secret && !secretFile) return async () => undefined;
  const made = new Map<string, Promise<string>>();
  return (userId) => {
    if (!made.has(userId)) made.set(userId, mintDevelopmentToken({ secret, secretFile: secretFile || undefined }, userId, 12 * 3600));
    return made.get(userId)!;
  };
}
