import { describe, expect, it } from 'vitest';
import { createSmootherCore } from '../../processors/smoother/core.ts';
import { KeyState, stageIdleEvictions } from '../../runtime/key-state.ts';
import { TopologyTestDriver } from '../../runtime/test-driver.ts';
import type { EmotionScore } from '../../schemas/generated/types.ts';
import { buildTopology } from '../../topology/topology.ts';

const score = (user: string, seq: number, t: number): EmotionScore => ({
  userId: user, sessionId: 's', seq, captureTimeMs: t, faceFound: true, probabilities: [0.04, 0.04, 0.04, 0.76, 0.04, 0.04, 0.04], faceBox: null,
  modelVersion: 'm', scoredAt: 'EDGE', timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 }, processedTimeMs: t,
});

describe('key state eviction after inactivity (--state-idle-ms)', () => {
  it('finds the keys idle past the limit, oldest first, a change moving a key to the back', () => {
    let now = 0;
    const s = new KeyState<number>(() => now);
    s.set('a', 1);
    now = 10;
    s.set('b', 1);
    now = 20;
    s.set('a', 2); // a changes again: now the newest
    now = 25;
    expect(s.idle(10)).toEqual(['b']);
    expect(s.idle(0)).toEqual(['b', 'a']);
    expect(s.idle(0, 1)).toEqual(['b']);
    s.delete('b');
    expect(s.idle(0)).toEqual(['a']);
    const staged = new Map<string, number | undefined>();
    expect(stageIdleEvictions(s, staged, 0)).toBe(0);
    expect(stageIdleEvictions(s, staged, 5)).toBe(1);
    expect(staged.get('a')).toBeUndefined();
    expect(staged.has('a')).toBe(true);
    // A plain map is never evicted from.
    expect(stageIdleEvictions(new Map([['x', 1]]), new Map(), 1)).toBe(0);
  });

  it('the smoother forgets users idle past the limit with a later batch of their partition, and keeps the active ones (state grew without bound before)', async () => {
    let now = 1_000_000;
    const topology = buildTopology({ prefix: 'evict.', partitions: 1 });
    const driver = new TopologyTestDriver({ topology, cores: { smoother: createSmootherCore() }, stateIdleMs: 60_000, clock: () => now });
    for (let u = 0; u < 50; u++) for (let i = 1; i <= 3; i++) driver.pipe('emotion-scores', `u${u}`, score(`u${u}`, i, now + i * 100));
    await driver.run();
    expect(driver.state('smoother').size).toBe(50);
    now += 30_000;
    driver.pipe('emotion-scores', 'u7', score('u7', 4, now));
    await driver.run();
    expect(driver.state('smoother').size).toBe(50);
    now += 45_000; // 75 s since the 49 others changed, 45 s since u7 did
    driver.pipe('emotion-scores', 'new', score('new', 1, now));
    await driver.run();
    expect([...driver.state('smoother').keys()].sort()).toEqual(['new', 'u7']);
  });
});
