import type { Message } from 'kafkajs';
import { describe, expect, inject, it } from 'vitest';
import { recommenderOptions } from '../../processors/index.ts';
import { loadCatalogue } from '../../processors/recommender/catalogue.ts';
import type { EmotionChange, Frame, Listen } from '../../schemas/generated/types.ts';
import { seededRandom } from '../../sessions/timeline.ts';
import { topicName, type TopicId } from '../../topology/topology.ts';
import { frame, registry } from '../support/frames.ts';
import { collect, createTopology, metricSum, metricsText, produce, randomPrefix, startProcessor, useKafka, waitFor } from '../support/kafka.ts';

const BAD = 10_000;
const MAX_RECORD_BYTES = 64 * 1024;

type Gen = (i: number, random: () => number) => { key: string | null; value: Buffer | null };

const catalogue = loadCatalogue(recommenderOptions.modelDir.default);
const probs = [0.02, 0.02, 0.02, 0.88, 0.02, 0.02, 0.02];
const change = (user: string, extra: Partial<EmotionChange> = {}): EmotionChange => ({ userId: user, sessionId: 's', previousLabel: null, label: 'happy', probabilities: probs, valence: 0.8, arousal: 0.6, windowIndex: 4, windowEndSeq: 50, captureTimeMs: 1_764_000_000_000, emittedTimeMs: 1_764_000_000_000, scheme: 'paper', confidence: null, ...extra });
const listen = (user: string, extra: Partial<Listen> = {}): Listen => ({ listenId: `l-${user}`, userId: user, trackId: catalogue.ids[7]!, startTimeMs: 1_764_000_000_000, listenedMs: 30_000, outcome: 'COMPLETED', ...extra });
const grey = (user: string, seq: number, extra: Partial<Frame> = {}) => frame(user, seq, { width: 48, height: 48, data: Buffer.alloc(48 * 48, 120), ...extra });
const pick = <T,>(random: () => number, list: readonly T[]): T => list[Math.floor(random() * list.length)]!;

/** Bytes that are not a record of the kind: noise, cut-off Avro, another kind, nothing. */
function broken(random: () => number, good: Buffer): Buffer | null {
  switch (Math.floor(random() * 5)) {
    case 0:
      return Buffer.from(Array.from({ length: 1 + Math.floor(random() * 200) }, () => Math.floor(random() * 256)));
    case 1:
      return good.subarray(0, 10 + Math.floor(random() * Math.max(1, good.length - 11)));
    case 2: {
      const flipped = Buffer.from(good);
      flipped[2 + Math.floor(random() * 8)]! ^= 0xff; // the schema fingerprint
      return flipped;
    }
    case 3:
      return registry.encode('listen', listen('x'));
    default:
      return null;
  }
}

/** Bad records per input kind: broken bytes, wrong keys, and values Avro accepts but the pipeline must not. */
const BAD_FRAMES: Gen = (i, random) => {
  const user = `fz-f${i % 50}`;
  const r = random();
  if (r < 0.3) return { key: user, value: broken(random, registry.encode('frame', grey(user, i + 1))) };
  if (r < 0.4) return { key: pick(random, [null, 'someone-else']), value: registry.encode('frame', grey(user, i + 1)) };
  const bad = pick<Partial<Frame>>(random, [
    { data: Buffer.alloc(100) },
    { encoding: 'JPEG', data: Buffer.from('not a jpeg at all') },
    { encoding: 'PNG', data: Buffer.alloc(0) },
    { encoding: 'SCORES', data: Buffer.alloc(0), probabilities: [0.5, 0.5, 0.5, 0, 0, 0, 0], edgeModelVersion: 'm' },
    { encoding: 'SCORES', data: Buffer.alloc(0), probabilities: [Number.NaN, 0, 0, 1, 0, 0, 0], edgeModelVersion: 'm' },
    { captureTimeMs: -5 },
    { faceBox: { x: Number.NaN, y: 0, width: 10, height: 10 } },
    { encoding: 'JPEG', data: Buffer.alloc(MAX_RECORD_BYTES + 10, 7) },
  ]);
  return { key: user, value: registry.encode('frame', grey(user, i + 1, bad)) };
};
const BAD_CHANGES: Gen = (i, random) => {
  const user = `fz-c${i % 50}`;
  const r = random();
  if (r < 0.3) return { key: user, value: broken(random, registry.encode('emotion-change', change(user))) };
  if (r < 0.4) return { key: pick(random, [null, 'someone-else']), value: registry.encode('emotion-change', change(user)) };
  const bad = pick<Partial<EmotionChange>>(random, [
    { valence: Number.NaN },
    { arousal: Number.NEGATIVE_INFINITY },
    { valence: -0.5 },
    { probabilities: [1, 1, 1, 1, 1, 1, 1] },
    { probabilities: [] },
    { sessionId: '' },
    { probabilities: [Number.NaN, 0, 0, 1, 0, 0, 0] },
  ]);
  return { key: user, value: registry.encode('emotion-change', change(user, bad)) };
};
const BAD_LISTENS: Gen = (i, random) => {
  const user = `fz-l${i % 50}`;
  const r = random();
  if (r < 0.3) return { key: user, value: broken(random, registry.encode('listen', listen(user))) };
  if (r < 0.4) return { key: pick(random, [null, 'someone-else']), value: registry.encode('listen', listen(user)) };
  const bad = pick<Partial<Listen>>(random, [{ listenedMs: -1 }, { trackId: 'no-such-track' }, { trackId: '' }, { listenId: 'y'.repeat(300) }, { listenedMs: -30_000 }]);
  return { key: user, value: registry.encode('listen', listen(user, bad)) };
};

describe('fuzz: 10,000 bad records among valid ones, through the three stages', () => {
  const fx = useKafka();

  it('dead-letters every bad record with a code and its coordinates, processes every valid one, and stays ready; the counts reconcile exactly', async () => {
    const prefix = randomPrefix('fuzz');
    const topology = await createTopology(fx.admin, prefix, 3);
    const random = seededRandom(2026);
    const plan: Array<{ topic: TopicId; gen: Gen; share: number }> = [
      { topic: 'frames', gen: BAD_FRAMES, share: 0.4 },
      { topic: 'emotion-changes', gen: BAD_CHANGES, share: 0.3 },
      { topic: 'listens', gen: BAD_LISTENS, share: 0.3 },
    ];
    const expected = { badBy: new Map<string, number>(), validFrames: 0, validChanges: 0, validListens: 0 };
    for (const { topic, gen, share } of plan) {
      const n = Math.round(BAD * share);
      const messages: Message[] = [];
      for (let i = 0; i < n; i++) {
        messages.push(gen(i, random));
        // A valid record after every 25 bad ones, each of a user of its own (so each change and
        // listen makes exactly one list, and each frame one score).
        if (i % 25 === 0) {
          const k = i / 25;
          if (topic === 'frames') {
            messages.push({ key: `fz-ok${k}`, value: registry.encode('frame', grey(`fz-ok${k}`, 1)) });
            expected.validFrames++;
          } else if (topic === 'emotion-changes') {
            messages.push({ key: `fz-okc${k}`, value: registry.encode('emotion-change', change(`fz-okc${k}`)) });
            expected.validChanges++;
          } else {
            messages.push({ key: `fz-okl${k}`, value: registry.encode('listen', listen(`fz-okl${k}`)) });
            expected.validListens++;
          }
        }
      }
      expected.badBy.set(topicName(topology, topic), n);
      // (frames in small requests: some are over the record limit, 64 KiB each, and a request must stay under the broker's 1 MiB)
      await produce(fx.kafka, topicName(topology, topic), messages, topic === 'frames' ? 12 : 500);
    }
    const dead = [topicName(topology, 'dead-letter'), topicName(topology, 'dead-letter-frames')];
    const reader = await collect(fx.kafka, [...dead, topicName(topology, 'emotion-scores'), topicName(topology, 'recommendations')]);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: `${prefix}r:`, EM_MAX_RECORD_BYTES: String(MAX_RECORD_BYTES), EM_EXECUTION_PROVIDERS: 'cpu' };
    const processors = [await startProcessor('classifier', env), await startProcessor('recommender', env)];
    try {
      const count = (topic: string) => reader.records.filter((r) => r.topic === topic).length;
      const wantLists = expected.validChanges + expected.validListens;
      const tally = () => `${dead.reduce((n, t) => n + count(t), 0)}/${BAD} dead letters, ${count(topicName(topology, 'emotion-scores'))}/${expected.validFrames} scores, ${count(topicName(topology, 'recommendations'))}/${wantLists} lists`;
      await waitFor('every record accounted for', () => dead.reduce((n, t) => n + count(t), 0) >= BAD && count(topicName(topology, 'emotion-scores')) >= expected.validFrames && count(topicName(topology, 'recommendations')) >= wantLists, 120_000, 500).catch((err: unknown) => {
        throw new Error(`${String(err)}: ${tally()}`);
      });
      await new Promise((r) => setTimeout(r, 2000)); // nothing more comes
      const letters = reader.records.filter((r) => dead.includes(r.topic)).map((r) => ({ topic: r.topic, ...registry.decode('dead-letter', r.value!) }));
      const scores = reader.records.filter((r) => r.topic === topicName(topology, 'emotion-scores')).map((r) => registry.decode('emotion-score', r.value!));
      const lists = reader.records.filter((r) => r.topic === topicName(topology, 'recommendations')).map((r) => registry.decode('recommendation', r.value!));

      // Every bad record is dead-lettered once, to the topic its kind goes to, with a code.
      expect(letters).toHaveLength(BAD);
      for (const [source, n] of expected.badBy) expect(letters.filter((l) => l.sourceTopic === source).length, source).toBe(n);
      expect(letters.filter((l) => l.sourceTopic === topicName(topology, 'frames')).every((l) => l.topic === topicName(topology, 'dead-letter-frames'))).toBe(true);
      expect(new Set(letters.map((l) => `${l.sourceTopic}/${l.sourcePartition}/${l.sourceOffset}`)).size).toBe(BAD);
      expect(letters.filter((l) => !l.errorCode || !l.errorMessage)).toEqual([]);
      const codes = new Map<string, number>();
      for (const l of letters) codes.set(l.errorCode, (codes.get(l.errorCode) ?? 0) + 1);
      // Every valid record is processed once: a score per valid frame, a list per valid change and listen.
      expect(scores.filter((s) => s.userId.startsWith('fz-ok')).length).toBe(expected.validFrames);
      expect(scores.length).toBe(expected.validFrames);
      expect(lists.length).toBe(wantLists);
      expect(new Set(lists.map((l) => l.userId)).size).toBe(wantLists);
      for (const p of processors) {
        expect((await fetch(`http://127.0.0.1:${p.port}/readyz`)).status).toBe(200);
        expect(metricSum(await metricsText(p.port), 'emotionmuse_partitions_stalled')).toBe(0);
      }
      const dlMetric = (await Promise.all(processors.map(async (p) => metricSum(await metricsText(p.port), 'emotionmuse_dead_letters_total')))).reduce((a, b) => a + b, 0);
      expect(dlMetric).toBe(BAD);
      console.log(`[fuzz] ${BAD} bad records dead-lettered (${[...codes].map(([c, n]) => `${c} ${n}`).join(', ')}); ${expected.validFrames} valid frames scored, ${expected.validChanges} valid changes and ${expected.validListens} valid listens made ${lists.length} lists; nothing lost, nothing twice`);
    } finally {
      for (const p of processors) p.proc.kill('SIGTERM');
      await Promise.all(processors.map((p) => p.exited));
      await reader.stop();
    }
  }, 300_000);
});
