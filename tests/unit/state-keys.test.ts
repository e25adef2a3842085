import { describe, expect, it } from 'vitest';
import { checkPrefix, escapeId, unescapeId, userKeys } from '../../state/keys.ts';
import { clusterNodes } from '../../state/redis.ts';

/** Redis Cluster's slot of a key: CRC16 (XMODEM) of its hash tag (the text between the first { and the next }, when not empty) or of the whole key, mod 16384. */
function calculateSlot(key: string): number {
  let part = Buffer.from(key, 'utf8');
  const open = part.indexOf(0x7b);
  if (open >= 0) {
    const close = part.indexOf(0x7d, open + 1);
    if (close > open + 1) part = part.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of part) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

const HOSTILE = ['X', 'X:history', 'X:list', 'X:state', 'a:b', 'a', '{X}', '}{', '%3A', 'x%', '*', '?[a]\\', 'é😀', 'u'.repeat(128), 'a b', ''];

/** Redis' own glob match for a SCAN pattern (the subset state/keys.ts produces: literal text, escapes, a trailing *). */
function globMatches(pattern: string, key: string): boolean {
  const re = pattern.replace(/\\(.)|(\*)|([.+^${}()|[\]\\?])/g, (_m, escaped: string | undefined, star: string | undefined, special: string | undefined) =>
    escaped !== undefined ? escaped.replace(/[.+^${}()|[\]\\?*]/g, '\\$&') : star ? '.*' : `\\${special}`);
  return new RegExp(`^${re}$`, 's').test(key);
}

describe('the Redis key scheme (state/keys.ts)', () => {
  it('escapes ids injectively, without : { } % or glob characters, and back', () => {
    const escaped = HOSTILE.map(escapeId);
    expect(new Set(escaped).size).toBe(HOSTILE.length);
    for (const [i, e] of escaped.entries()) {
      expect(e).toMatch(/^[A-Za-z0-9._~%-]*$/);
      expect(unescapeId(e)).toBe(HOSTILE[i]);
    }
  });

  it('gives no two users a common key, and each user\'s pattern matches only their own keys', () => {
    const all = HOSTILE.map((u) => {
      const k = userKeys('em:', u);
      return { u, k, keys: [k.state, k.history, k.list, k.output('listens.v1:3', '42'), k.session('s:1'), k.session('1')] };
    });
    const every = all.flatMap((a) => a.keys);
    expect(new Set(every).size).toBe(every.length);
    for (const { u, k, keys } of all) {
      for (const key of every) expect(globMatches(k.pattern, key), `${u} ~ ${key}`).toBe(keys.includes(key));
    }
  });

  it('puts every key of a user in one Redis Cluster slot (a hash tag), and users in many slots', () => {
    for (const u of HOSTILE) {
      const k = userKeys('em:', u);
      const slots = new Set([k.state, k.history, k.list, k.output('t:0', '1'), k.session('s')].map((key) => calculateSlot(key)));
      expect(slots.size, u).toBe(1);
    }
    const spread = new Set(Array.from({ length: 200 }, (_, i) => calculateSlot(userKeys('em:', `user-${i}`).state)));
    expect(spread.size).toBeGreaterThan(150);
  });

  it('computes slots as Redis does (the documented example)', () => {
    expect(calculateSlot('123456789')).toBe(0x31c3 % 16384);
    expect(calculateSlot('{user1000}.following')).toBe(calculateSlot('user1000'));
  });

  it('refuses a prefix with hash-tag braces', () => {
    expect(() => checkPrefix('em{x}:')).toThrow(/may not contain/);
    expect(checkPrefix('em:')).toBe('em:');
  });
});

describe('Redis URLs', () => {
  it('reads a Redis Cluster URL as its seed nodes, and a plain URL as no cluster', () => {
    expect(clusterNodes('redis://127.0.0.1:6379')).toBeUndefined();
    expect(clusterNodes('rediss://cache.example:6380')).toBeUndefined();
    expect(clusterNodes('redis-cluster://10.0.0.1:7000,10.0.0.2:7001,redis-2')).toEqual({ tls: false, nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7001 }, { host: 'redis-2', port: 6379 }] });
    expect(clusterNodes('rediss-cluster://a:7000')).toEqual({ tls: true, nodes: [{ host: 'a', port: 7000 }] });
    expect(() => clusterNodes('redis-cluster://a:7000,b:notaport')).toThrow(/host:port seed nodes.*"b:notaport"/);
  });
});
