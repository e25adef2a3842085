import { readdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { TopologyTestDriver } from '../../runtime/test-driver.ts';
import type { ProcessorCore } from '../../runtime/processor.ts';
import { EmotionMuseError } from '../../schemas/errors.ts';
import type { DeadLetter, EmotionChange, EmotionScore, Frame } from '../../schemas/generated/types.ts';
import { buildTopology } from '../../topology/topology.ts';
import { createPassthroughCore } from '../../processors/passthrough/core.ts';
import { createSmootherCore, DEFAULT_SMOOTHER_CONFIG } from '../../processors/smoother/core.ts';
import { createClassifierCore } from '../../processors/classifier/core.ts';
import { ClassifierEngine } from '../../processors/classifier/engine.ts';
import { FER_PUBLIC_TEST } from '../../sessions/faces.ts';

const topology = buildTopology({ prefix: 'drv.', partitions: 3 });

const grey = (user: string, seq: number, data: Frame['data'] = Buffer.alloc(48 * 48, 100), session = 's1'): Frame => ({
  userId: user, sessionId: session, seq, captureTimeMs: 1_000_000 + seq * 100, encoding: 'GRAY8', width: 48, height: 48, data, faceBox: null, probabilities: [], edgeModelVersion: '',
});

describe('in-memory topology driver: the runtime\'s batch step with no broker', () => {
  it('runs the pass-through core: partitions by key, keeps state per key, drops a repeat, and reads outputs in per-key order', async () => {
    const driver = new TopologyTestDriver({ topology, cores: { passthrough: createPassthroughCore() }, maxBatchRecords: 4 });
    for (const user of ['ana', 'ben', 'cleo']) for (let seq = 1; seq <= 5; seq++) driver.pipe('frames', user, grey(user, seq));
    driver.pipe('frames', 'ana', grey('ana', 3)); // late repeat
    await driver.run();
    const out = driver.read<Frame>('passthrough');
    expect(out).toHaveLength(15);
    for (const user of ['ana', 'ben', 'cleo']) expect(out.filter((r) => r.key === user).map((r) => r.value.seq)).toEqual([1, 2, 3, 4, 5]);
    // one partition per key, as kafkajs's default partitioner puts them
    for (const user of ['ana', 'ben', 'cleo']) expect(new Set(out.filter((r) => r.key === user).map((r) => r.partition)).size).toBe(1);
    expect(driver.state<{ forwarded: number }>('passthrough').get('ana')).toMatchObject({ lastSeq: 5, forwarded: 5 });
    expect(driver.read('dead-letter-frames')).toEqual([]);
  });

  it('dead-letters what cannot be decoded or checked, with its code and coordinates, and goes on', async () => {
    const driver = new TopologyTestDriver({ topology, cores: { passthrough: createPassthroughCore() }, maxRecordBytes: 64 * 1024 });
    driver.pipe('frames', 'ana', grey('ana', 1));
    driver.pipeRaw('frames', 'ana', Buffer.from([0, 1, 2, 3, 4, 5]));
    driver.pipeRaw('frames', 'ana', null);
    driver.pipeRaw('frames', 'ana', Buffer.alloc(100 * 1024, 7));
    driver.pipe('frames', 'ben', grey('ana', 2)); // key names another user
    driver.pipe('frames', 'ana', grey('ana', 3, Buffer.alloc(10))); // GRAY8 of the wrong size: the core rejects it
    driver.pipe('frames', 'ana', grey('ana', 4));
    await driver.run();
    expect(driver.read<Frame>('passthrough').map((r) => r.value.seq)).toEqual([1, 4]);
    const dead = driver.read<DeadLetter>('dead-letter-frames').map((r) => r.value);
    expect(dead.map((d) => d.errorCode).sort()).toEqual(['INVALID_RECORD', 'INVALID_RECORD', 'NOT_SINGLE_OBJECT', 'OVERSIZED_RECORD', 'UNDECODABLE_FRAME'].sort());
    for (const d of dead) expect(d).toMatchObject({ stage: 'passthrough', sourceTopic: 'drv.frames.v1' });
    expect(driver.read('dead-letter')).toEqual([]);
  });

  describe('failure policy', () => {
    const echo = (extra: Partial<ProcessorCore<never>>): ProcessorCore<never> => ({
      name: 'passthrough',
      process: (_s, record) => ({ state: undefined, outputs: [{ to: 'passthrough', key: record.key, value: record.value }] }),
      ...extra,
    });

    it('retries a batch whose service is away (a retriable error) and then processes it once, dead-lettering nothing', async () => {
      let away = 2;
      const told: number[] = [];
      const core = echo({
        async prepare(records) {
          if (away-- > 0) throw new EmotionMuseError('SERVICE_UNAVAILABLE', 'redis is away', { retriable: true });
          return records.map(() => undefined);
        },
      });
      const driver = new TopologyTestDriver({ topology, cores: { passthrough: core }, onRetry: (_stage, attempt) => void told.push(attempt) });
      for (let seq = 1; seq <= 3; seq++) driver.pipe('frames', 'ana', grey('ana', seq));
      await driver.run();
      expect(told).toEqual([1, 2]);
      expect(driver.retries.get('passthrough')).toBe(2);
      expect(driver.read<Frame>('passthrough').map((r) => r.value.seq)).toEqual([1, 2, 3]);
      expect(driver.read('dead-letter-frames')).toEqual([]);
    });

    it('a retriable error from process retries the whole batch too; one that lasts fails the run', async () => {
      const core = echo({ process: () => { throw new EmotionMuseError('SERVICE_UNAVAILABLE', 'always away', { retriable: true }); } });
      const driver = new TopologyTestDriver({ topology, cores: { passthrough: core }, maxAttempts: 3 });
      driver.pipe('frames', 'ana', grey('ana', 1));
      await expect(driver.run()).rejects.toThrow(/always away/);
      expect(driver.retries.get('passthrough')).toBe(2);
      expect(driver.read('passthrough')).toEqual([]);
    });

    it('dead-letters the one record a core rejects (its code), and an unexpected error as PROCESSING_FAILED', async () => {
      const core = echo({
        process: (_s, record) => {
          const seq = (record.value as Frame).seq;
          if (seq === 2) throw new EmotionMuseError('UNKNOWN_TRACK', 'not in the catalogue');
          if (seq === 3) throw new TypeError('a bug');
          return { state: undefined, outputs: [{ to: 'passthrough', key: record.key, value: record.value }] };
        },
      });
      const driver = new TopologyTestDriver({ topology, cores: { passthrough: core } });
      for (let seq = 1; seq <= 4; seq++) driver.pipe('frames', 'ana', grey('ana', seq));
      await driver.run();
      expect(driver.read<Frame>('passthrough').map((r) => r.value.seq)).toEqual([1, 4]);
      expect(driver.read<DeadLetter>('dead-letter-frames').map((r) => [r.value.sourceOffset, r.value.errorCode])).toEqual([[1, 'UNKNOWN_TRACK'], [2, 'PROCESSING_FAILED']]);
    });

    it('fails the run when a core writes to a topic its topology does not declare', async () => {
      const core = echo({ process: (_s, record) => ({ state: undefined, outputs: [{ to: 'recommendations', key: record.key, value: record.value }] }) });
      const driver = new TopologyTestDriver({ topology, cores: { passthrough: core } });
      driver.pipe('frames', 'ana', grey('ana', 1));
      await expect(driver.run()).rejects.toThrow(/passthrough wrote to recommendations/);
      expect(driver.read('recommendations')).toEqual([]);
    });
  });
});

describe('classifier and smoother cores through the driver (real models, FER-2013 faces)', () => {
  let engine: ClassifierEngine;
  let faces: Buffer[];
  beforeAll(async () => {
    engine = await ClassifierEngine.create({ providers: ['cpu'], threads: 1, inferenceThreads: 0 });
    const dir = path.join(FER_PUBLIC_TEST, 'happy');
    faces = await Promise.all(readdirSync(dir).sort().slice(0, 40).map(async (f) => (await sharp(path.join(dir, f)).greyscale().resize(48, 48).raw().toBuffer())));
  }, 60_000);

  it('scores edge crops, passes edge scores and no-face markers on, dead-letters a corrupt JPEG and bad edge scores; the smoother turns the scores into a change', async () => {
    const changes: EmotionChange[] = [];
    const driver = new TopologyTestDriver({
      topology,
      cores: {
        classifier: createClassifierCore(engine, undefined, { maxBatch: 16 }),
        smoother: createSmootherCore(DEFAULT_SMOOTHER_CONFIG, { onChange: (c) => void changes.push(c) }),
      },
    });
    faces.forEach((data, i) => driver.pipe('frames', 'ana', grey('ana', i + 1, data)));
    const at = faces.length;
    driver.pipe('frames', 'ana', { ...grey('ana', at + 1), encoding: 'NONE', width: 0, height: 0, data: Buffer.alloc(0) });
    driver.pipe('frames', 'ana', { ...grey('ana', at + 2), encoding: 'SCORES', width: 0, height: 0, data: Buffer.alloc(0), probabilities: [0, 0, 0, 1, 0, 0, 0], edgeModelVersion: 'edge-1' });
    driver.pipe('frames', 'ana', { ...grey('ana', at + 3), encoding: 'JPEG', width: 0, height: 0, data: Buffer.from('not a jpeg at all') });
    driver.pipe('frames', 'ana', { ...grey('ana', at + 4), encoding: 'SCORES', width: 0, height: 0, data: Buffer.alloc(0), probabilities: [0.5, 0.5, 0.5, 0, 0, 0, 0], edgeModelVersion: 'edge-1' });
    await driver.run();

    const scores = driver.read<EmotionScore>('emotion-scores').map((r) => r.value);
    expect(scores.map((s) => s.seq)).toEqual([...Array.from({ length: at + 2 }, (_, i) => i + 1)]);
    const served = scores.slice(0, at);
    for (const s of served) {
      expect(s).toMatchObject({ faceFound: true, scoredAt: 'SERVER', modelVersion: engine.modelVersion });
      expect(s.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    }
    expect(scores[at]).toMatchObject({ faceFound: false, scoredAt: 'EDGE', probabilities: [] });
    expect(scores[at + 1]).toMatchObject({ faceFound: true, scoredAt: 'EDGE', modelVersion: 'edge-1', probabilities: [0, 0, 0, 1, 0, 0, 0] });
    expect(driver.read<DeadLetter>('dead-letter-frames').map((r) => [r.value.sourceOffset, r.value.errorCode])).toEqual([[at + 2, 'UNDECODABLE_FRAME'], [at + 3, 'INVALID_RECORD']]);

    // The model calls most of these happy faces happy; the smoother's change says what it called them most.
    const argmax = (p: number[]) => p.indexOf(Math.max(...p));
    const happy = served.filter((s) => argmax(s.probabilities) === 3).length;
    expect(happy).toBeGreaterThan(served.length / 2);
    const out = driver.read<EmotionChange>('emotion-changes').map((r) => r.value);
    expect(out.length).toBeGreaterThanOrEqual(1);
    expect(out[0]).toMatchObject({ userId: 'ana', sessionId: 's1', label: 'happy', previousLabel: null, scheme: 'filter' });
    expect(changes).toHaveLength(out.length);
    expect(driver.state('smoother').has('ana')).toBe(true);
  }, 60_000);
});
