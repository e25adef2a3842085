import { describe, expect, it } from 'vitest';
import { changelogMessages, restoreChangelog } from '../../runtime/changelog.ts';
import { commitProtocol } from '../../runtime/commit-protocol.ts';
import { Inbox } from '../../runtime/inbox.ts';
import { createLogger } from '../../runtime/log.ts';
import { byPartition, PartitionTable, sendPerPartition } from '../../runtime/partitioned-send.ts';
import type { Task } from '../../runtime/task.ts';
import { changelogTopic, processorSpec, topicName } from '../../topology/topology.ts';
import { collect, createTopology, produce, randomPrefix, useKafka, waitFor } from '../support/kafka.ts';

/** The runtime's broker-facing parts on their own, against the real broker. */
describe('runtime parts against the real broker', () => {
  const fx = useKafka();
  const logger = createLogger('warn');

  it('restores a changelog partition to its end (last value per key, tombstones delete), and a restore that cannot finish in time is an error, not partial state', async () => {
    const prefix = randomPrefix('restore');
    const topology = await createTopology(fx.admin, prefix, 2);
    const changelog = changelogTopic(topology, processorSpec(topology, 'passthrough')).name;
    const changes = new Map<string, { n: number } | undefined>([['a', { n: 1 }], ['b', { n: 2 }]]);
    await produce(fx.kafka, changelog, changelogMessages(1, changes));
    await produce(fx.kafka, changelog, changelogMessages(1, new Map([['a', { n: 3 }], ['b', undefined], ['c', { n: 4 }]])));
    await produce(fx.kafka, changelog, changelogMessages(0, new Map([['z', { n: 9 }]])));
    const restored = await restoreChangelog<{ n: number }>({ kafka: fx.kafka, admin: fx.admin, topic: changelog, partition: 1, groupId: `${prefix}passthrough`, timeoutMs: 60_000 });
    expect([...restored].sort()).toEqual([['a', { n: 3 }], ['c', { n: 4 }]]);
    const started = Date.now();
    const err = await restoreChangelog({ kafka: fx.kafka, admin: fx.admin, topic: changelog, partition: 1, groupId: `${prefix}passthrough`, timeoutMs: 1 }).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'SERVICE_UNAVAILABLE', retriable: true });
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 90_000);

  it('exactly-once: a new owner of a task fences the old one, whose commit then fails and leaves nothing behind', async () => {
    const prefix = randomPrefix('fence');
    const topology = await createTopology(fx.admin, prefix, 1);
    const out = topicName(topology, 'passthrough');
    const ctx = (tasks: Array<Promise<Task<unknown>>>) => ({
      kafka: fx.kafka, consumer: fx.kafka.consumer({ groupId: `${prefix}unused` }), logger, groupId: `${prefix}passthrough`, changelog: undefined, commitIntervalMs: 100, partitions: new PartitionTable(fx.admin),
      tasks: () => tasks, failed: () => undefined, stopping: () => false,
    });
    const protocol = commitProtocol<unknown>('exactly-once', ctx([]));
    const newTask = async (): Promise<Task<unknown>> => ({
      partition: 0, producer: await protocol.openTask(0), state: new Map(), positions: new Map(), fetched: new Map(), seeking: new Map(), inbox: new Inbox({ maxBatchRecords: 10, maxBacklog: 10, maxBacklogBytes: 1 << 20 }),
      ahead: [], worker: undefined, paused: false, dirty: false, unflushed: new Map(), acked: Promise.resolve(), closed: false,
    });
    const outcome = (value: string) => ({ staged: new Map(), out: new Map([[out, [{ key: 'u', value: Buffer.from(value) }]]]), next: new Map([[topicName(topology, 'frames'), 1n]]) });
    const reader = await collect(fx.kafka, [out]);
    const old = await newTask();
    const owner = await newTask(); // initialises the same transactional id: the old producer is fenced
    try {
      let oldDone = false;
      const failed = await protocol.commit(old, outcome('from the old owner'), () => (oldDone = true)).then(() => undefined, (e: unknown) => e);
      expect(failed, 'the fenced producer cannot commit').toBeInstanceOf(Error);
      expect(oldDone).toBe(false);
      let done = false;
      await protocol.commit(owner, outcome('from the new owner'), () => (done = true));
      expect(done).toBe(true);
      await waitFor('the new owner\'s output', () => reader.records.length >= 1, 30_000);
      await new Promise((r) => setTimeout(r, 1000));
      expect(reader.records.map((r) => r.value!.toString())).toEqual(['from the new owner']);
      const committed = await fx.admin.fetchOffsets({ groupId: `${prefix}passthrough`, topics: [topicName(topology, 'frames')] });
      expect(committed[0]!.partitions[0]!.offset).toBe('1');
    } finally {
      await reader.stop();
      await old.producer?.disconnect().catch(() => undefined);
      await owner.producer?.disconnect();
    }
  }, 90_000);

  it('sends one partition per kafkajs call, each record on the partition kafkajs\'s own partitioner picks, in order, large groups split by size', async () => {
    const prefix = randomPrefix('per-partition');
    const topology = await createTopology(fx.admin, prefix, 3);
    const ours = topicName(topology, 'frames');
    const theirs = topicName(topology, 'passthrough');
    const messages = Array.from({ length: 60 }, (_, i) => ({ key: `user-${i % 12}`, value: Buffer.alloc(200, i) }));
    const table = new PartitionTable(fx.admin);
    const calls: Array<Array<{ topic: string; partitions: number[]; n: number }>> = [];
    const producer = fx.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const reader = await collect(fx.kafka, [ours, theirs]);
    try {
      const counting = {
        sendBatch: (batch: Parameters<typeof producer.sendBatch>[0]) => {
          calls.push(batch.topicMessages!.map((t) => ({ topic: t.topic, partitions: [...new Set(t.messages.map((m) => m.partition!))], n: t.messages.length })));
          return producer.sendBatch(batch);
        },
      };
      await sendPerPartition(counting, table, [{ topic: ours, messages }], { maxBytes: 2000 });
      await producer.send({ topic: theirs, acks: -1, messages });
      for (const call of calls) {
        expect(call).toHaveLength(1);
        expect(call[0]!.partitions).toHaveLength(1);
      }
      const groups = await byPartition(table, [{ topic: ours, messages }]);
      expect(groups.map((g) => g.partition).sort()).toEqual([0, 1, 2]);
      // 2,000 bytes at most per call: several calls for each partition's 20-odd records of 200 bytes
      expect(calls.length).toBeGreaterThan(groups.length);
      await waitFor('both copies read', () => reader.records.length >= 120, 30_000);
      const where = (topic: string) => new Map(reader.records.filter((r) => r.topic === topic).map((r) => [r.value!.toString('hex'), r.partition]));
      expect(where(ours)).toEqual(where(theirs));
      for (const p of [0, 1, 2]) {
        const order = (topic: string) => reader.records.filter((r) => r.topic === topic && r.partition === p).map((r) => r.value![0]);
        expect(order(ours)).toEqual(order(theirs));
      }
      // One partition's call fails at once: the send rejects with its error, and only after the
      // other partitions' calls have ended (a transaction is aborted with nothing in flight).
      const ended: number[] = [];
      const failing = {
        sendBatch: async (batch: Parameters<typeof producer.sendBatch>[0]) => {
          const partition = batch.topicMessages![0]!.messages[0]!.partition!;
          if (partition === 1) throw new Error('partition 1 refused');
          await producer.sendBatch(batch);
          ended.push(partition);
        },
      };
      await expect(sendPerPartition(failing, table, [{ topic: ours, messages }])).rejects.toThrow('partition 1 refused');
      expect(ended.sort()).toEqual([0, 2]);
    } finally {
      await reader.stop();
      await producer.disconnect();
    }
  }, 90_000);
});
