import { describe, expect, it } from 'vitest';
import { topicName } from '../../topology/topology.ts';
import { assertExactlyOnceInOrder, CRASH_PER_USER, CRASH_USERS, keyedFrames } from '../support/frames.ts';
import { collect, createTopology, killMidStream, metricSum, metricsText, produce, randomPrefix, startProcessor, useKafka, waitFor } from '../support/kafka.ts';

const USERS = CRASH_USERS;
const PER_USER = CRASH_PER_USER;

describe('stream runtime: exactly once against the real broker', () => {
  const fx = useKafka();

  it('survives SIGKILL mid-stream twice: every input comes out exactly once, in per-key order', async () => {
    const prefix = randomPrefix('crash');
    const topology = await createTopology(fx.admin, prefix, 3);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_MAX_BATCH_RECORDS: '50' };
    await produce(fx.kafka, topicName(topology, 'frames'), keyedFrames(USERS, PER_USER));
    const total = USERS * PER_USER;
    const reader = await collect(fx.kafka, [topicName(topology, 'passthrough')]);
    try {
      for (const killAt of [2500, 6000]) {
        await killMidStream('passthrough', env, `${killAt} outputs`, () => reader.records.length >= killAt);
        expect(reader.records.length, 'the kill landed before the end of the stream').toBeLessThan(total);
      }
      const last = await startProcessor('passthrough', env);
      await waitFor('all outputs', () => reader.records.length >= total, 120_000);
      await new Promise((r) => setTimeout(r, 2000)); // room for any duplicate to show up
      last.proc.kill('SIGTERM');
      await last.exited;
      assertExactlyOnceInOrder(reader.records, USERS, PER_USER);
      expect(reader.records).toHaveLength(total);
    } finally {
      await reader.stop();
    }
  });

  it('hands partitions over to a second instance that joins mid-stream, exactly once, in per-key order', async () => {
    const prefix = randomPrefix('rebalance');
    const topology = await createTopology(fx.admin, prefix, 3);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_MAX_BATCH_RECORDS: '50' };
    const total = USERS * PER_USER;
    const reader = await collect(fx.kafka, [topicName(topology, 'passthrough')]);
    const a = await startProcessor('passthrough', env);
    let b: Awaited<ReturnType<typeof startProcessor>> | undefined;
    try {
      const inputs = keyedFrames(USERS, PER_USER);
      const third = Math.floor(inputs.length / 3);
      await produce(fx.kafka, topicName(topology, 'frames'), inputs.slice(0, third));
      await waitFor('first outputs', () => reader.records.length > 500, 60_000, 20, [a]);
      const joiner = await startProcessor('passthrough', env);
      b = joiner;
      // Keep the stream flowing (about 10 s) while the second instance joins and the group rebalances.
      for (let i = third; i < inputs.length; i += 200) {
        await produce(fx.kafka, topicName(topology, 'frames'), inputs.slice(i, i + 200));
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(await fetch(`http://127.0.0.1:${joiner.port}/readyz`).then((r) => r.status), 'the second instance joined the group').toBe(200);
      await waitFor('all outputs', () => reader.records.length >= total, 120_000, 200, [a, joiner]);
      await new Promise((r) => setTimeout(r, 2000));
      const [ma, mb] = await Promise.all([metricsText(a.port), metricsText(b.port)]);
      const inA = metricSum(ma, 'emotionmuse_records_in_total');
      const inB = metricSum(mb, 'emotionmuse_records_in_total');
      expect(inB, 'the second instance took over partitions and processed records').toBeGreaterThan(0);
      expect(inA).toBeGreaterThan(0);
      assertExactlyOnceInOrder(reader.records, USERS, PER_USER);
      expect(reader.records).toHaveLength(total);
    } finally {
      a.proc.kill('SIGTERM');
      b?.proc.kill('SIGTERM');
      await Promise.all([a.exited, b?.exited]);
      await reader.stop();
    }
  });

  it('stops on SIGTERM within 10 seconds with its offsets committed', async () => {
    const prefix = randomPrefix('sigterm');
    const topology = await createTopology(fx.admin, prefix, 3);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_MAX_BATCH_RECORDS: '50' };
    await produce(fx.kafka, topicName(topology, 'frames'), keyedFrames(30, 200));
    const reader = await collect(fx.kafka, [topicName(topology, 'passthrough')]);
    try {
      const p = await startProcessor('passthrough', env);
      await waitFor('some outputs', () => reader.records.length >= 1000, 60_000, 20, [p]);
      const t0 = Date.now();
      p.proc.kill('SIGTERM');
      const { code } = await p.exited;
      const took = Date.now() - t0;
      expect(code).toBe(0);
      expect(took).toBeLessThan(10_000);
      expect(p.logs.join('')).toContain('"msg":"stopped"');

      const offsets = await fx.admin.fetchOffsets({ groupId: `${prefix}passthrough`, topics: [topicName(topology, 'frames')] });
      const committed = offsets[0]!.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
      expect(committed).toBeGreaterThanOrEqual(1000);
      // Every committed input produced exactly one committed output, and nothing beyond.
      await waitFor('reader to catch up', () => reader.records.length === committed, 10_000);
      await new Promise((r) => setTimeout(r, 1000));
      expect(reader.records.length).toBe(committed);
    } finally {
      await reader.stop();
    }
  });
});
