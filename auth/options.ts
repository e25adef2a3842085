import { opt } from '../runtime/config.ts';
import type { TokenConfig } from './tokens.ts';

/**
 * Where a verifier's key comes from. The HS256 secret itself is read from the EM_JWT_SECRET
 * environment variable only (a flag would show in process lists); the other settings are files
 * or names, so flags are fine.
 */
export const tokenKeyOptions = {
  jwtSecretFile: opt.string('EM_JWT_SECRET_FILE', 'jwt-secret-file', '', 'File holding the HS256 token secret (or set EM_JWT_SECRET)'),
  jwtPublicKeyFile: opt.string('EM_JWT_PUBLIC_KEY_FILE', 'jwt-public-key-file', '', 'PEM file of the RS256 or ES256 public key that verifies tokens'),
  jwtJwksFile: opt.string('EM_JWT_JWKS_FILE', 'jwt-jwks-file', '', 'JSON Web Key Set file that verifies tokens'),
  jwtIssuer: opt.string('EM_JWT_ISSUER', 'jwt-issuer', '', 'Issuer (iss) every token must have (none: not checked)'),
  jwtAudience: opt.string('EM_JWT_AUDIENCE', 'jwt-audience', '', 'Audience (aud) every token must hold (none: not checked)'),
};

/** The token configuration of a loaded option set; undefined fields where nothing is configured. */
export function tokenConfigOf(c: { jwtSecretFile: string; jwtPublicKeyFile: string; jwtJwksFile: string; jwtIssuer: string; jwtAudience: string }, env: NodeJS.ProcessEnv = process.env): TokenConfig {
  return {
    secret: c.jwtSecretFile ? undefined : env.EM_JWT_SECRET || undefined,
    secretFile: c.jwtSecretFile || undefined,
    publicKeyFile: c.jwtPublicKeyFile || undefined,
    jwksFile: c.jwtJwksFile || undefined,
    issuer: c.jwtIssuer || undefined,
    audience: c.jwtAudience || undefined,
  };
}

/** Whether any token key is configured at all. */
export function hasTokenKey(t: TokenConfig): boolean {
  return Boolean(t.secret || t.secretFile || t.publicKeyFile || t.jwksFile);
}
