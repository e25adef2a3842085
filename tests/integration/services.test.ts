import type { Redis } from 'ioredis';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { testKafka, testRedis } from '../support/kafka.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

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

  it('the launcher in the secured mode refuses a Kafka or Redis on its port that does not speak TLS with its CA (it said "reusing it" and claimed SASL_SSL before)', () => {
    const data = mkdtempSync(path.join(tmpdir(), 'em-reuse-'));
    try {
      for (const [service, port] of [['kafka', inject('kafkaBrokers').split(',')[0]!.split(':')[1]!], ['redis', new URL(inject('redisUrl')).port || '6379']] as const) {
        // The plain services of this tier, seen by a secured launcher with a data folder of its own (as another checkout's would be).
        const r = spawnSync('bash', [path.join(ROOT, 'infra/local.sh'), 'up', service], {
          env: { ...process.env, EM_SECURITY: 'on', EM_DATA_DIR: data, EM_KAFKA_PORT: port, EM_REDIS_PORT: port },
          encoding: 'utf8',
          timeout: 60_000,
        });
        expect(r.status, `${service}: ${r.stdout}${r.stderr}`).toBe(1);
        expect(r.stdout + r.stderr).toMatch(/does not speak TLS with this checkout's CA/);
        expect(r.stdout + r.stderr).not.toMatch(/reusing it|is up/);
      }
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });
});
