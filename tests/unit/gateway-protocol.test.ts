import { describe, expect, it } from 'vitest';
import { InFlight, TokenBucket } from '../../gateway/limits.ts';
import { decodeFrame, encodeFrame, HEADER_BYTES, ProtocolError, type StreamFrame } from '../../gateway/protocol.ts';
import { parseListen } from '../../gateway/server.ts';
import type { TrackCatalogue } from '../../processors/recommender/catalogue.ts';

const base = { seq: 7, captureTimeMs: 1_764_000_000_123.5, width: 0, height: 0, faceBox: null, data: new Uint8Array(0) } as const;
const refusal = (bytes: Uint8Array) => {
  try {
    decodeFrame(bytes);
    return undefined;
  } catch (err) {
    return err instanceof ProtocolError ? err.code : String(err);
  }
};

describe('the /v1/stream binary protocol', () => {
  it('round-trips every kind: crop pixels, scores and model version, no-face markers, JPEG bytes, face boxes', () => {
    const crop: StreamFrame = { ...base, kind: 'GRAY8', width: 48, height: 48, faceBox: { x: 10.5, y: 20, width: 100, height: 110 }, data: Uint8Array.from({ length: 2304 }, (_, i) => i % 251) };
    const back = decodeFrame(encodeFrame(crop));
    expect(back).toMatchObject({ kind: 'GRAY8', seq: 7, captureTimeMs: 1_764_000_000_123.5, width: 48, height: 48, faceBox: { x: 10.5, y: 20, width: 100, height: 110 } });
    expect(Buffer.compare(Buffer.from(back.data), Buffer.from(crop.data))).toBe(0);
    expect(encodeFrame(crop).length).toBe(HEADER_BYTES + 2304);

    const scores = decodeFrame(encodeFrame({ ...base, kind: 'SCORES', probabilities: [0.1, 0, 0, 0.7, 0.2, 0, 0], modelVersion: 'emotion-ft48-int8 é' }));
    expect(scores.kind).toBe('SCORES');
    expect(scores.modelVersion).toBe('emotion-ft48-int8 é');
    scores.probabilities!.forEach((p, i) => expect(p).toBeCloseTo([0.1, 0, 0, 0.7, 0.2, 0, 0][i]!, 6));
    expect(scores.data.length).toBe(0);

    expect(decodeFrame(encodeFrame({ ...base, kind: 'NONE' }))).toMatchObject({ kind: 'NONE', faceBox: null });
    const jpeg = Uint8Array.from([0xff, 0xd8, 1, 2, 3]);
    expect(Array.from(decodeFrame(encodeFrame({ ...base, kind: 'JPEG', data: jpeg })).data)).toEqual(Array.from(jpeg));
  });

  it('refuses malformed messages with a code, and names the sequence number when the header was readable', () => {
    const good = encodeFrame({ ...base, kind: 'GRAY8', width: 2, height: 2, data: new Uint8Array(4) });
    expect(refusal(good.subarray(0, 10))).toBe('BAD_MESSAGE');
    const wrongMagic = good.slice();
    wrongMagic[0] = 0;
    expect(refusal(wrongMagic)).toBe('BAD_MESSAGE');
    const wrongVersion = good.slice();
    wrongVersion[1] = 9;
    expect(refusal(wrongVersion)).toBe('BAD_MESSAGE');
    const wrongKind = good.slice();
    wrongKind[2] = 42;
    expect(refusal(wrongKind)).toBe('BAD_MESSAGE');
    expect(refusal(good.subarray(0, good.length - 1))).toBe('BAD_FRAME');
    expect(refusal(encodeFrame({ ...base, seq: 0, kind: 'NONE' }))).toBe('BAD_FRAME');
    expect(refusal(encodeFrame({ ...base, captureTimeMs: Number.NaN, kind: 'NONE' }))).toBe('BAD_FRAME');
    expect(refusal(encodeFrame({ ...base, kind: 'NONE', faceBox: { x: 0, y: 0, width: -3, height: 4 } }))).toBe('BAD_FRAME');
    expect(refusal(encodeFrame({ ...base, kind: 'JPEG' }))).toBe('BAD_FRAME');
    const noneWithBytes = new Uint8Array(HEADER_BYTES + 3);
    noneWithBytes.set(encodeFrame({ ...base, kind: 'NONE' }));
    expect(refusal(noneWithBytes)).toBe('BAD_FRAME');
    try {
      decodeFrame(good.subarray(0, good.length - 1));
    } catch (err) {
      expect((err as ProtocolError).seq).toBe(7);
    }
  });
});

describe('gateway limits', () => {
  it('a token bucket gives its burst, then `rate` a second, and says how long to wait', () => {
    let now = 0;
    const bucket = new TokenBucket(10, 10, () => now);
    for (let i = 0; i < 10; i++) expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    expect(bucket.waitMs()).toBe(100);
    now = 250;
    expect([bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, false]);
    expect(bucket.full).toBe(false);
    now = 10_000;
    expect(bucket.full).toBe(true);
  });

  it('an in-flight bound calls its waiters back once half of it is done, and a cancelled waiter never', () => {
    const inFlight = new InFlight(4);
    inFlight.add(4);
    expect(inFlight.full).toBe(true);
    const calls: string[] = [];
    inFlight.onRoom(() => calls.push('a'));
    const cancel = inFlight.onRoom(() => calls.push('b'));
    cancel();
    inFlight.done();
    expect(calls).toEqual([]);
    inFlight.done();
    expect(calls).toEqual(['a']);
    inFlight.done();
    expect(calls).toEqual(['a']);
  });
});

describe('POST /v1/me/listens bodies', () => {
  const catalogue = { indexOf: new Map([['t1', 0]]) } as unknown as TrackCatalogue;
  const code = (body: unknown) => {
    try {
      parseListen(body, 'ana', catalogue, 1_000_000);
      return 'ok';
    } catch (err) {
      return (err as { code: string }).code;
    }
  };

  it('takes the user from the token, fills defaults, and refuses unknown tracks and bad fields with codes', () => {
    expect(parseListen({ trackId: 't1', userId: 'mallory' }, 'ana', catalogue, 1_000_000)).toMatchObject({ userId: 'ana', trackId: 't1', listenedMs: 30_000, outcome: 'COMPLETED', startTimeMs: 1_000_000 });
    expect(code({ trackId: 'nope' })).toBe('UNKNOWN_TRACK');
    expect(code({})).toBe('BAD_REQUEST');
    expect(code('t1')).toBe('BAD_REQUEST');
    expect(code({ trackId: 't1', listenedMs: -1 })).toBe('BAD_REQUEST');
    expect(code({ trackId: 't1', listenedMs: 1.5 })).toBe('BAD_REQUEST');
    expect(code({ trackId: 't1', outcome: 'LOVED' })).toBe('BAD_REQUEST');
    expect(code({ trackId: 't1', startTimeMs: 1_000_000 + 30 * 86_400_000 })).toBe('BAD_REQUEST');
  });
});
