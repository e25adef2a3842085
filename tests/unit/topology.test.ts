import { describe, expect, it } from 'vitest';
import { describeTopology } from '../../topology/apply.ts';
import { allTopics, buildTopology, topicName, topicSpec, validateTopology, type Topology } from '../../topology/topology.ts';

describe('topology', () => {
  const topology = buildTopology({ prefix: 'p.' });

  it('names topics with the prefix and a version suffix', () => {
    expect(topicName(topology, 'frames')).toBe('p.frames.v1');
    expect(allTopics(topology).every((t) => t.name.startsWith('p.'))).toBe(true);
  });

  it('declares the six message topics of the design, keyed by user', () => {
    const kinds = topology.topics.map((t) => t.valueKind);
    for (const kind of ['frame', 'emotion-score', 'emotion-change', 'listen', 'recommendation', 'dead-letter']) expect(kinds).toContain(kind);
    expect(topology.topics.every((t) => t.key === 'userId')).toBe(true);
  });

  it('adds a compacted changelog, co-partitioned with the inputs, for each stateful processor', () => {
    const changelogs = allTopics(buildTopology({ prefix: 'p.', stateVersions: { smoother: 'v7-x' } })).filter((t) => t.id === 'changelog');
    expect(changelogs.map((t) => t.name)).toEqual(['p.smoother.state-v7-x.changelog', 'p.passthrough.state-v1.changelog']);
    // without the wiring's versions, every changelog is v1 (a processor of other parameters creates its own)
    expect(allTopics(topology).filter((t) => t.id === 'changelog').map((t) => t.name)).toEqual(['p.smoother.state-v1.changelog', 'p.passthrough.state-v1.changelog']);
    expect(changelogs[0]).toMatchObject({ cleanupPolicy: 'compact', partitions: 6, retentionMs: -1 });
  });

  it('is valid, and catches inputs that are not co-partitioned', () => {
    expect(validateTopology(topology)).toEqual([]);
    const broken: Topology = {
      ...topology,
      topics: topology.topics.map((t) => (t.id === 'listens' ? { ...t, partitions: 3 } : t)),
      processors: [{ name: 'joiner', inputs: ['emotion-changes', 'listens'], outputs: [], stateful: false, guarantee: 'exactly-once', description: '' }],
    };
    expect(validateTopology(broken)).toEqual(['joiner: inputs emotion-changes, listens are not co-partitioned']);
  });

  it('describes the layout as a table', () => {
    const text = describeTopology(topology);
    expect(text).toMatch(/p\.frames\.v1\s+6\s+1\s+1h\s+delete\s+CreateTime\s+userId\s+frame/);
    expect(text).toMatch(/p\.emotion-scores\.v1\s+6\s+1\s+1d\s+delete\s+LogAppendTime\s+userId/);
    expect(text).toContain('passthrough: frames -> passthrough, dead-letter-frames');
  });
});

describe('dead letters of frames', () => {
  it('go to a topic that keeps them no longer than the frames topic keeps frames (they may hold faces)', () => {
    const t = buildTopology();
    expect(topicSpec(t, 'dead-letter-frames').retentionMs).toBe(topicSpec(t, 'frames').retentionMs);
    expect(topicSpec(t, 'dead-letter').retentionMs).toBeGreaterThan(topicSpec(t, 'frames').retentionMs);
    for (const p of t.processors) {
      const readsFrames = p.inputs.includes('frames');
      expect(p.outputs.includes('dead-letter-frames'), p.name).toBe(readsFrames);
      expect(p.outputs.includes('dead-letter'), p.name).toBe(!readsFrames);
    }
  });
});
