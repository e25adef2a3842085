import { describe, expect, it } from 'vitest';
import { topicName } from '../../topology/topology.ts';
import { assertAtLeastOnceInOrder, keyedFrames } from '../support/frames.ts';
import { collect, createTopology, metricSum, metricsText, produce, randomPrefix, startProcessor, useKafka, waitFor } from '../support/kafka.ts';

const USERS = 60;
const PER_USER = 167; // 10,020 keyed records over 3 partitions

describe('stream runtime: at least once against the real broker', () => {
  const fx = useKafka();

  it('survives SIGKILL mid-stream twice: every input comes out, first in per-key order, and the state drops what it had seen', async () => {
    const prefix = randomPrefix('alo-crash');
    const topology = await createTopology(fx.admin, prefix, 3);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_MAX_BATCH_RECORDS: '50', EM_GUARANTEE: 'at-least-once', EM_COMMIT_INTERVAL_MS: '200' };
    await produce(fx.kafka, topicName(topology, 'frames'), keyedFrames(USERS, PER_USER));
    const total = USERS * PER_USER;
    const reader = await collect(fx.kafka, [topicName(topology, 'passthrough')]);
    let skipped = 0;
    try {
      for (const killAt of [2500, 6000]) {
        const p = await startProcessor('passthrough', env);
        await waitFor(`${killAt} outputs`, () => reader.records.length >= killAt, 120_000, 20);
        p.proc.kill('SIGKILL');
        expect((await p.exited).signal).toBe('SIGKILL');
        expect(reader.records.length, 'the kill landed before the end of the stream').toBeLessThan(total);
      }
      const last = await startProcessor('passthrough', env);
      // Frames are unique per user and sequence number, so distinct values count distinct inputs.
      await waitFor('every input out at least once', () => new Set(reader.records.map((r) => r.value!.toString('latin1'))).size >= total, 120_000, 500);
      await new Promise((r) => setTimeout(r, 2000));
      skipped = metricSum(await metricsText(last.port), 'emotionmuse_records_skipped_total');
      last.proc.kill('SIGTERM');
      await last.exited;
    } finally {
      await reader.stop();
    }
    const repeats = assertAtLeastOnceInOrder(reader.records, USERS, PER_USER);
    // Records processed again after a kill are dropped by the restored state (it is flushed before
    // every offset commit); only those after the last flush come out twice.
    expect(repeats, `${repeats} repeated outputs`).toBeLessThan(total / 4);
    expect(skipped, 'the restored state dropped records it had already seen').toBeGreaterThan(0);
  });

  it('commits on SIGTERM: a restart repeats nothing', async () => {
    const prefix = randomPrefix('alo-sigterm');
    const topology = await createTopology(fx.admin, prefix, 3);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_GUARANTEE: 'at-least-once' };
    const inputs = keyedFrames(30, 100);
    await produce(fx.kafka, topicName(topology, 'frames'), inputs.slice(0, 1500));
    const reader = await collect(fx.kafka, [topicName(topology, 'passthrough')]);
    try {
      const first = await startProcessor('passthrough', env);
      await waitFor('first half out', () => reader.records.length >= 1500, 60_000, 20);
      first.proc.kill('SIGTERM');
      expect((await first.exited).code).toBe(0);
      await produce(fx.kafka, topicName(topology, 'frames'), inputs.slice(1500));
      const second = await startProcessor('passthrough', env);
      await waitFor('all out', () => reader.records.length >= inputs.length, 60_000, 20);
      await new Promise((r) => setTimeout(r, 1500));
      second.proc.kill('SIGTERM');
      await second.exited;
      expect(assertAtLeastOnceInOrder(reader.records, 30, 100)).toBe(0);
      expect(reader.records).toHaveLength(inputs.length);
    } finally {
      await reader.stop();
    }
  });
});
