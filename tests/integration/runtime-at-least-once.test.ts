import { describe, expect, it } from 'vitest';
import { topicName } from '../../topology/topology.ts';
import { assertAtLeastOnceInOrder, CRASH_PER_USER, CRASH_USERS, keyedFrames } from '../support/frames.ts';
import { collect, createTopology, killMidStream, produce, randomPrefix, startProcessor, useKafka, waitFor } from '../support/kafka.ts';

const USERS = CRASH_USERS;
const PER_USER = CRASH_PER_USER;

describe('stream runtime: at least once against the real broker', () => {
  const fx = useKafka();

  it('survives SIGKILL mid-stream twice: every input comes out, in per-key runs that restart only at the kills', async () => {
    const prefix = randomPrefix('alo-crash');
    const topology = await createTopology(fx.admin, prefix, 3);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_MAX_BATCH_RECORDS: '50', EM_GUARANTEE: 'at-least-once', EM_COMMIT_INTERVAL_MS: '200' };
    const inputs = keyedFrames(USERS, PER_USER);
    const total = inputs.length;
    const reader = await collect(fx.kafka, [topicName(topology, 'passthrough')]);
    // The input arrives over about 25 s, so that the kills land mid-stream: at least once keeps up
    // with any burst, and a restarted instance waits out the killed one's session (10 s).
    const feeding = (async () => {
      for (let i = 0; i < inputs.length; i += 200) {
        await produce(fx.kafka, topicName(topology, 'frames'), inputs.slice(i, i + 200));
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    try {
      for (const killAt of [2500, 6000]) {
        await killMidStream('passthrough', env, `${killAt} outputs`, () => reader.records.length >= killAt);
        expect(new Set(reader.records.map((r) => r.value!.toString('latin1'))).size, 'the kill landed before the end of the stream').toBeLessThan(total);
      }
      await feeding;
      const last = await startProcessor('passthrough', env);
      // Frames are unique per user and sequence number, so distinct values count distinct inputs.
      await waitFor('every input out at least once', () => new Set(reader.records.map((r) => r.value!.toString('latin1'))).size >= total, 120_000, 500);
      await new Promise((r) => setTimeout(r, 2000));
      last.proc.kill('SIGTERM');
      await last.exited;
    } finally {
      await reader.stop();
    }
    const { repeats, maxRuns } = assertAtLeastOnceInOrder(reader.records, USERS, PER_USER);
    // Each kill sends a partition back to its last commit at most once: at most three runs per user.
    expect(maxRuns, `${repeats} repeated outputs`).toBeLessThanOrEqual(3);
  });

  it('commits on SIGTERM: a restart repeats nothing', async () => {
    const prefix = randomPrefix('alo-sigterm');
    const topology = await createTopology(fx.admin, prefix, 3);
    // Commits back to back, so that SIGTERM lands while one is in flight: the stop must wait for it
    // and commit what came after.
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_GUARANTEE: 'at-least-once', EM_COMMIT_INTERVAL_MS: '2' };
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
      expect(assertAtLeastOnceInOrder(reader.records, 30, 100)).toEqual({ repeats: 0, maxRuns: 1 });
      expect(reader.records).toHaveLength(inputs.length);
    } finally {
      await reader.stop();
    }
  });
});
