import { describe, expect, it } from 'vitest';
import { EmotionMuseError, ErrorCodes } from '../../schemas/errors.ts';
import { batchAttempts, decideFailure, FAILURE_POLICY, failureCode } from '../../runtime/failure-policy.ts';
import type { InputRecord } from '../../runtime/processor.ts';
import { createPassthroughCore, type PassthroughState } from '../../processors/passthrough/core.ts';
import type { Frame } from '../../schemas/generated/types.ts';

const frame = (seq: number, sessionId = 's1', extra: Partial<Frame> = {}): InputRecord<Frame> => ({
  topic: 'frames', topicName: 'frames.v1', partition: 0, offset: String(seq), key: 'u1', timestamp: 0,
  value: { userId: 'u1', sessionId, seq, captureTimeMs: seq * 100, encoding: 'GRAY8', width: 2, height: 2, data: Buffer.alloc(4), faceBox: null, probabilities: [], edgeModelVersion: '', ...extra },
});

describe('passthrough core', () => {
  it.each([
    { name: 'first frame', state: undefined, input: frame(1), forwarded: true, next: { sessionId: 's1', lastSeq: 1, forwarded: 1 } },
    { name: 'next frame', state: { sessionId: 's1', lastSeq: 1, forwarded: 1 }, input: frame(2), forwarded: true, next: { sessionId: 's1', lastSeq: 2, forwarded: 2 } },
    { name: 'gap in sequence is fine', state: { sessionId: 's1', lastSeq: 2, forwarded: 2 }, input: frame(9), forwarded: true, next: { sessionId: 's1', lastSeq: 9, forwarded: 3 } },
    { name: 'duplicate', state: { sessionId: 's1', lastSeq: 2, forwarded: 2 }, input: frame(2), forwarded: false, next: { sessionId: 's1', lastSeq: 2, forwarded: 2 } },
    { name: 'late frame', state: { sessionId: 's1', lastSeq: 5, forwarded: 5 }, input: frame(3), forwarded: false, next: { sessionId: 's1', lastSeq: 5, forwarded: 5 } },
    { name: 'new session starts over', state: { sessionId: 's1', lastSeq: 5, forwarded: 5 }, input: frame(1, 's2'), forwarded: true, next: { sessionId: 's2', lastSeq: 1, forwarded: 1 } },
  ])('$name', ({ state, input, forwarded, next }) => {
    const skipped: string[] = [];
    const core = createPassthroughCore({ onSkip: (r) => skipped.push(r) });
    const result = core.process(state as PassthroughState | undefined, input, undefined);
    expect(result.state).toEqual(next);
    expect(result.outputs).toEqual(forwarded ? [{ to: 'passthrough', key: 'u1', value: input.value }] : []);
    expect(skipped).toEqual(forwarded ? [] : ['late-or-duplicate']);
  });

  it.each([
    ['empty frame', frame(1, 's1', { data: Buffer.alloc(0) })],
    ['GRAY8 size mismatch', frame(1, 's1', { width: 10, height: 10 })],
  ])('rejects a frame with UNDECODABLE_FRAME: %s', (_name, input) => {
    const core = createPassthroughCore();
    expect(() => core.process(undefined, input, undefined)).toThrow(expect.objectContaining({ code: 'UNDECODABLE_FRAME' }));
  });
});

describe('failure policy', () => {
  it.each([
    [new EmotionMuseError('UNDECODABLE_FRAME', 'x'), { action: 'dead-letter', code: 'UNDECODABLE_FRAME' }],
    [new EmotionMuseError('SERVICE_UNAVAILABLE', 'redis away', { retriable: true }), { action: 'retry', code: 'SERVICE_UNAVAILABLE' }],
    [new EmotionMuseError('SERVICE_REFUSED', 'NOPERM'), { action: 'retry', code: 'SERVICE_REFUSED' }],
    [new TypeError('bug'), { action: 'dead-letter', code: 'PROCESSING_FAILED' }],
  ])('%s', (err, expected) => {
    expect(decideFailure(err)).toMatchObject(expected);
  });

  it('escalates per code: a service away waits as configured (0: for ever), a refusal stops after 5 attempts, bad configuration at once', () => {
    expect(batchAttempts('SERVICE_UNAVAILABLE', 0)).toBe(Infinity);
    expect(batchAttempts('SERVICE_UNAVAILABLE', 7)).toBe(7);
    expect(batchAttempts('SERVICE_REFUSED', 0)).toBe(5);
    expect(batchAttempts('CONFIG_INVALID', 0)).toBe(1);
    // every code has a policy, and only service and configuration errors retry a record's batch
    expect(Object.keys(FAILURE_POLICY).sort()).toEqual([...ErrorCodes].sort());
    expect(ErrorCodes.filter((c) => FAILURE_POLICY[c].record === 'retry')).toEqual(['CONFIG_INVALID', 'SERVICE_UNAVAILABLE', 'SERVICE_REFUSED']);
  });

  it('finds the code a batch failed with in the cause chain', () => {
    const inner = new EmotionMuseError('SERVICE_REFUSED', 'redis apply-listen: NOPERM', { retriable: true });
    expect(failureCode(new Error('outer', { cause: new EmotionMuseError('SERVICE_UNAVAILABLE', 'retrying', { cause: inner }) }))).toBe('SERVICE_UNAVAILABLE');
    expect(failureCode(new Error('outer', { cause: inner }))).toBe('SERVICE_REFUSED');
    expect(failureCode(new TypeError('bug'))).toBe('PROCESSING_FAILED');
  });
});
