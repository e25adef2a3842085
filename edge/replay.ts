import type { Kafka } from 'kafkajs';
import type { Frame } from '../schemas/generated/types.ts';
import type { SchemaRegistry } from '../schemas/registry.ts';
import { EdgePublisher } from './publisher.ts';

export interface ReplayOptions {
  readonly kafka: Kafka;
  readonly registry: SchemaRegistry;
  readonly topic: string;
  /** Session id of the replayed frames (every replay is a new session). */
  readonly sessionId: string;
  /** Replace the user ids of the recording with this one. */
  readonly userId?: string;
  /** 1: original timing; 4: four times faster; Infinity: as fast as possible. @defaultValue 1 */
  readonly speed?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (sent: number, total: number, errors: number) => void;
  /** Each user's bearer token, sent with their frames (edge/publisher.ts `token`). */
  readonly tokenFor?: (userId: string) => Promise<string | undefined>;
}

/**
 * Publishes a recording's frames with their original spacing in time (divided by `speed`),
 * under a new session id, keeping each frame's sequence number; capture times are those of the
 * replay. Returns the number of frames sent.
 */
export async function replay(frames: readonly Frame[], options: ReplayOptions): Promise<{ sent: number; errors: number }> {
  const speed = options.speed ?? 1;
  const ordered = [...frames].sort((a, b) => a.captureTimeMs - b.captureTimeMs || a.seq - b.seq);
  const publishers = new Map<string, EdgePublisher>();
  const publisherFor = async (user: string) => {
    let p = publishers.get(user);
    if (!p) {
      p = new EdgePublisher({ kafka: options.kafka, registry: options.registry, topic: options.topic, userId: user, sessionId: options.sessionId, token: await options.tokenFor?.(user) });
      await p.start();
      publishers.set(user, p);
    }
    return p;
  };
  const t0 = ordered[0]?.captureTimeMs ?? 0;
  const start = Date.now();
  let i = 0;
  try {
    for (const f of ordered) {
      if (options.signal?.aborted) break;
      if (Number.isFinite(speed)) {
        const due = start + (f.captureTimeMs - t0) / speed;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const publisher = await publisherFor(options.userId ?? f.userId);
      await publisher.publish({ data: f.data, encoding: f.encoding, width: f.width, height: f.height, faceBox: f.faceBox, seq: f.seq, captureTimeMs: Number.isFinite(speed) ? Date.now() : start + (f.captureTimeMs - t0) });
      if (++i % 10 === 0) options.onProgress?.(i, ordered.length, sum(publishers, 'errors'));
    }
  } finally {
    await Promise.all([...publishers.values()].map((p) => p.close()));
  }
  const result = { sent: sum(publishers, 'sent'), errors: sum(publishers, 'errors') };
  options.onProgress?.(result.sent, ordered.length, result.errors);
  return result;
}

function sum(publishers: Map<string, EdgePublisher>, key: 'sent' | 'errors'): number {
  return [...publishers.values()].reduce((n, p) => n + p.counters[key], 0);
}
