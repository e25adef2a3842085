import { userKeys } from '../../state/keys.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { Admin, Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { mintDevelopmentToken } from '../../auth/tokens.ts';
import { recommenderOptions } from '../../processors/index.ts';
import { loadCatalogue, type TrackCatalogue } from '../../processors/recommender/catalogue.ts';
import { Scorer } from '../../processors/recommender/scorer.ts';
import { logsSmokeModel } from '../support/recommender-models.ts';
import type { EmotionChange, Listen, Recommendation } from '../../schemas/generated/types.ts';
import { topicName, type Topology } from '../../topology/topology.ts';
import { registry } from '../support/frames.ts';
import { collect, createTopology, freePort, metricSum, metricsText, produce, randomPrefix, startProcessor, testKafka, waitFor, testRedis, redisServerArgs } from '../support/kafka.ts';

const ARTIFACTS = fileURLToPath(new URL('../artifacts', import.meta.url));
const MODEL = process.env.EM_RECOMMENDER_MODEL ?? recommenderOptions.modelDir.default;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// The recommender's token secret in these tests, fresh per run (deployments take theirs from the environment or a file).
const SECRET = randomBytes(32).toString('hex');

function change(userId: string, label: EmotionChange['label'], t: number): EmotionChange {
  const probabilities = [0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02];
  probabilities[['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'].indexOf(label)] = 0.88;
  return { userId, sessionId: 's', previousLabel: null, label, probabilities, valence: 0.5, arousal: 0.5, windowIndex: 0, windowEndSeq: 10, captureTimeMs: t, emittedTimeMs: t, scheme: 'paper', confidence: null };
}

function listen(userId: string, trackId: string, n: number): Listen {
  return { listenId: `${userId}-${n}`, userId, trackId, startTimeMs: 1_764_000_000_000 + n * 1000, listenedMs: 30_000, outcome: 'COMPLETED' };
}

describe('recommender processor on the real broker and Redis', () => {
  let kafka: Kafka;
  let admin: Admin;
  let redis: Redis;
  let catalogue: TrackCatalogue;
  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    redis = testRedis();
    catalogue = loadCatalogue(MODEL);
  });
  afterAll(async () => {
    await admin.disconnect();
    redis.disconnect();
  });

  const send = async (topology: Topology, messages: Array<{ topic: 'listens' | 'emotion-changes'; value: Listen | EmotionChange }>) => {
    for (const m of messages) {
      const kind = m.topic === 'listens' ? 'listen' : 'emotion-change';
      await produce(kafka, topicName(topology, m.topic), [{ key: m.value.userId, value: registry.encode(kind, m.value as never) }]);
    }
  };
  const lists = (records: ReadonlyArray<{ topic: string; value: Buffer | null }>, topology: Topology) =>
    records.filter((r) => r.topic === topicName(topology, 'recommendations')).map((r) => registry.decode('recommendation', r.value!));

  it('publishes ordered lists of distinct tracks, keeps history in Redis, dead-letters unknown tracks, answers over HTTP and the CLI, and survives a restart', async () => {
    const prefix = randomPrefix('recommender');
    const redisPrefix = `${prefix}r:`;
    const topology = await createTopology(admin, prefix, 2);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '2', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: redisPrefix, EM_RECOMMENDER_MODEL: MODEL, EM_LISTEN_REFRESH_MS: '3600000', EM_JWT_SECRET: SECRET };
    const reader = await collect(kafka, [topicName(topology, 'recommendations'), topicName(topology, 'dead-letter')]);
    let p = await startProcessor('recommender', env);
    try {
      const tracks = catalogue.ids.slice(100, 106);
      await send(topology, [
        ...tracks.map((t, i) => ({ topic: 'listens' as const, value: listen('ana', t, i) })),
        { topic: 'listens', value: listen('ana', 'spotify-track-that-does-not-exist', 99) },
      ]);
      // Listens and emotion changes are two topics, consumed independently: let the listens land first.
      await waitFor('the listens in Redis', async () => (await redis.llen(userKeys(redisPrefix, 'ana').history)) === tracks.length, 60_000);
      await send(topology, [
        { topic: 'emotion-changes', value: change('ana', 'sad', 1_764_000_100_000) },
        { topic: 'emotion-changes', value: change('newcomer', 'happy', 1_764_000_100_000) },
      ]);
      await waitFor('lists and the dead letter', () => lists(reader.records, topology).length >= 3 && reader.records.some((r) => r.topic === topicName(topology, 'dead-letter')), 60_000);

      const history = await redis.lrange(userKeys(redisPrefix, 'ana').history, 0, -1);
      expect(history, 'listens are in Redis, most recent first; the unknown track is not').toEqual([...tracks].reverse());

      const letter = registry.decode('dead-letter', reader.records.find((r) => r.topic === topicName(topology, 'dead-letter'))!.value!);
      expect(letter).toMatchObject({ errorCode: 'UNKNOWN_TRACK', stage: 'recommender', sourceTopic: topicName(topology, 'listens') });

      const all = lists(reader.records, topology);
      const first = all.find((l) => l.userId === 'ana' && l.trigger === 'LISTEN')!;
      expect(first.items.length).toBe(10);
      const sad = all.find((l) => l.userId === 'ana' && l.trigger === 'EMOTION_CHANGE')!;
      expect(sad.items).toHaveLength(10);
      expect(new Set(sad.items.map((i) => i.trackId)).size).toBe(10);
      for (const item of sad.items) {
        expect(catalogue.indexOf.has(item.trackId)).toBe(true);
        expect(tracks, 'listened tracks are not recommended again').not.toContain(item.trackId);
        expect(item.finalScore).toBeCloseTo(0.7 * item.preferenceScore + 0.3 * item.emotionScore, 5);
      }
      expect(sad.items.map((i) => i.finalScore)).toEqual([...sad.items.map((i) => i.finalScore)].sort((a, b) => b - a));
      expect(sad.items.map((i) => i.rank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(sad.emotion).toMatchObject({ label: 'sad' });
      expect(sad.emotion!.probabilities).toHaveLength(7);
      expect(sad.causeId).toMatch(new RegExp(`^${topicName(topology, 'emotion-changes').replace(/\./g, '\\.')}/\\d+/\\d+$`));
      const cold = all.find((l) => l.userId === 'newcomer')!;
      expect(cold.items).toHaveLength(10);
      expect(cold.emotion).toMatchObject({ label: 'happy' });
      // No history: valence-arousal proximity to the emotion, with a popularity prior.
      for (const item of cold.items) expect(item.finalScore).toBeCloseTo(0.9 * item.emotionScore + 0.1 * item.preferenceScore, 5);
      expect(cold.items.map((i) => i.finalScore)).toEqual([...cold.items.map((i) => i.finalScore)].sort((a, b) => b - a));

      // Read-back without Kafka: HTTP (with ana's token, and only hers) and the CLI give the last list.
      const bearer = async (user: string, ttl = 600, now = Date.now()) => ({ authorization: `Bearer ${await mintDevelopmentToken({ secret: SECRET }, user, ttl, now)}` });
      const listUrl = `http://127.0.0.1:${p.port}/users/ana/recommendations`;
      expect((await fetch(listUrl)).status).toBe(401);
      expect(((await (await fetch(listUrl)).json()) as { code: string }).code).toBe('TOKEN_MISSING');
      expect((await fetch(listUrl, { headers: await bearer('bo') })).status).toBe(403);
      const expired = await fetch(listUrl, { headers: await bearer('ana', 60, Date.now() - 3600_000) });
      expect([expired.status, ((await expired.json()) as { code: string }).code]).toEqual([401, 'TOKEN_EXPIRED']);
      const forged = await fetch(listUrl, { headers: { authorization: `Bearer ${await mintDevelopmentToken({ secret: `${SECRET}-forged` }, 'ana', 600)}` } });
      expect(forged.status).toBe(401);
      const res = await fetch(listUrl, { headers: await bearer('ana') });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Recommendation & { items: Array<{ title: string }> };
      expect(body.listId).toBe(sad.listId);
      expect(body.items[0]!.title).toBe(catalogue.titles[catalogue.indexOf.get(sad.items[0]!.trackId)!]);
      expect((await fetch(`http://127.0.0.1:${p.port}/users/nobody/recommendations`, { headers: await bearer('nobody') })).status).toBe(404);
      const printed: string[] = [];
      const log = console.log;
      console.log = (...a: unknown[]) => printed.push(a.join(' '));
      try {
        expect(await main(['recommendations', 'get', '--user', 'ana', '--redis-url', inject('redisUrl'), '--redis-prefix', redisPrefix, '--model-dir', MODEL])).toBe(0);
      } finally {
        console.log = log;
      }
      expect(printed.join('\n')).toContain('emotion sad');
      expect(printed.join('\n')).toContain(catalogue.titles[catalogue.indexOf.get(sad.items[0]!.trackId)!]!);

      // Subscribers see the lists, readable or as JSON lines.
      for (const json of [false, true]) {
        const sub = spawn(process.execPath, [path.join(ROOT, 'bin/emotionmuse.js'), 'subscribe', '--user', 'ana', '--from-beginning', ...(json ? ['--json'] : []), '--topic-prefix', prefix, '--partitions', '2', '--brokers', inject('kafkaBrokers'), '--model-dir', MODEL], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        sub.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        try {
          const title = catalogue.titles[catalogue.indexOf.get(sad.items[0]!.trackId)!]!;
          await waitFor(`subscribe${json ? ' --json' : ''} prints the list`, () => (json ? out.split('\n').some((l) => l.includes('"type":"recommendation"') && l.includes(title.replace(/"/g, '\\"'))) : out.includes('emotion sad') && out.includes(title)), 30_000);
          if (json) expect(out.split('\n').filter(Boolean).every((l) => JSON.parse(l).userId === 'ana')).toBe(true);
        } finally {
          sub.kill('SIGINT');
        }
      }

      // A restart keeps all user state.
      p.proc.kill('SIGTERM');
      await p.exited;
      p = await startProcessor('recommender', env);
      await waitFor('ready after restart', async () => (await fetch(`http://127.0.0.1:${p.port}/readyz`)).status === 200, 30_000);
      const again = (await (await fetch(`http://127.0.0.1:${p.port}/users/ana/recommendations`, { headers: await bearer('ana') })).json()) as Recommendation;
      expect(again.listId).toBe(sad.listId);
      expect(await redis.lrange(userKeys(redisPrefix, 'ana').history, 0, -1)).toEqual([...tracks].reverse());
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      await reader.stop();
    }
  });

  it('publishes one list for an emotion change that comes twice (a smoother repeating it after a restart)', async () => {
    const prefix = randomPrefix('recommender-repeat');
    const topology = await createTopology(admin, prefix, 1);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '1', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: `${prefix}r:`, EM_RECOMMENDER_MODEL: MODEL };
    const happy = change('cy', 'happy', 1_764_000_200_000);
    const sad = { ...change('cy', 'sad', 1_764_000_205_000), previousLabel: 'happy' as const, windowIndex: 5, windowEndSeq: 60 };
    await send(topology, [
      { topic: 'emotion-changes', value: happy },
      { topic: 'emotion-changes', value: happy },
      { topic: 'emotion-changes', value: sad },
    ]);
    const reader = await collect(kafka, [topicName(topology, 'recommendations')]);
    const p = await startProcessor('recommender', env);
    try {
      await waitFor('the list of the second change', () => lists(reader.records, topology).some((l) => l.emotion?.label === 'sad'), 60_000);
      await new Promise((r) => setTimeout(r, 1000));
      const published = lists(reader.records, topology);
      expect(published.map((l) => l.emotion?.label)).toEqual(['happy', 'sad']);
      expect(metricSum(await metricsText(p.port), 'emotionmuse_records_skipped_total', 'reason="repeated-change"')).toBe(1);
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      await reader.stop();
    }
  });

  it('changes nothing when the same input offsets are delivered twice', async () => {
    const prefix = randomPrefix('recommender-twice');
    const redisPrefix = `${prefix}r:`;
    const topology = await createTopology(admin, prefix, 1);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '1', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: redisPrefix, EM_RECOMMENDER_MODEL: MODEL, EM_LISTEN_REFRESH_MS: '0' };
    await send(topology, [
      ...catalogue.ids.slice(10, 14).map((t, i) => ({ topic: 'listens' as const, value: listen('bo', t, i) })),
      { topic: 'emotion-changes', value: change('bo', 'happy', 1_764_000_100_000) },
    ]);
    const reader = await collect(kafka, [topicName(topology, 'recommendations')]);
    const snapshot = async () => ({
      history: await redis.lrange(userKeys(redisPrefix, 'bo').history, 0, -1),
      hash: await redis.hgetall(userKeys(redisPrefix, 'bo').state),
      list: await redis.get(userKeys(redisPrefix, 'bo').list),
    });
    let p = await startProcessor('recommender', env);
    try {
      await waitFor('5 lists', () => reader.records.length >= 5, 60_000);
      p.proc.kill('SIGTERM');
      await p.exited;
      const before = await snapshot();
      const firstRound = lists(reader.records, topology);

      // Deliver the same offsets again: rewind the group to the start and run the processor again.
      await admin.setOffsets({ groupId: `${prefix}recommender`, topic: topicName(topology, 'listens'), partitions: [{ partition: 0, offset: '0' }] });
      await admin.setOffsets({ groupId: `${prefix}recommender`, topic: topicName(topology, 'emotion-changes'), partitions: [{ partition: 0, offset: '0' }] });
      p = await startProcessor('recommender', env);
      await waitFor('the same 5 lists again', () => reader.records.length >= 10, 60_000);
      await new Promise((r) => setTimeout(r, 1000));
      expect(await snapshot(), 'Redis is unchanged by the redelivery').toEqual(before);
      const secondRound = lists(reader.records, topology).slice(firstRound.length);
      // Listens and emotion changes are separate topics, so the two rounds may interleave them
      // differently; what each input record published must be identical.
      const byCause = (ls: Recommendation[]) => [...ls].sort((a, b) => a.causeId.localeCompare(b.causeId));
      expect(byCause(secondRound), 'the redelivered records publish exactly the same lists').toEqual(byCause(firstRound));
      expect(before.history).toHaveLength(4);
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      await reader.stop();
    }
  });

  it.each(['neighbourhood', 'sequence', 'hybrid'] as const)('serves the %s model of an export trained on listening logs (the csv interchange format): lists drawn from that model\'s tracks', async (served) => {
    const dir = logsSmokeModel();
    const card = JSON.parse(readFileSync(path.join(dir, 'card.json'), 'utf8')) as { version: string; context: { interactions: string }; serving: { model: string; kind: string } };
    expect(card.context.interactions).toMatch(/^real logs: .*playlists-smoke\.csv \(csv\).*match rate 100\.0%/);
    expect(['sequence', 'neighbourhood', 'hybrid']).toContain(card.serving.kind);
    const trained = loadCatalogue(dir);
    const prefix = randomPrefix('recommender-logs');
    const topology = await createTopology(admin, prefix, 1);
    const reader = await collect(kafka, [topicName(topology, 'recommendations')]);
    const p = await startProcessor('recommender', { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '1', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: `${prefix}r:`, EM_RECOMMENDER_MODEL: dir, EM_RECOMMENDER_SERVE: served });
    try {
      // The listens first, all applied, then the change: its list is scored on those three tracks.
      await send(topology, trained.ids.slice(0, 3).map((id, n) => ({ topic: 'listens' as const, value: listen('lg', id, n) })));
      await waitFor('the listens in Redis', async () => (await redis.llen(userKeys(`${prefix}r:`, 'lg').history)) === 3, 60_000);
      await send(topology, [{ topic: 'emotion-changes', value: change('lg', 'happy', Date.now()) }]);
      await waitFor('the change\'s list', () => lists(reader.records, topology).some((l) => l.trigger === 'EMOTION_CHANGE'), 60_000);
      const list = lists(reader.records, topology).find((l) => l.trigger === 'EMOTION_CHANGE')!;
      // The process says which base model it serves, and the list is the one it gives for this history.
      expect(await metricsText(p.port)).toMatch(new RegExp(`emotionmuse_model_info\\{[^}]*model="${served}"`));
      const scorer = await Scorer.open(dir, { providers: ['cpu'], served });
      const [expected] = await scorer.candidates([{ history: [2, 1, 0], probabilities: change('lg', 'happy', 0).probabilities }]);
      const items = scorer.rerank(expected!.candidates, expected!.embedding, recommenderOptions.lambda.default, 10);
      expect(list.items.map((i) => i.trackId)).toEqual(items.map((i) => trained.ids[i.index]));
      expect(list.modelVersion).toBe(card.version);
      expect(list.items.length).toBe(10);
      for (const it of list.items) expect(trained.indexOf.has(it.trackId)).toBe(true);
      expect(list.items.map((i) => i.trackId)).not.toContain(trained.ids[0]);
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      await reader.stop();
    }
  });

  it('stops consuming while its Redis restarts, says so on /readyz, and loses no input', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'em-redis-'));
    const port = await freePort();
    const startRedis = (): ChildProcess => {
      const proc = spawn('redis-server', [...redisServerArgs(port), '--bind', '127.0.0.1', '--dir', dir, '--logfile', path.join(dir, 'redis.log'), '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], { stdio: 'ignore' });
      proc.on('error', (err) => {
        throw new Error(`this test starts its own redis-server (Debian package redis-server) and could not: ${err.message}`);
      });
      return proc;
    };
    let server = startRedis();
    const url = `redis://127.0.0.1:${port}`;
    const listening = () => new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    await waitFor('own redis up', listening, 10_000);
    const own = testRedis({ retryStrategy: () => 200, maxRetriesPerRequest: null }, url);
    own.on('error', () => undefined);

    const prefix = randomPrefix('recommender-outage');
    const topology = await createTopology(admin, prefix, 2);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '2', EM_REDIS_URL: url, EM_REDIS_PREFIX: 'em:', EM_RECOMMENDER_MODEL: MODEL, EM_LISTEN_REFRESH_MS: '3600000' };
    const users = ['u1', 'u2', 'u3', 'u4'];
    const perUser = 40;
    const inputs = Array.from({ length: perUser }, (_, n) => users.map((u, k) => listen(u, catalogue.ids[(n * 7 + k * 13) % catalogue.size]!, n))).flat();
    const p = await startProcessor('recommender', env);
    try {
      await waitFor('processor ready', async () => (await fetch(`http://127.0.0.1:${p.port}/readyz`)).status === 200, 30_000);
      const half = inputs.length / 2;
      await produce(kafka, topicName(topology, 'listens'), inputs.slice(0, half).map((l) => ({ key: l.userId, value: registry.encode('listen', l) })), 20);
      await waitFor('first half applied', async () => (await Promise.all(users.map((u) => own.llen(userKeys('em:', u).history)))).reduce((a, b) => a + b, 0) >= half, 30_000);

      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
      await produce(kafka, topicName(topology, 'listens'), inputs.slice(half).map((l) => ({ key: l.userId, value: registry.encode('listen', l) })), 20);
      await waitFor('/readyz says not ready while Redis is away', async () => (await fetch(`http://127.0.0.1:${p.port}/readyz`)).status === 503, 15_000);
      await new Promise((r) => setTimeout(r, 2000));
      server = startRedis();
      await waitFor('ready again', async () => (await fetch(`http://127.0.0.1:${p.port}/readyz`)).status === 200, 30_000);
      let counts: number[] = [];
      await waitFor('every listen applied', async () => (counts = await Promise.all(users.map((u) => own.llen(userKeys('em:', u).history)))).every((n) => n === perUser), 90_000).catch((err: Error) => {
        mkdirSync(ARTIFACTS, { recursive: true });
        writeFileSync(path.join(ARTIFACTS, 'recommender-outage.log'), `${p.logs.join('')}\n--- redis-server log ---\n${readFileSync(path.join(dir, 'redis.log'), 'utf8')}`);
        throw new Error(`${err.message}; history lengths ${counts.join(', ')} of ${perUser} each; the processor's log is in tests/artifacts/recommender-outage.log`);
      });
      for (const u of users) {
        const expected = inputs.filter((l) => l.userId === u).map((l) => l.trackId).reverse();
        expect(await own.lrange(userKeys('em:', u).history, 0, -1), `${u}: every listen once, in order`).toEqual(expected);
      }
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      own.disconnect();
      server.kill('SIGTERM');
    }
  });
});
