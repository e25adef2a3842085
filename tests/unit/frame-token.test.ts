import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FRAME_TOKEN_HEADER, FrameTokenChecker } from '../../auth/frame-token.ts';
import { mintDevelopmentToken, TokenVerifier } from '../../auth/tokens.ts';

describe('frame tokens (auth/frame-token.ts)', () => {
  it('takes a frame whose token is its key\'s user, refuses each other case with its code, and verifies a token\'s signature once', async () => {
    const secret = randomBytes(32).toString('hex');
    const verifier = await TokenVerifier.create({ secret });
    let verifications = 0;
    const counting = { verify: (t: string, o: { graceSeconds?: number }) => (verifications++, verifier.verify(t, o)) } as unknown as TokenVerifier;
    let now = Date.now();
    const checker = new FrameTokenChecker(counting, 60, 2, () => now);
    const h = (t: string) => ({ [FRAME_TOKEN_HEADER]: Buffer.from(t) });
    const ana = await mintDevelopmentToken({ secret }, 'ana', 600);
    expect(await checker.check(h(ana), 'ana')).toBeUndefined();
    expect(await checker.check(h(ana), 'ana')).toBeUndefined();
    expect(verifications).toBe(1);
    expect(await checker.check(h(ana), 'bea')).toMatchObject({ code: 'TOKEN_WRONG_USER' });
    expect(await checker.check(undefined, 'ana')).toMatchObject({ code: 'TOKEN_MISSING' });
    expect(await checker.check(h('x.y.z'), 'ana')).toMatchObject({ code: 'TOKEN_INVALID' });
    expect(await checker.check(h(await mintDevelopmentToken({ secret: randomBytes(32).toString('hex') }, 'ana', 600)), 'ana')).toMatchObject({ code: 'TOKEN_INVALID' });
    expect(await checker.check(h(await mintDevelopmentToken({ secret }, 'ana', 60, Date.now() - 3600_000)), 'ana')).toMatchObject({ code: 'TOKEN_EXPIRED' });
    // A remembered token expires too: within the grace it passes, past it it is refused.
    now += 600_000 + 30_000;
    expect(await checker.check(h(ana), 'ana')).toBeUndefined();
    now += 60_000;
    expect(await checker.check(h(ana), 'ana')).toMatchObject({ code: 'TOKEN_EXPIRED' });
  });
});
