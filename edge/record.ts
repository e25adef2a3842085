import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import type { Frame } from '../schemas/generated/types.ts';
import type { SchemaRegistry } from '../schemas/registry.ts';
import { writeRecording } from '../schemas/recording.ts';

export interface RecordOptions {
  readonly kafka: Kafka;
  readonly registry: SchemaRegistry;
  readonly topic: string;
  readonly userId?: string;
  readonly sessionId?: string;
  /** Read what the topic already holds, not only what arrives from now on. @defaultValue false */
  readonly fromBeginning?: boolean;
  /** Stop after this many frames (0: no limit). */
  readonly maxFrames?: number;
  /** Stop after this long without a new frame (ms). @defaultValue 5000 */
  readonly idleMs?: number;
  readonly signal?: AbortSignal;
  readonly onFrame?: (count: number) => void;
}

/** Captures the frames of a user or session from the frames topic into a recording file, with their original timing. */
export async function record(out: string, options: RecordOptions): Promise<number> {
  const consumer = options.kafka.consumer({ groupId: `emotionmuse-record-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100 });
  const frames: Frame[] = [];
  let last = Date.now();
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  options.signal?.addEventListener('abort', () => finish());
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: options.topic, fromBeginning: options.fromBeginning ?? false });
    await consumer.run({
      eachMessage: async ({ message }) => {
        if (!message.value) return;
        let frame: Frame;
        try {
          frame = options.registry.decode('frame', message.value);
        } catch {
          return;
        }
        if (options.userId && frame.userId !== options.userId) return;
        if (options.sessionId && frame.sessionId !== options.sessionId) return;
        frames.push(frame);
        last = Date.now();
        options.onFrame?.(frames.length);
        if (options.maxFrames && frames.length >= options.maxFrames) finish();
      },
    });
    const idle = setInterval(() => {
      if (frames.length > 0 && Date.now() - last > (options.idleMs ?? 5000)) finish();
    }, 100);
    await done;
    clearInterval(idle);
  } finally {
    await consumer.disconnect();
  }
  frames.sort((a, b) => a.captureTimeMs - b.captureTimeMs || a.seq - b.seq);
  await writeRecording(out, options.registry, frames, { kind: 'recording', topic: options.topic, userId: options.userId ?? null, sessionId: options.sessionId ?? null, frames: frames.length, recordedAt: new Date().toISOString() });
  return frames.length;
}
