/**
 * Bearer tokens: one verifier for every place that must know who a caller is (the gateway, the
 * per-user HTTP routes), and development tokens. A token is a JWT whose `sub` is the user id, with
 * an expiry. The key comes from configuration, never from the token: an HS256 secret (from the
 * environment or a file), an RS256/ES256 public key (PEM file), or a JSON Web Key Set file.
 */
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors, importSPKI, jwtVerify, SignJWT, type JWTVerifyGetKey, type KeyObject } from 'jose';

/** Why a token was refused: missing, unreadable or badly signed, expired, or no key configured. */
export const AuthErrorCodes = ['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'AUTH_NOT_CONFIGURED'] as const;
export type AuthErrorCode = (typeof AuthErrorCodes)[number];

export class AuthError extends Error {
  constructor(
    readonly code: AuthErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface TokenConfig {
  /** HS256 shared secret (at least 32 bytes). */
  readonly secret?: string;
  /** File holding the HS256 secret (its trimmed contents). */
  readonly secretFile?: string;
  /** PEM file of an RS256 or ES256 public key. */
  readonly publicKeyFile?: string;
  /** JSON Web Key Set file (keys chosen by the token's `kid`). */
  readonly jwksFile?: string;
  /** When set, a token's `iss` must equal it. */
  readonly issuer?: string;
  /** When set, a token's `aud` must hold it. */
  readonly audience?: string;
  /** Seconds of clock difference allowed at the expiry. @defaultValue 5 */
  readonly clockToleranceSeconds?: number;
}

export interface Identity {
  readonly userId: string;
  /** Unix epoch milliseconds. */
  readonly expiresAtMs: number;
  /** The token itself (a gateway forwards it with its user's frames: auth/frame-token.ts). */
  readonly token: string;
}

/** User ids: 1 to 128 characters, no control characters. */
const USER_ID = /^[^\u0000-\u001f\u007f]{1,128}$/;
export const MIN_SECRET_BYTES = 32;

type Key = { readonly kind: 'secret'; readonly key: Uint8Array } | { readonly kind: 'public'; readonly key: KeyObject | CryptoKey; readonly algorithms: string[] } | { readonly kind: 'jwks'; readonly key: JWTVerifyGetKey };

function readSecret(config: TokenConfig): Uint8Array | undefined {
  const text = config.secret ?? (config.secretFile ? readFileSync(config.secretFile, 'utf8').trim() : undefined);
  if (text === undefined || text === '') return undefined;
  const bytes = new TextEncoder().encode(text);
  if (bytes.length < MIN_SECRET_BYTES) throw new AuthError('AUTH_NOT_CONFIGURED', `the HS256 secret must have at least ${MIN_SECRET_BYTES} bytes`);
  return bytes;
}

/** Checks tokens against the one key the configuration names. */
export class TokenVerifier {
  private constructor(
    private readonly key: Key,
    private readonly config: TokenConfig,
  ) {}

  /** What the configuration names: exactly one of a secret (or its file), a public key file, a JWKS file. */
  static async create(config: TokenConfig): Promise<TokenVerifier> {
    const secret = readSecret(config);
    const named = [secret, config.publicKeyFile, config.jwksFile].filter((k) => k !== undefined && k !== '').length;
    if (named !== 1) throw new AuthError('AUTH_NOT_CONFIGURED', `configure exactly one token key (an HS256 secret or secret file, a public key file, or a JWKS file); ${named} given`);
    if (secret) return new TokenVerifier({ kind: 'secret', key: secret }, config);
    if (config.publicKeyFile) {
      const pem = readFileSync(config.publicKeyFile, 'utf8');
      // The key's type decides the algorithm: RSA keys verify RS256, EC P-256 keys ES256.
      for (const alg of ['RS256', 'ES256']) {
        try {
          return new TokenVerifier({ kind: 'public', key: await importSPKI(pem, alg), algorithms: [alg] }, config);
        } catch {
          // not this algorithm's key
        }
      }
      throw new AuthError('AUTH_NOT_CONFIGURED', `${config.publicKeyFile} holds no RSA or EC P-256 public key (PEM, SPKI)`);
    }
    const jwks = JSON.parse(readFileSync(config.jwksFile!, 'utf8')) as Parameters<typeof createLocalJWKSet>[0];
    return new TokenVerifier({ kind: 'jwks', key: createLocalJWKSet(jwks) }, config);
  }

  /**
   * The identity in a token (or an `Authorization: Bearer ...` header value). Throws AuthError:
   * TOKEN_MISSING, TOKEN_EXPIRED, or TOKEN_INVALID (bad signature, another algorithm, no `sub`
   * or `exp`, wrong issuer or audience, a malformed user id).
   */
  async verify(tokenOrHeader: string | undefined | null, o: { graceSeconds?: number } = {}): Promise<Identity> {
    const token = (tokenOrHeader ?? '').replace(/^Bearer\s+/i, '').trim();
    if (!token) throw new AuthError('TOKEN_MISSING', 'no bearer token');
    const options = {
      algorithms: this.key.kind === 'secret' ? ['HS256'] : this.key.kind === 'public' ? this.key.algorithms : ['RS256', 'ES256'],
      issuer: this.config.issuer,
      audience: this.config.audience,
      clockTolerance: (this.config.clockToleranceSeconds ?? 5) + (o.graceSeconds ?? 0),
      requiredClaims: ['sub', 'exp'],
    };
    try {
      const { payload } =
        this.key.kind === 'jwks' ? await jwtVerify(token, this.key.key, options) : await jwtVerify(token, this.key.key, options);
      const userId = payload.sub!;
      if (!USER_ID.test(userId)) throw new AuthError('TOKEN_INVALID', 'the token\'s subject is not a valid user id');
      return { userId, expiresAtMs: payload.exp! * 1000, token };
    } catch (err) {
      if (err instanceof AuthError) throw err;
      if (err instanceof errors.JWTExpired) throw new AuthError('TOKEN_EXPIRED', 'the token has expired');
      // jose's messages say what failed without echoing the token.
      throw new AuthError('TOKEN_INVALID', `the token was refused: ${(err as Error).message}`);
    }
  }
}

/** Parses a duration: `90s`, `15m`, `1h`, `7d`, or plain seconds. */
export function parseTtl(text: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration (like 90s, 15m, 1h, 7d)`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

/** A development token: HS256 over the configured secret, `sub` the user, expiring after `ttlSeconds`. */
export async function mintDevelopmentToken(config: TokenConfig, userId: string, ttlSeconds: number, now = Date.now()): Promise<string> {
  const secret = readSecret(config);
  if (!secret) throw new AuthError('AUTH_NOT_CONFIGURED', 'development tokens are signed with the HS256 secret: set EM_JWT_SECRET or EM_JWT_SECRET_FILE');
  if (!USER_ID.test(userId)) throw new AuthError('TOKEN_INVALID', 'a user id has 1 to 128 characters and no control characters');
  if (!(ttlSeconds > 0)) throw new Error('the lifetime must be positive');
  const iat = Math.floor(now / 1000);
  let jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(userId).setIssuedAt(iat).setExpirationTime(iat + ttlSeconds);
  if (config.issuer) jwt = jwt.setIssuer(config.issuer);
  if (config.audience) jwt = jwt.setAudience(config.audience);
  return jwt.sign(secret);
}
