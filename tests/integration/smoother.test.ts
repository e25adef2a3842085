import type { Admin, Kafka } from 'kafkajs';
import type { Guarantee } from '../../topology/topology.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topicName } from '../../topology/topology.ts';
import type { EmotionScore } from '../../schemas/generated/types.ts';
import { collect, createTopology, produce, randomPrefix, startProcessor, testKafka, waitFor } from '../support/kafka.ts';
import { changesByUser, expectedChanges, recordedScores, scoreMessages, withoutEmissionTime } from '../support/sessions.ts';

const USERS = 6; // 6 x 550 frames = 3,300 frames

/** The number of keys each task restored from its changelog, from the processor's JSON log lines. */
function restoredKeys(logs: readonly string[]): number[] {
  return logs
    .join('')
    .split('\n')
    .filter((l) => l.includes('"task ready"'))
    .map((l) => (JSON.parse(l) as { keys: number }).keys);
}

function firstDifference(actual: Map<string, unknown[]>, expected: Map<string, unknown[]>): string {
  for (const [user, want] of expected) {
    const got = actual.get(user) ?? [];
    for (let i = 0; i < Math.max(got.length, want.length); i++) {
      if (JSON.stringify(got[i]) !== JSON.stringify(want[i])) return `${user} #${i}: got ${JSON.stringify(got[i])}, want ${JSON.stringify(want[i])}`;
    }
  }
  return 'none';
}

/** The changes of each user without repeats (at least once may repeat a change after a crash), first occurrences in order. */
function distinct<T>(map: Map<string, T[]>): { changes: Map<string, T[]>; repeats: number } {
  let repeats = 0;
  const changes = new Map<string, T[]>();
  for (const [user, list] of map) {
    const seen = new Set<string>();
    changes.set(user, list.filter((c) => {
      const k = JSON.stringify(c);
      if (seen.has(k)) repeats++;
      return !seen.has(k) && seen.add(k);
    }));
  }
  return { changes, repeats };
}

describe.each(['exactly-once', 'at-least-once'] satisfies Guarantee[])('smoother processor on the real broker, %s', (guarantee) => {
  let kafka: Kafka;
  let admin: Admin;
  let scores: EmotionScore[];
  let expected: ReturnType<typeof withoutEmissionTime>;
  let expectedCount: number;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    scores = await recordedScores(USERS);
    expected = withoutEmissionTime(expectedChanges(scores));
    expectedCount = [...expected.values()].reduce((n, v) => n + v.length, 0);
  }, 120_000);
  afterAll(async () => {
    await admin.disconnect();
  });

  const committed = async (group: string, topic: string) =>
    (await admin.fetchOffsets({ groupId: group, topics: [topic] }))[0]!.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);

  /** Exactly once: the same changes record for record. At least once: the same changes, some perhaps twice. */
  const expectSameChanges = (got: ReturnType<typeof changesByUser>) => {
    const actual = guarantee === 'exactly-once' ? got : distinct(got).changes;
    expect(actual, firstDifference(actual, expected)).toEqual(expected);
  };

  it('emits, after three SIGKILLs at random points, the changes of an uninterrupted run', async () => {
    expect(scores.length).toBeGreaterThanOrEqual(3000);
    expect(expectedCount).toBeGreaterThan(USERS * 3);
    const prefix = randomPrefix(`smoother-crash-${guarantee}`);
    const topology = await createTopology(admin, prefix, 3);
    const input = topicName(topology, 'emotion-scores');
    const reader = await collect(kafka, [topicName(topology, 'emotion-changes')]);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_MAX_BATCH_RECORDS: '20', EM_GUARANTEE: guarantee };
    // The scores arrive over about 12 s, so that every kill lands mid-stream however fast the processor is.
    const messages = scoreMessages(scores);
    const feeding = (async () => {
      for (let i = 0; i < messages.length; i += 50) {
        await produce(kafka, input, messages.slice(i, i + 50));
        await new Promise((r) => setTimeout(r, 180));
      }
    })();
    const kills = [Math.random(), Math.random(), Math.random()].map((f) => Math.floor(scores.length * (0.1 + 0.8 * f))).sort((a, b) => a - b);
    const restored: number[] = [];
    try {
      for (const at of kills) {
        const p = await startProcessor('smoother', env);
        await waitFor(`${at} inputs committed`, async () => (await committed(`${prefix}smoother`, input)) >= at, 120_000, 10);
        p.proc.kill('SIGKILL');
        await p.exited;
        restored.push(...restoredKeys(p.logs));
      }
      await feeding;
      const last = await startProcessor('smoother', env);
      await waitFor('all inputs committed', async () => (await committed(`${prefix}smoother`, input)) >= scores.length, 120_000);
      await waitFor('all changes read', () => reader.records.length >= expectedCount, 20_000);
      await new Promise((r) => setTimeout(r, 1500));
      last.proc.kill('SIGTERM');
      await last.exited;
      restored.push(...restoredKeys(last.logs));
      expect(restored.some((k) => k > 0), `state was restored from the changelog after a kill (kills at ${kills.join(', ')})`).toBe(true);
      expectSameChanges(changesByUser(reader.records.map((r) => r.value)));
    } finally {
      await reader.stop();
    }
  });

  it('emits the changes of an uninterrupted run when a second instance joins mid-stream', async () => {
    const prefix = randomPrefix(`smoother-rebalance-${guarantee}`);
    const topology = await createTopology(admin, prefix, 3);
    const input = topicName(topology, 'emotion-scores');
    const messages = scoreMessages(scores);
    const reader = await collect(kafka, [topicName(topology, 'emotion-changes')]);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_MAX_BATCH_RECORDS: '20', EM_GUARANTEE: guarantee };
    const a = await startProcessor('smoother', env);
    let b: Awaited<ReturnType<typeof startProcessor>> | undefined;
    try {
      const third = Math.floor(messages.length / 3);
      await produce(kafka, input, messages.slice(0, third));
      await waitFor('first third committed', async () => (await committed(`${prefix}smoother`, input)) >= third / 2, 60_000, 20);
      b = await startProcessor('smoother', env);
      for (let i = third; i < messages.length; i += 100) {
        await produce(kafka, input, messages.slice(i, i + 100));
        await new Promise((r) => setTimeout(r, 100));
      }
      await waitFor('all inputs committed', async () => (await committed(`${prefix}smoother`, input)) >= messages.length, 120_000);
      await waitFor('all changes read', () => reader.records.length >= expectedCount, 20_000);
      await new Promise((r) => setTimeout(r, 1500));
      expect(b.logs.join(''), 'the second instance took partitions').toMatch(/"msg":"task ready"/);
      expectSameChanges(changesByUser(reader.records.map((r) => r.value)));
    } finally {
      a.proc.kill('SIGTERM');
      b?.proc.kill('SIGTERM');
      await Promise.all([a.exited, b?.exited]);
      await reader.stop();
    }
  });
});
