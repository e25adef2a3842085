import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import kafkajs, { type Admin } from 'kafkajs';
import { applyTopology } from '../../topology/apply.ts';
import { allTopics, buildTopology, topicName } from '../../topology/topology.ts';
import { collect, produce, randomPrefix, testKafka, waitFor } from '../support/kafka.ts';

describe('topics apply', () => {
  let admin: Admin;
  beforeAll(async () => {
    admin = testKafka().admin();
    await admin.connect();
  });
  afterAll(async () => {
    await admin.disconnect();
  });

  it('creates what is missing, and a second run changes nothing', async () => {
    const topology = buildTopology({ prefix: randomPrefix('apply'), partitions: 2 });
    const first = await applyTopology(admin, topology);
    expect(first.map((a) => a.kind)).toEqual(allTopics(topology).map(() => 'created'));
    const second = await applyTopology(admin, topology);
    expect(second.map((a) => a.kind)).toEqual(allTopics(topology).map(() => 'unchanged'));
    const meta = await admin.fetchTopicMetadata({ topics: [topicName(topology, 'frames')] });
    expect(meta.topics[0]!.partitions).toHaveLength(2);
  });

  it('reports a wrong partition count as drift and leaves the data alone', async () => {
    const topology = buildTopology({ prefix: randomPrefix('drift'), partitions: 3 });
    const frames = topicName(topology, 'frames');
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: frames, numPartitions: 1, replicationFactor: 1 }] });
    await produce(testKafka(), frames, [{ key: 'k', value: Buffer.from('precious') }]);

    const actions = await applyTopology(admin, topology, { fixConfig: true });
    const drift = actions.find((a) => a.topic === frames);
    expect(drift).toMatchObject({ kind: 'drift' });
    expect(drift?.kind === 'drift' && drift.problems.join()).toContain('partitions: declared 3, found 1');

    const offsets = await admin.fetchTopicOffsets(frames);
    expect(offsets).toHaveLength(1);
    expect(offsets[0]!.high).toBe('1');
  });

  it('grows a topic no stateful stage reads when asked, and refuses a keyed stateful one, saying why and what to do', async () => {
    const prefix = randomPrefix('grow');
    const small = buildTopology({ prefix, partitions: 2 });
    await applyTopology(admin, small);
    const big = buildTopology({ prefix, partitions: 4 });
    const count = async (id: Parameters<typeof topicName>[1]) => (await admin.fetchTopicMetadata({ topics: [topicName(big, id)] })).topics[0]!.partitions.length;

    // without the flag, the short topics are drift, and the message says which ones could grow
    const asked = await applyTopology(admin, big);
    const changes = asked.find((a) => a.topic === topicName(big, 'emotion-changes'));
    expect(changes?.kind === 'drift' && changes.problems.join()).toContain('--grow-partitions grows this one');
    expect(await count('emotion-changes')).toBe(2);

    const actions = await applyTopology(admin, big, { growPartitions: true });
    const by = (id: Parameters<typeof topicName>[1]) => actions.find((a) => a.topic === topicName(big, id));
    // read only by the recommender (user state in Redis) and the gateway: grown
    expect(by('emotion-changes')).toEqual({ kind: 'grown', topic: topicName(big, 'emotion-changes'), from: 2, to: 4 });
    expect(by('recommendations')).toMatchObject({ kind: 'grown', from: 2, to: 4 });
    expect(await count('emotion-changes')).toBe(4);
    // the smoother keeps each user's state by partition of the scores: refused, and left alone
    const scores = by('emotion-scores');
    expect(scores?.kind).toBe('drift');
    expect(scores?.kind === 'drift' && scores.problems.join()).toMatch(/not grown: smoother keeps each key's state by partition of this topic.*new version of the topic/);
    expect(await count('emotion-scores')).toBe(2);
    const changelog = actions.find((a) => a.topic.includes('.state-'));
    expect(changelog?.kind === 'drift' && changelog.problems.join()).toContain('a changelog holds each key\'s state');
    // a second run grows nothing more
    const again = await applyTopology(admin, big, { growPartitions: true });
    expect(again.find((a) => a.topic === topicName(big, 'emotion-changes'))?.kind).toBe('unchanged');
  });

  it('reports config drift, fixes it only when asked, and is quiet afterwards', async () => {
    const topology = buildTopology({ prefix: randomPrefix('config'), partitions: 1 });
    await applyTopology(admin, topology);
    const listens = topicName(topology, 'listens');
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: listens, configEntries: [{ name: 'retention.ms', value: '1000' }, { name: 'cleanup.policy', value: 'delete' }] }],
    });
    // A KRaft broker applies a config change from its metadata log a moment after answering.
    await waitFor('the altered retention to be visible', async () => {
      const { resources } = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: listens }] });
      return resources[0]?.configEntries.find((e) => e.configName === 'retention.ms')?.configValue === '1000';
    }, 10_000, 50);
    const reported = await applyTopology(admin, topology);
    expect(reported.find((a) => a.topic === listens)).toMatchObject({ kind: 'drift' });
    const fixed = await applyTopology(admin, topology, { fixConfig: true });
    expect(fixed.find((a) => a.topic === listens)).toMatchObject({ kind: 'config-updated', changes: expect.arrayContaining(['retention.ms: 1000 -> 604800000']) });
    const again = await applyTopology(admin, topology);
    expect(again.every((a) => a.kind === 'unchanged')).toBe(true);
  });

  it('stamps the records a stage writes with the broker\'s time, and keeps a frame\'s capture time', async () => {
    const topology = buildTopology({ prefix: randomPrefix('stamps'), partitions: 1 });
    await applyTopology(admin, topology);
    const scores = topicName(topology, 'emotion-scores');
    const frames = topicName(topology, 'frames');
    const writerTime = String(Date.now() - 3_600_000);
    const before = Date.now();
    await produce(testKafka(), scores, [{ key: 'u', value: Buffer.from('s'), timestamp: writerTime }]);
    await produce(testKafka(), frames, [{ key: 'u', value: Buffer.from('f'), timestamp: writerTime }]);
    const after = Date.now();
    const reader = await collect(testKafka(), [scores, frames]);
    try {
      await waitFor('both records', () => reader.records.length === 2, 30_000, 50);
    } finally {
      await reader.stop();
    }
    const score = reader.records.find((r) => r.topic === scores)!;
    expect(score.timestamp).toBeGreaterThanOrEqual(before);
    expect(score.timestamp).toBeLessThanOrEqual(after);
    expect(reader.records.find((r) => r.topic === frames)!.timestamp).toBe(Number(writerTime));
  });
});
