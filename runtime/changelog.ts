import { randomUUID } from 'node:crypto';
import type { Admin, Kafka, Message } from 'kafkajs';
import { errorMessage, EmotionMuseError } from '../schemas/errors.ts';
import type { TopicSpec } from '../topology/topology.ts';
import { waitForLeaders } from '../topology/apply.ts';
import type { Logger } from './log.ts';

/**
 * A stateful processor's key state lives in a compacted changelog topic, one partition per task:
 * each batch writes the keys it changed (null deletes), and a task that starts reads its partition
 * to the end before it processes anything.
 */

/** A core whose parameters changed writes to a changelog of its own: create it if `topics apply` did not. */
export async function ensureChangelog(admin: Admin, spec: TopicSpec, logger: Logger): Promise<void> {
  if ((await admin.listTopics()).includes(spec.name)) return;
  logger.info('creating the state changelog', { topic: spec.name });
  await admin
    .createTopics({
      waitForLeaders: false,
      topics: [{ topic: spec.name, numPartitions: spec.partitions, replicationFactor: spec.replicationFactor, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
    })
    .catch((err: unknown) => {
      if (!/already exists/i.test(errorMessage(err))) throw err;
    });
  await waitForLeaders(admin, [spec.name]);
}

/** The changelog records of a batch's state changes, for the task's partition. */
export function changelogMessages<S>(partition: number, changes: ReadonlyMap<string, S | undefined>): Message[] {
  return [...changes].map(([key, value]) => ({ key, partition, value: value === undefined ? null : JSON.stringify(value) }));
}

export interface RestoreOptions {
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly topic: string;
  readonly partition: number;
  /** Prefix of the restore's own short-lived consumer group. */
  readonly groupId: string;
  /** A restore that has not reached the end after this long is an error (the task is retried), never partial state. */
  readonly timeoutMs: number;
}

/** Reads one changelog partition from the start to its end (read_committed) into a map. */
export async function restoreChangelog<S>({ kafka, admin, topic, partition, groupId: prefix, timeoutMs }: RestoreOptions): Promise<Map<string, S>> {
  const state = new Map<string, S>();
  const entry = (await admin.fetchTopicOffsets(topic)).find((o) => o.partition === partition);
  const end = BigInt(entry?.high ?? '0');
  if (end <= BigInt(entry?.low ?? '0')) return state;

  const groupId = `${prefix}.restore.${randomUUID()}`;
  const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 50, allowAutoTopicCreation: false });
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const reached = (lastOffset: string) => {
    if (BigInt(lastOffset) + 1n >= end) finish();
  };
  // A batch of transaction markers only is never handed to eachBatch: its end is seen here.
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
    if (e.payload.topic === topic && e.payload.partition === partition) reached(e.payload.lastOffset);
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        if (batch.partition !== partition) return;
        for (const m of batch.messages) {
          const key = m.key?.toString() ?? '';
          if (m.value === null) state.delete(key);
          else state.set(key, JSON.parse(m.value.toString()) as S);
        }
        reached(batch.lastOffset());
      },
    });
    let timedOut = false;
    const timeout = setTimeout(() => {
      timedOut = true;
      finish();
    }, timeoutMs);
    await done;
    clearTimeout(timeout);
    if (timedOut) throw new EmotionMuseError('SERVICE_UNAVAILABLE', `restoring ${topic}[${partition}] did not reach offset ${end} within ${timeoutMs} ms`, { retriable: true });
  } finally {
    await consumer.stop().catch(() => undefined);
    await consumer.disconnect().catch(() => undefined);
    await admin.deleteGroups([groupId]).catch(() => undefined);
  }
  return state;
}
