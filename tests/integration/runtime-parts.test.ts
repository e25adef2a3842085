import { describe, expect, it } from 'vitest';
import { createPassthroughCore } from '../../processors/passthrough/core.ts';
import { processorOptions } from '../../runtime/common-config.ts';
import { loadConfig } from '../../runtime/config.ts';
import { createMetrics } from '../../runtime/metrics.ts';
import { StreamRuntime } from '../../runtime/stream-runtime.ts';
import { assertExactlyOnceInOrder, keyedFrames, registry } from '../support/frames.ts';
import { changelogMessages, restoreChangelog } from '../../runtime/changelog.ts';
import { commitProtocol } from '../../runtime/commit-protocol.ts';
import { Inbox } from '../../runtime/inbox.ts';
import { createLogger } from '../../runtime/log.ts';
import { byPartition, DuplicateWrite, PartitionTable, sendChecked } from '../../runtime/checked-send.ts';
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

  it('checked sends: each record on the partition kafkajs\'s partitioner picks, in order; a partition missing from the answer is sent again; one written twice fails a transaction', async () => {
    const prefix = randomPrefix('checked-send');
    const topology = await createTopology(fx.admin, prefix, 3);
    const ours = topicName(topology, 'frames');
    const theirs = topicName(topology, 'passthrough');
    const txnTopic = topicName(topology, 'emotion-scores');
    const messages = Array.from({ length: 60 }, (_, i) => ({ key: `user-${i % 12}`, value: Buffer.alloc(200, i) }));
    const table = new PartitionTable(fx.admin);
    const producer = fx.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    const txProducer = fx.kafka.producer({ transactionalId: `${prefix}checked`, idempotent: true, maxInFlightRequests: 1 });
    await Promise.all([producer.connect(), txProducer.connect()]);
    const reader = await collect(fx.kafka, [ours, theirs, txnTopic]);
    try {
      // As kafkajs did after a leader moved: partition 1's records left out, the send resolved.
      let calls = 0;
      const mended: string[] = [];
      const skipping = {
        sendBatch: async (batch: Parameters<typeof producer.sendBatch>[0]) => {
          calls++;
          if (calls > 1) return producer.sendBatch(batch);
          const kept = batch.topicMessages!.map((t) => ({ ...t, messages: t.messages.filter((m) => m.partition !== 1) }));
          return producer.sendBatch({ ...batch, topicMessages: kept });
        },
      };
      // One broker here: one call for the whole send.
      expect(await table.manyBrokers()).toBe(false);
      await sendChecked(skipping, table, [{ topic: ours, messages }], { onMended: (m) => mended.push(...m.resent) });
      expect(mended).toEqual([`${ours}[1]`]);
      expect(calls).toBe(2);
      // As on a cluster of several brokers: one call per partition, side by side.
      const perCall: number[][] = [];
      const counting = {
        sendBatch: (batch: Parameters<typeof producer.sendBatch>[0]) => {
          perCall.push([...new Set(batch.topicMessages!.flatMap((t) => t.messages.map((m) => m.partition!)))]);
          return producer.sendBatch(batch);
        },
      };
      await sendChecked(counting, table, [{ topic: ours, messages: messages.slice(0, 24) }], { perPartition: true });
      expect(perCall.map((c) => c.length)).toEqual([1, 1, 1]);
      expect(perCall.flat().sort()).toEqual([0, 1, 2]);
      await producer.send({ topic: theirs, acks: -1, messages });
      const groups = await byPartition(table, [{ topic: ours, messages }]);
      expect(groups.map((g) => g.partition).sort()).toEqual([0, 1, 2]);
      await waitFor('both copies read', () => reader.records.filter((r) => r.topic !== txnTopic).length >= 144, 30_000);
      const where = (topic: string) => new Map(reader.records.filter((r) => r.topic === topic).map((r) => [r.value!.toString('hex'), r.partition]));
      expect(where(ours).size).toBe(60);
      expect(where(ours)).toEqual(where(theirs));
      for (const p of [0, 1, 2]) {
        const order = (topic: string) => reader.records.filter((r) => r.topic === topic && r.partition === p).map((r) => r.value![0]);
        // (ours: the whole send, then the first 24 again in the per-partition send)
        expect(order(ours)).toEqual([...order(theirs), ...order(theirs).filter((v) => v! < 24)]);
      }

      // As kafkajs did when a leader moved the other way: partition 2 in the answer twice.
      const txn = await txProducer.transaction();
      const doubling = {
        sendBatch: async (batch: Parameters<typeof producer.sendBatch>[0]) => {
          const answer = await txn.sendBatch(batch);
          return [...answer, ...answer.filter((r) => r.partition === 2)];
        },
      };
      const err = await sendChecked(doubling, table, [{ topic: txnTopic, messages }], { transactional: true }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(DuplicateWrite);
      await txn.abort();
      const txn2 = await txProducer.transaction();
      await sendChecked(txn2, table, [{ topic: txnTopic, messages: messages.slice(0, 3) }], { transactional: true });
      await txn2.commit();
      await waitFor('the committed transaction', () => reader.records.some((r) => r.topic === txnTopic), 30_000);
      await new Promise((r) => setTimeout(r, 500));
      expect(reader.records.filter((r) => r.topic === txnTopic)).toHaveLength(3);
    } finally {
      await reader.stop();
      await Promise.all([producer.disconnect(), txProducer.disconnect()]);
    }
  }, 90_000);
});

/**
 * The flaky secured-suite test, found: kafkajs's admin.fetchTopicOffsets throws its own TypeError
 * ("Cannot destructure property 'partitions' of 'low.pop(...)'") when a partition of a just-made
 * topic has no leader in its metadata yet, which a loaded machine showed at a task's changelog
 * restore. The task manager starts such a task again, but the batch that waited for the task
 * threw the same error into kafkajs's eachBatch; kafkajs takes an error it does not know as not
 * retriable, crashed the consumer for good, and the processor exited: the SIGTERM test then waited
 * 60 s for outputs of a process that was gone.
 */
describe('a task whose start fails', () => {
  const fx = useKafka();

  it('is started again, and the consumer goes on: every record comes out exactly once, no crash', async () => {
    const prefix = randomPrefix('initfail');
    const topology = await createTopology(fx.admin, prefix, 2);
    const frames = keyedFrames(4, 50);
    await produce(fx.kafka, topicName(topology, 'frames'), frames);
    const reader = await collect(fx.kafka, [topicName(topology, 'passthrough')]);
    // The restore's first look at the changelog fails as kafkajs did.
    let failures = 2;
    const bind = <T extends object>(target: T, key: PropertyKey) => {
      const v = (target as Record<PropertyKey, unknown>)[key];
      return typeof v === 'function' ? v.bind(target) : v;
    };
    const kafka = new Proxy(fx.kafka, {
      get: (target, key) =>
        key !== 'admin'
          ? bind(target, key)
          : () => {
              const admin = target.admin();
              return new Proxy(admin, {
                get: (a, k) =>
                  k !== 'fetchTopicOffsets'
                    ? bind(a, k)
                    : async (topic: string) => {
                        if (topic.endsWith('.changelog') && failures-- > 0) throw new TypeError("Cannot destructure property 'partitions' of 'low.pop(...)' as it is undefined.");
                        return a.fetchTopicOffsets(topic);
                      },
              });
            },
    });
    const crashes: Error[] = [];
    const runtime = new StreamRuntime({
      kafka, topology, spec: processorSpec(topology, 'passthrough'), core: createPassthroughCore(), registry, metrics: createMetrics(), logger: createLogger('error'),
      groupId: `${prefix}passthrough`, guarantee: 'exactly-once', settings: loadConfig(processorOptions, { env: {}, argv: [] }),
    });
    try {
      await runtime.start((err) => crashes.push(err));
      await waitFor('every record out', () => reader.records.length >= frames.length || crashes.length > 0, 60_000);
      expect(crashes.map(String)).toEqual([]);
      expect(failures).toBeLessThanOrEqual(0);
      assertExactlyOnceInOrder(reader.records, 4, 50);
    } finally {
      await runtime.stop();
      await reader.stop();
    }
  }, 120_000);
});
