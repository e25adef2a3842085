import type { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';
import { testKafka, testRedis } from '../support/kafka.ts';

describe('services of the integration tier', () => {
  it('reaches the real Redis', async () => {
    const redis = testRedis();
    try {
      const key = `test:${Date.now()}`;
      await redis.set(key, 'ok', 'PX', 10_000);
      expect(await redis.get(key)).toBe('ok');
      expect(await redis.info('server')).toContain('redis_version');
    } finally {
      redis.disconnect();
    }
  });

  it('reaches the real Kafka broker and says which version it speaks', async () => {
    const admin = testKafka().admin();
    await admin.connect();
    try {
      const cluster = await admin.describeCluster();
      expect(cluster.brokers.length).toBeGreaterThanOrEqual(1);
      expect(cluster.controller).not.toBeNull();
    } finally {
      await admin.disconnect();
    }
  });
});
