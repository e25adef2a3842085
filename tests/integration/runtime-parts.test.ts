import { describe, expect, it } from 'vitest';
import { changelogMessages, restoreChangelog } from '../../runtime/changelog.ts';
import { commitProtocol } from '../../runtime/commit-protocol.ts';
import { Inbox } from '../../runtime/inbox.ts';
import { createLogger } from '../../runtime/log.ts';
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
      kafka: fx.kafka, consumer: fx.kafka.consumer({ groupId: `${prefix}unused` }), logger, groupId: `${prefix}passthrough`, changelog: undefined, commitIntervalMs: 100,
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
});
