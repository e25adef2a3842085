import { describe, expect, it } from 'vitest';
import { checkListen, redelivered } from '../../processors/recommender/decisions.ts';
import type { Listen, Recommendation } from '../../schemas/generated/types.ts';

const listen = (user: string, trackId: string, n: number, startTimeMs = 1_000_000 + n * 60_000): Listen => ({ listenId: `${user}-${n}`, userId: user, trackId, startTimeMs, listenedMs: 30_000, outcome: 'COMPLETED' });

describe('recommender decisions (pure)', () => {
  it('refuses unknown tracks and negative lengths with their codes', () => {
    const known = (id: string) => id === 't1';
    expect(() => checkListen(listen('a', 't9', 1), known, 'm1')).toThrow(expect.objectContaining({ code: 'UNKNOWN_TRACK' }));
    expect(() => checkListen({ ...listen('a', 't1', 1), listenedMs: -5 }, known, 'm1')).toThrow(expect.objectContaining({ code: 'INVALID_RECORD' }));
    expect(() => checkListen(listen('a', 't1', 1), known, 'm1')).not.toThrow();
  });

  it('a redelivered record gives what it gave before; unknown: nothing for a listen, the list again for a change', () => {
    const list = { listId: 'l' } as Recommendation;
    expect(redelivered('listens', list)).toEqual({ output: list });
    expect(redelivered('emotion-changes', 'none')).toEqual({ output: null });
    expect(redelivered('listens', undefined)).toEqual({ output: null });
    expect(redelivered('emotion-changes', undefined)).toBe('build');
    // applied, and failed before its list was saved: the list is made now
    expect(redelivered('listens', 'pending')).toBe('build');
    expect(redelivered('emotion-changes', 'pending')).toBe('build');
  });
});

