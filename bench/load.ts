import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Frames per expression segment of a simulated user: six smoother windows, so that a change can complete. */
export const SEGMENT_FRAMES = 60;
/** The expressions simulated users go through, one segment each. */
export const LOAD_CLASSES = ['happy', 'sad', 'neutral', 'angry'] as const;

/**
 * The services a load benchmark runs against: the environment's (EM_KAFKA_BROKERS, EM_REDIS_URL)
 * or the local ones, started when needed; and a fresh topic prefix for this run.
 */
export function loadServices(): { brokers: string[]; redisUrl: string; prefix: string } {
  const brokers = (process.env.EM_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
  const redisUrl = process.env.EM_REDIS_URL ?? 'redis://127.0.0.1:6379';
  spawnSync('bash', [path.join(ROOT, 'infra/local.sh'), 'up', 'kafka', 'redis'], { stdio: 'inherit' });
  return { brokers, redisUrl, prefix: `bench.${randomUUID().slice(0, 8)}.` };
}
