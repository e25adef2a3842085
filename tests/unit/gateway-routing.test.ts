import { describe, expect, it } from 'vitest';
import { checkRouting, ownedPartitions, ownerOf, userPartition } from '../../gateway/routing.ts';

// Which gateway instance serves which user (gateway/routing.ts). That the pipeline's writers put a
// user's records on userPartition's partition is checked against the broker in
// tests/integration/gateway-routing.test.ts.
describe('gateway routing by partition', () => {
  const routing = (instance: number, instances = 3, partitions = 12) => ({ instances, instance, peers: Array.from({ length: instances }, (_, i) => `http://gw-${i}`), partitions });

  it('gives every partition to exactly one instance, and every user to the instance of their partition', () => {
    const owned = [0, 1, 2].map((i) => ownedPartitions(routing(i)));
    expect(owned).toEqual([[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]);
    const users = Array.from({ length: 300 }, (_, i) => `user-${i}:{x}%`);
    for (const u of users) {
      const p = userPartition(u, 12);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(12);
      expect(owned[ownerOf(routing(0), u)]).toContain(p);
    }
    // spread over all instances
    expect(new Set(users.map((u) => ownerOf(routing(0), u))).size).toBe(3);
    // one instance serves everyone
    expect(users.every((u) => ownerOf(routing(0, 1), u) === 0)).toBe(true);
  });

  it('refuses settings that would leave users without an instance', () => {
    expect(() => checkRouting(routing(3))).toThrow(/--instance must be between 0 and 2/);
    expect(() => checkRouting({ ...routing(0), peers: ['http://gw-0'] })).toThrow(/--peers must give the base URL of each of the 3 instances/);
    expect(() => checkRouting(routing(0, 8, 6))).toThrow(/8 instances for 6 partitions/);
    expect(checkRouting(routing(1))).toMatchObject({ instance: 1 });
  });
});
