import kafkajs, { type Admin, type CompressionTypes, type Kafka, type Message, type PartitionMetadata, type ProducerBatch, type RecordMetadata, type TopicMessages } from 'kafkajs';
import { EmotionMuseError } from '../schemas/errors.ts';
import { REQUEST_BYTES, splitBySize } from './produce.ts';

/**
 * Every multi-partition send of the project goes through `sendChecked`.
 *
 * Why: kafkajs 2.2.4 groups a send's partitions by their leader and keeps, across the retries of
 * that send, which brokers have answered (`responsePerBroker` in its sendMessages), and it retries
 * as soon as one broker's request fails, while the requests to the others may still be in flight.
 * So when a leader dies mid-send:
 * - partitions that move to a broker that has already answered are never sent again, and the
 *   send still resolves: acknowledged records that no broker holds;
 * - the partitions of a broker whose request was still in flight are sent again with new
 *   sequence numbers, so even an idempotent or transactional producer writes them twice; the
 *   same happens when partitions move to a broker that has not answered yet.
 * kafkajs pull request #1798 describes the same map. The 3-broker test (tests/cluster) saw both:
 * acknowledged sends lost by the load generator, and records committed twice by the exactly-once
 * pass-through.
 *
 * On a cluster of more than one broker every partition's records go out in a kafkajs call of
 * their own (the calls side by side): a call then has one leader and one request at each attempt,
 * and neither can happen. On a single broker there is no leader to move and one request per
 * attempt, so a send stays one call (what kafkajs does on its own). Either way the answer, which
 * lists each partition every broker stored, is checked: a partition missing from it is sent again
 * in a call of its own, and a partition in it twice fails a transactional send
 * (`DuplicateWrite`: the caller aborts and the batch is processed again) and is kept by an
 * at-least-once one, which allows repeats.
 */

/** A transactional send wrote some partition's records twice: the transaction must be aborted. */
export class DuplicateWrite extends Error {}

/** What can send a batch: a producer or a transaction. */
export interface BatchSender {
  sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]>;
}

/** Checking a send needs each record's partition, so each topic's partitions are: read once per topic through the admin client, then kept. */
export class PartitionTable {
  private readonly topics = new Map<string, Promise<PartitionMetadata[]>>();

  private brokers: { count: number; at: number } | undefined;
  private counting: Promise<void> | undefined;

  constructor(private readonly admin: Pick<Admin, 'fetchTopicMetadata' | 'describeCluster'>) {}

  /**
   * Whether the cluster has more than one broker: asked at the first send and again, in the
   * background, once a minute. When the count cannot be had, more than one (the safe answer).
   */
  async manyBrokers(): Promise<boolean> {
    if ((!this.brokers || Date.now() - this.brokers.at > 60_000) && !this.counting) {
      this.counting = this.admin
        .describeCluster()
        .then((c) => void (this.brokers = { count: c.brokers.length, at: Date.now() }))
        .catch(() => undefined)
        .finally(() => (this.counting = undefined));
    }
    if (!this.brokers) await this.counting;
    return (this.brokers?.count ?? 2) > 1;
  }

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
 * A table with an admin client of its own, for a producer that has none (the gateway's ingest,
 * the dead-letter replay): connected at the first lookup, ended by `close`.
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
    table: new PartitionTable({ fetchTopicMetadata: async (o) => (await connected()).fetchTopicMetadata(o), describeCluster: async () => (await connected()).describeCluster() }),
    close: async () => {
      const a = await admin?.catch(() => undefined);
      admin = undefined;
      await a?.disconnect().catch(() => undefined);
    },
  };
}

export interface CheckedSendOptions {
  readonly acks?: number;
  readonly compression?: CompressionTypes;
  /** Bytes of records per request at most (a larger record goes alone). */
  readonly maxBytes?: number;
  /** One kafkajs call per partition, or one for the whole send; by default per partition on a cluster of more than one broker. */
  readonly perPartition?: boolean;
  /** A transaction's send: a partition written twice is a `DuplicateWrite`, not a repeat to keep. */
  readonly transactional?: boolean;
  /** Called for what the check found and mended (for a log line or a metric). */
  readonly onMended?: (what: { resent: string[]; repeated: string[] }) => void;
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

/** How many times a partition missing from a send's answer is sent again before the send fails. */
const RESENDS = 5;

/**
 * Sends the records in requests of at most `maxBytes` (one after the other, in order), as one
 * kafkajs call per partition or one for the whole send (`perPartition`), every call's answer
 * checked: partitions it did not write are sent again, partitions it wrote twice fail a
 * transactional send. Rejects with the first failure once no call is in flight any more.
 */
export async function sendChecked(sender: BatchSender, table: PartitionTable, topicMessages: readonly TopicMessages[], options: CheckedSendOptions = {}): Promise<void> {
  const groups = await byPartition(table, topicMessages);
  const perPartition = options.perPartition ?? (groups.length > 1 && (await table.manyBrokers()));
  const calls: TopicMessages[][] = perPartition
    ? groups.map(({ topic, messages }) => [{ topic, messages }])
    : [groups.reduce<TopicMessages[]>((all, g) => {
        const t = all.find((x) => x.topic === g.topic);
        if (t) t.messages.push(...g.messages);
        else all.push({ topic: g.topic, messages: [...g.messages] });
        return all;
      }, [])];
  const results = await Promise.allSettled(
    calls.map(async (call) => {
      for (const part of splitBySize(call, options.maxBytes ?? REQUEST_BYTES)) await checkedCall(sender, part, options);
    }),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** One kafkajs call and its answer's check; what it left unwritten goes again, up to RESENDS times. */
async function checkedCall(sender: BatchSender, part: TopicMessages[], options: CheckedSendOptions): Promise<void> {
  let pending = part;
  for (let round = 0; ; round++) {
    const answer = await sender.sendBatch({ topicMessages: pending, acks: options.acks ?? -1, ...(options.compression !== undefined ? { compression: options.compression } : {}) });
    const written = new Map<string, number>();
    for (const r of answer) written.set(`${r.topicName}[${r.partition}]`, (written.get(`${r.topicName}[${r.partition}]`) ?? 0) + 1);
    const repeated = [...written].filter(([, n]) => n > 1).map(([id]) => id);
    if (repeated.length > 0 && options.transactional) throw new DuplicateWrite(`kafkajs wrote ${repeated.join(', ')} twice in one send (a leader moved during its retries)`);
    const missing = pending
      .map(({ topic, messages }) => ({ topic, messages: messages.filter((m) => !written.has(`${topic}[${m.partition}]`)) }))
      .filter((t) => t.messages.length > 0);
    if (repeated.length > 0 || missing.length > 0) options.onMended?.({ resent: missing.flatMap((t) => [...new Set(t.messages.map((m) => `${t.topic}[${m.partition}]`))]), repeated });
    if (missing.length === 0) return;
    if (round >= RESENDS) throw new EmotionMuseError('SERVICE_UNAVAILABLE', `kafkajs left ${missing.map((t) => t.topic).join(', ')} unwritten ${RESENDS + 1} times in a row`, { retriable: true });
    pending = missing;
  }
}
