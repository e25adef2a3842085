import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../cli/main.ts';
import { mintDevelopmentToken, parseTtl, TokenVerifier } from '../../auth/tokens.ts';

// A fresh secret per run: no secret, not even a test one, is written into the repository.
const SECRET = randomBytes(32).toString('hex');
const dir = mkdtempSync(path.join(tmpdir(), 'em-tokens-'));

describe('bearer tokens', () => {
  it('verifies a development token: the subject is the user, the expiry enforced', async () => {
    const verifier = await TokenVerifier.create({ secret: SECRET });
    const token = await mintDevelopmentToken({ secret: SECRET }, 'ana', 3600);
    const id = await verifier.verify(`Bearer ${token}`);
    expect(id.userId).toBe('ana');
    expect(id.expiresAtMs).toBeGreaterThan(Date.now() + 3500_000);
    const old = await mintDevelopmentToken({ secret: SECRET }, 'ana', 60, Date.now() - 3600_000);
    await expect(verifier.verify(old)).rejects.toMatchObject({ code: 'TOKEN_EXPIRED' });
  });

  it('refuses a missing token, another secret, an unsigned token, a token without subject or expiry, and a wrong issuer', async () => {
    const verifier = await TokenVerifier.create({ secret: SECRET, issuer: 'emotionmuse' });
    await expect(verifier.verify(undefined)).rejects.toMatchObject({ code: 'TOKEN_MISSING' });
    await expect(verifier.verify('Bearer ')).rejects.toMatchObject({ code: 'TOKEN_MISSING' });
    await expect(verifier.verify('not.a.jwt')).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    const other = await mintDevelopmentToken({ secret: `${SECRET}-other`, issuer: 'emotionmuse' }, 'ana', 600);
    await expect(verifier.verify(other)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    const unsigned = new UnsecuredJWT({ sub: 'ana' }).setIssuer('emotionmuse').setExpirationTime('1h').encode();
    await expect(verifier.verify(unsigned)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    const key = new TextEncoder().encode(SECRET);
    const noSub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuer('emotionmuse').setExpirationTime('1h').sign(key);
    await expect(verifier.verify(noSub)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    const noExp = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuer('emotionmuse').setSubject('ana').sign(key);
    await expect(verifier.verify(noExp)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    const wrongIssuer = await mintDevelopmentToken({ secret: SECRET, issuer: 'someone-else' }, 'ana', 600);
    await expect(verifier.verify(wrongIssuer)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
  });

  it('verifies RS256 tokens against a public key file, and ES256 tokens against a JWKS file by key id', async () => {
    const rsa = await generateKeyPair('RS256');
    const pem = path.join(dir, 'rsa.pem');
    writeFileSync(pem, await exportSPKI(rsa.publicKey));
    const rs = await TokenVerifier.create({ publicKeyFile: pem });
    const rsToken = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('bo').setExpirationTime('10m').sign(rsa.privateKey);
    expect((await rs.verify(rsToken)).userId).toBe('bo');
    // An HS256 token signed with the public key's text (the classic confusion) is refused.
    const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('bo').setExpirationTime('10m').sign(new TextEncoder().encode(await exportSPKI(rsa.publicKey)));
    await expect(rs.verify(confused)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });

    const ec = await generateKeyPair('ES256');
    const jwks = path.join(dir, 'jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
    const es = await TokenVerifier.create({ jwksFile: jwks });
    const esToken = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject('cy').setExpirationTime('10m').sign(ec.privateKey);
    expect((await es.verify(esToken)).userId).toBe('cy');
    const unknownKid = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k2' }).setSubject('cy').setExpirationTime('10m').sign(ec.privateKey);
    await expect(es.verify(unknownKid)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
  });

  it('needs exactly one key, and a secret of at least 32 bytes', async () => {
    await expect(TokenVerifier.create({})).rejects.toMatchObject({ code: 'AUTH_NOT_CONFIGURED' });
    await expect(TokenVerifier.create({ secret: 'short' })).rejects.toMatchObject({ code: 'AUTH_NOT_CONFIGURED' });
    await expect(TokenVerifier.create({ secret: SECRET, jwksFile: path.join(dir, 'jwks.json') })).rejects.toMatchObject({ code: 'AUTH_NOT_CONFIGURED' });
  });

  it('parses lifetimes', () => {
    expect([parseTtl('90s'), parseTtl('15m'), parseTtl('1h'), parseTtl('7d'), parseTtl('30')]).toEqual([90, 900, 3600, 604800, 30]);
    expect(() => parseTtl('soon')).toThrow(/not a duration/);
  });

  it('emotionmuse token prints a token that verifies, from a secret file, and never the secret', async () => {
    const file = path.join(dir, 'secret');
    writeFileSync(file, `${SECRET}\n`);
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((s: string) => void out.push(s));
    const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      expect(await main(['token', '--user', 'ana', '--ttl', '15m', '--jwt-secret-file', file])).toBe(0);
      expect(await main(['token', '--ttl', '15m', '--jwt-secret-file', file])).toBe(2);
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
    expect(out).toHaveLength(1);
    expect(out[0]).not.toContain(SECRET);
    const id = await (await TokenVerifier.create({ secretFile: file })).verify(out[0]);
    expect(id.userId).toBe('ana');
    expect(id.expiresAtMs - Date.now()).toBeLessThanOrEqual(900_000);
  });
});
