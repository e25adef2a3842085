import { userKeys } from '../../state/keys.ts';
import { createHash } from 'node:crypto';
import kafkajs from 'kafkajs';
import type { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { recommenderOptions } from '../../processors/index.ts';
import { loadCatalogue } from '../../processors/recommender/catalogue.ts';
import type { EmotionChange, Listen } from '../../schemas/generated/types.ts';
import { topicName } from '../../topology/topology.ts';
import { frame, registry } from '../support/frames.ts';
import { collect, createTopology, metricSum, metricsText, produce, randomPrefix, startProcessor, useKafka, waitFor, testRedis } from '../support/kafka.ts';

const { CompressionTypes } = kafkajs;

describe('reliability: poison pills and invalid values never stall a partition or touch state', () => {
  const fx = useKafka();

  it('dead-letters a 2 MB frame (gzip under the broker\'s 1 MiB limit) as a truncated copy with its size and digest, and goes on', async () => {
    const prefix = randomPrefix('poison');
    const topology = await createTopology(fx.admin, prefix, 1);
    // A JPEG start followed by 2 MB of zeros: gzip makes it a few KB, so the broker takes it,
    // but a dead letter carrying it whole (uncompressed) would be refused.
    const huge = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(2 * 1024 * 1024)]);
    const value = registry.encode('frame', frame('pp', 1, { encoding: 'JPEG', data: huge }));
    const producer = fx.kafka.producer({ idempotent: true });
    await producer.connect();
    await producer.send({ topic: topicName(topology, 'frames'), compression: CompressionTypes.GZIP, acks: -1, messages: [{ key: 'pp', value }] });
    await producer.send({ topic: topicName(topology, 'frames'), acks: -1, messages: [{ key: 'pp', value: registry.encode('frame', frame('pp', 2)) }] });
    await producer.disconnect();

    const reader = await collect(fx.kafka, [topicName(topology, 'emotion-scores'), topicName(topology, 'dead-letter-frames')]);
    const p = await startProcessor('classifier', { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '1', EM_EXECUTION_PROVIDERS: 'cpu' });
    try {
      await waitFor('the dead letter and the next frame\'s score', () => reader.records.length >= 2, 90_000);
      const letter = registry.decode('dead-letter', reader.records.find((r) => r.topic === topicName(topology, 'dead-letter-frames'))!.value!);
      expect(letter).toMatchObject({ sourceOffset: 0, errorCode: 'UNDECODABLE_FRAME', valueBytes: value.length, valueTruncated: true, valueSha256: createHash('sha256').update(value).digest('hex') });
      expect(letter.value!.length).toBe(256 * 1024);
      expect(Buffer.compare(letter.value!, value.subarray(0, 256 * 1024))).toBe(0);
      const score = registry.decode('emotion-score', reader.records.find((r) => r.topic === topicName(topology, 'emotion-scores'))!.value!);
      expect(score).toMatchObject({ userId: 'pp', seq: 2 });
      expect((await fetch(`http://127.0.0.1:${p.port}/readyz`)).status).toBe(200);
      expect(metricSum(await metricsText(p.port), 'emotionmuse_transactions_aborted_total')).toBe(0);
      expect(p.logs.join('')).toMatch(/"msg":"record size limits".*"deadLetterValueMax":262144/);
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      await reader.stop();
    }
  });

  it('dead-letters emotion changes with NaN, Infinity or out-of-range values and bad listens; the user\'s state stays clean and the next valid listen makes a list', async () => {
    const prefix = randomPrefix('nan');
    const topology = await createTopology(fx.admin, prefix, 1);
    const catalogue = loadCatalogue(recommenderOptions.modelDir.default);
    const change = (extra: Partial<EmotionChange>): EmotionChange => ({ userId: 'nan-u', sessionId: 's', previousLabel: null, label: 'happy', probabilities: [0.02, 0.02, 0.02, 0.88, 0.02, 0.02, 0.02], valence: 0.8, arousal: 0.6, windowIndex: 4, windowEndSeq: 50, captureTimeMs: 1_764_000_000_000, emittedTimeMs: 1_764_000_000_000, scheme: 'paper', confidence: null, ...extra });
    const listen = (extra: Partial<Listen>): Listen => ({ listenId: `l-${Math.random()}`, userId: 'nan-u', trackId: catalogue.ids[3]!, startTimeMs: 1_764_000_000_000, listenedMs: 30_000, outcome: 'COMPLETED', ...extra });
    const bad = [
      change({ valence: Number.NaN }),
      change({ arousal: Number.POSITIVE_INFINITY }),
      change({ valence: 3 }),
      change({ probabilities: [0.5, 0.5, 0.5, 0, 0, 0, 0] }),
      change({ probabilities: [1, 0, 0] }),
      change({ sessionId: 'x'.repeat(500) }),
    ];
    await produce(fx.kafka, topicName(topology, 'emotion-changes'), bad.map((c) => ({ key: 'nan-u', value: registry.encode('emotion-change', c) })));
    await produce(fx.kafka, topicName(topology, 'listens'), [
      { key: 'nan-u', value: registry.encode('listen', listen({ listenedMs: -5 })) },
      { key: 'nan-u', value: registry.encode('listen', listen({ trackId: '' })) },
      { key: 'nan-u', value: registry.encode('listen', listen({})) },
    ]);
    const reader = await collect(fx.kafka, [topicName(topology, 'recommendations'), topicName(topology, 'dead-letter')]);
    const redisPrefix = `${prefix}r:`;
    const p = await startProcessor('recommender', { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '1', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: redisPrefix, EM_EXECUTION_PROVIDERS: 'cpu' });
    try {
      await waitFor('8 dead letters and a list', () => reader.records.filter((r) => r.topic === topicName(topology, 'dead-letter')).length >= 8 && reader.records.some((r) => r.topic === topicName(topology, 'recommendations')), 90_000);
      const letters = reader.records.filter((r) => r.topic === topicName(topology, 'dead-letter')).map((r) => registry.decode('dead-letter', r.value!));
      expect(letters.map((l) => l.errorCode)).toEqual(Array(8).fill('INVALID_RECORD'));
      const messages = (topic: 'emotion-changes' | 'listens') => letters.filter((l) => l.sourceTopic === topicName(topology, topic)).sort((a, b) => a.sourceOffset - b.sourceOffset).map((l) => l.errorMessage);
      expect(messages('emotion-changes').join('\n')).toMatch(/valence is NaN[\s\S]*arousal is Infinity[\s\S]*valence is 3, outside \[0, 1\][\s\S]*sum to 1\.5000[\s\S]*3 probabilities[\s\S]*sessionId must have 1 to 128/);
      expect(messages('listens').join('\n')).toMatch(/listenedMs is -5[\s\S]*trackId must have/);
      const lists = reader.records.filter((r) => r.topic === topicName(topology, 'recommendations')).map((r) => registry.decode('recommendation', r.value!));
      expect(lists).toHaveLength(1);
      expect(lists[0]).toMatchObject({ userId: 'nan-u', trigger: 'LISTEN', emotion: null });
      // No bad value reached the user's state.
      const redis = testRedis();
      expect(await redis.hget(userKeys(redisPrefix, 'nan-u').state, 'emotion')).toBeNull();
      // The read-back command prints what Redis holds, whatever it holds.
      await redis.set(userKeys(redisPrefix, 'odd').list, JSON.stringify({ userId: 'odd', trigger: 'LISTEN', causeId: 'x', emotion: { label: 'sad', valence: null, arousal: 'high' }, items: [{ trackId: 't', rank: 1, finalScore: null }], modelVersion: 'm' }));
      await redis.set(userKeys(redisPrefix, 'broken').list, '{not json');
      redis.disconnect();
      const printed: string[] = [];
      const log = console.log;
      const error = console.error;
      console.log = (...a: unknown[]) => printed.push(a.join(' '));
      console.error = (...a: unknown[]) => printed.push(a.join(' '));
      try {
        expect(await main(['recommendations', 'get', '--user', 'odd', '--redis-url', inject('redisUrl'), '--redis-prefix', redisPrefix])).toBe(0);
        expect(await main(['recommendations', 'get', '--user', 'broken', '--redis-url', inject('redisUrl'), '--redis-prefix', redisPrefix])).toBe(2);
      } finally {
        console.log = log;
        console.error = error;
      }
      expect(printed.join('\n')).toMatch(/valence \?, arousal \?/);
      expect(printed.join('\n')).toMatch(/error \[INVALID_RECORD\]: the stored list of broken is not JSON/);
      expect((await fetch(`http://127.0.0.1:${p.port}/readyz`)).status).toBe(200);
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      await reader.stop();
    }
  });

  it('stops the recommender when Redis refuses it (an ACL user without the permission): retried 5 times, then a clean exit 1, nothing dead-lettered, the listen still unread', async () => {
    const prefix = randomPrefix('refused');
    const topology = await createTopology(fx.admin, prefix, 1);
    const user = `reader-${prefix.split('.')[2]}`;
    const root = testRedis();
    await root.call('ACL', 'SETUSER', user, 'on', '>refused-pw', `~${prefix}*`, '+@read', '-@scripting');
    const catalogue = loadCatalogue(process.env.EM_RECOMMENDER_MODEL ?? recommenderOptions.modelDir.default);
    const listen: Listen = { listenId: 'l1', userId: 'rf', trackId: catalogue.ids[0]!, startTimeMs: 1, listenedMs: 1000, outcome: 'COMPLETED' };
    await produce(fx.kafka, topicName(topology, 'listens'), [{ key: 'rf', value: registry.encode('listen', listen) }]);
    const reader = await collect(fx.kafka, [topicName(topology, 'dead-letter'), topicName(topology, 'recommendations')]);
    const started = Date.now();
    const p = await startProcessor('recommender', { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '1', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: prefix, EM_REDIS_USERNAME: user, EM_REDIS_PASSWORD: 'refused-pw' });
    try {
      const exit = await Promise.race([p.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 60_000))]);
      expect(exit, `the processor stops by itself; its log:\n${p.logs.join('').slice(-3000)}`).toMatchObject({ code: 1 });
      const log = p.logs.join('');
      expect(log).toMatch(/a batch failed as often as its error allows/);
      expect(log).toMatch(/SERVICE_REFUSED/);
      expect((log.match(/batch failed with a retriable error; retrying it/g) ?? []).length).toBe(4);
      console.log(`[refused] the recommender stopped ${((Date.now() - started) / 1000).toFixed(1)} s after it started, after 5 attempts`);
      await new Promise((r) => setTimeout(r, 1000));
      expect(reader.records).toEqual([]);
      // Nothing was committed: the listen waits for a recommender that Redis lets in.
      const committed = await fx.admin.fetchOffsets({ groupId: `${prefix}recommender`, topics: [topicName(topology, 'listens')] });
      expect(Number(committed[0]!.partitions[0]!.offset)).toBeLessThanOrEqual(0);
    } finally {
      p.proc.kill('SIGKILL');
      await reader.stop();
      await root.call('ACL', 'DELUSER', user).catch(() => undefined);
      root.disconnect();
    }
  });
});
