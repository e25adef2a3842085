import kafkajs, { type Admin, type CompressionTypes, type Kafka, type Message, type PartitionMetadata, type ProducerBatch, type TopicMessages } from 'kafkajs';
import { EmotionMuseError, errorMessage } from '../schemas/errors.ts';
import { REQUEST_BYTES, splitBySize } from './produce.ts';

/**
 * Every send of the project goes out as kafkajs calls that each hold the records of ONE partition.
 *
 * Why: kafkajs 2.2.4 groups a send's partitions by their leader and keeps, across the retries of
 * that send, which brokers have answered (`responsePerBroker` in its sendMessages). When a leader
 * dies mid-send and its partitions move to a broker that has already answered, those partitions
 * are never sent again, and the send still resolves: acknowledged records that no broker holds.
 * When they move to a broker that has not answered, that broker's other partitions are sent a
 * second time with new sequence numbers, so even an idempotent or transactional producer writes
 * them twice (kafkajs pull request #1798 describes the same map). The 3-broker test
 * (tests/cluster) saw both: acknowledged sends lost by the load generator, and records committed
 * twice by the exactly-once pass-through. A call that holds one partition has one leader at each
 * attempt, so neither can happen; the partitions of a send still go out side by side.
 */

/** What can send a batch: a producer or a transaction. */
export interface BatchSender {
  sendBatch(batch: ProducerBatch): Promise<unknown>;
}

/** Sends per partition need each topic's partitions: read once per topic through the admin client, then kept. */
export class PartitionTable {
  private readonly topics = new Map<string, Promise<PartitionMetadata[]>>();

  constructor(private readonly admin: Pick<Admin, 'fetchTopicMetadata'>) {}

  of(topic: string): Promise<PartitionMetadata[]> {
    let pending = this.topics.get(topic);
    if (!pending) {
      pending = this.admin.fetchTopicMetadata({ topics: [topic] }).then((meta) => {
        const partitions = meta.topics.find((t) => t.name === topic)?.partitions ?? [];
        if (partitions.length === 0) throw new EmotionMuseError('SERVICE_UNAVAILABLE', `topic ${topic} has no partitions in the cluster's metadata`, { retriable: true });
        return [...partitions].sort((a, b) => a.partitionId - b.partitionId);
      });
      // A failed lookup is tried again by the next send, not kept.
      pending.catch(() => this.topics.delete(topic));
      this.topics.set(topic, pending);
    }
    return pending;
  }
}

/**
 * A table with an admin client of its own, for a producer that has none (the gateway, the edge
 * client, the command line): connected at the first lookup, ended by `close`.
 */
export function ownPartitionTable(kafka: Kafka): { table: PartitionTable; close(): Promise<void> } {
  let admin: Promise<Admin> | undefined;
  const connected = () => {
    admin ??= (async () => {
      const a = kafka.admin();
      try {
        await a.connect();
      } catch (err) {
        admin = undefined;
        throw err;
      }
      return a;
    })();
    return admin;
  };
  return {
    table: new PartitionTable({ fetchTopicMetadata: async (o) => (await connected()).fetchTopicMetadata(o) }),
    close: async () => {
      const a = await admin?.catch(() => undefined);
      admin = undefined;
      await a?.disconnect().catch(() => undefined);
    },
  };
}

export interface PartitionedSendOptions {
  readonly acks?: number;
  readonly compression?: CompressionTypes;
  /** Bytes of records per request at most (a larger record goes alone). */
  readonly maxBytes?: number;
}

// The producers' own partitioner (Java's murmur2 of the key; round robin without a key), so a
// record lands where kafkajs would have put it.
const partitioner = kafkajs.Partitioners.DefaultPartitioner();

/** The records of each partition, in order, every one with its partition set. */
export async function byPartition(table: PartitionTable, topicMessages: readonly TopicMessages[]): Promise<Array<{ topic: string; partition: number; messages: Message[] }>> {
  const groups = new Map<string, { topic: string; partition: number; messages: Message[] }>();
  for (const { topic, messages } of topicMessages) {
    if (messages.length === 0) continue;
    const partitionMetadata = await table.of(topic);
    for (const message of messages) {
      const partition = partitioner({ topic, partitionMetadata, message });
      const id = `${topic}\u0000${partition}`;
      let group = groups.get(id);
      if (!group) groups.set(id, (group = { topic, partition, messages: [] }));
      group.messages.push(message.partition === partition ? message : { ...message, partition });
    }
  }
  return [...groups.values()];
}

/**
 * Sends the records as one call per partition (several when a partition's records pass
 * `maxBytes`, one after the other, in order); the partitions' calls run side by side. Resolves
 * when every call has, and rejects with the first failure once none is in flight any more.
 */
export async function sendPerPartition(sender: BatchSender, table: PartitionTable, topicMessages: readonly TopicMessages[], options: PartitionedSendOptions = {}): Promise<void> {
  const groups = await byPartition(table, topicMessages);
  const results = await Promise.allSettled(
    groups.map(async ({ topic, messages }) => {
      for (const part of splitBySize([{ topic, messages }], options.maxBytes ?? REQUEST_BYTES)) {
        await sender.sendBatch({ topicMessages: part, acks: options.acks ?? -1, ...(options.compression !== undefined ? { compression: options.compression } : {}) });
      }
    }),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(errorMessage(failed.reason));
}
