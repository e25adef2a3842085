import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Admin } from 'kafkajs';
import { commonOptions } from '../runtime/common-config.ts';
import { loadConfig } from '../runtime/config.ts';
import { topicName, type Topology } from '../topology/topology.ts';

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
  const { brokers, redisUrl } = loadConfig({ brokers: commonOptions.brokers, redisUrl: commonOptions.redisUrl }, { env: process.env, allowUnknownFlags: true });
  spawnSync('bash', [path.join(ROOT, 'infra/local.sh'), 'up', 'kafka', 'redis'], { stdio: 'inherit' });
  return { brokers: [...brokers], redisUrl, prefix: `bench.${randomUUID().slice(0, 8)}.` };
}

/** Records the three stages have not yet committed, over their input topics (the consumer groups `<prefix><stage>`). */
export async function pipelineLag(admin: Admin, topology: Topology, prefix: string): Promise<number> {
  let total = 0;
  for (const [stage, topic] of [['classifier', 'frames'], ['smoother', 'emotion-scores'], ['recommender', 'emotion-changes']] as const) {
    const committed = await admin.fetchOffsets({ groupId: `${prefix}${stage}`, topics: [topicName(topology, topic)] });
    const high = await admin.fetchTopicOffsets(topicName(topology, topic));
    for (const p of high) total += Number(p.high) - Math.max(0, Number(committed[0]!.partitions.find((c) => c.partition === p.partition)?.offset ?? 0));
  }
  return total;
}

/** Waits until `lag` reads 0 (at most 120 s); the seconds it took, or undefined if it never did. */
export async function drainLag(lag: () => Promise<number>): Promise<number | undefined> {
  const t0 = performance.now();
  for (let i = 0; i < 600; i++) {
    if ((await lag()) === 0) return (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

/**
 * Calls `send(user, seq)` for each of `users` simulated users `fps` times a second for
 * `durationS`, each user at its own phase (frames due at evenly spread times, as from independent
 * cameras), checking every 5 ms for what has come due. `seq` continues each user's own count.
 */
export async function paceUsers(users: ReadonlyArray<{ readonly index: number; seq: number }>, fps: number, durationS: number, send: (user: number, seq: number) => void): Promise<void> {
  const t0 = performance.now();
  const period = 1000 / fps;
  const next = users.map((u) => t0 + (u.index / users.length) * period);
  while (performance.now() - t0 < durationS * 1000) {
    const now = performance.now();
    for (const [i, u] of users.entries()) {
      while (next[i]! <= now) {
        next[i]! += period;
        send(u.index, ++u.seq);
      }
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}
