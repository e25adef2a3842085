import { userKeys } from '../../state/keys.ts';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import kafkajs, { type KafkaConfig } from 'kafkajs';
import { Redis } from 'ioredis';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { mintDevelopmentToken } from '../../auth/tokens.ts';
import { recommenderOptions } from '../../processors/index.ts';
import { loadCatalogue } from '../../processors/recommender/catalogue.ts';
import { kafkaSecurity, secretsDir } from '../../runtime/security.ts';
import type { EmotionScore, Listen } from '../../schemas/generated/types.ts';
import { changelogTopic, processorSpec, topicName } from '../../topology/topology.ts';
import { frame, registry } from '../support/frames.ts';
import { brokers, caughtUp, collect, createTopology, freePort, metricsHeaders, produce, randomPrefix, securedRun, startProcessor, testRedis, testSecurity, useKafka, waitFor, type ProcessorProcess } from '../support/kafka.ts';

const { Kafka, logLevel } = kafkajs;
const BIN = fileURLToPath(new URL('../../bin/emotionmuse.js', import.meta.url));
const SECRET = randomBytes(32).toString('hex');

/** A kafkajs client that gives up at once (a refusal is the expected answer, not a reason to retry). */
function rawKafka(extra: Partial<KafkaConfig>): InstanceType<typeof Kafka> {
  return new Kafka({ clientId: 'emotionmuse-security-test', brokers: brokers(), logLevel: logLevel.NOTHING, connectionTimeout: 5000, retry: { retries: 0 }, ...extra });
}

async function listTopicsAs(extra: Partial<KafkaConfig>): Promise<string[]> {
  const admin = rawKafka(extra).admin();
  try {
    await admin.connect();
    return await admin.listTopics();
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const proc = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, EM_KAFKA_BROKERS: brokers().join(','), EM_REDIS_URL: inject('redisUrl'), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, out })));
}

const score = (userId: string, seq: number): EmotionScore => ({
  userId, sessionId: 's1', seq, captureTimeMs: 1_764_000_000_000 + seq * 100, faceFound: true,
  probabilities: [0.02, 0.02, 0.02, 0.88, 0.02, 0.02, 0.02], faceBox: null, modelVersion: 'test',
  scoredAt: 'SERVER', timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 }, processedTimeMs: 1_764_000_000_000 + seq * 100,
});

describe('security: the secured broker, Redis and HTTP refuse what they must', () => {
  const fx = useKafka();
  let secrets: string;
  const read = (name: string) => readFileSync(path.join(secrets, name), 'utf8');

  beforeAll(() => {
    if (!securedRun()) throw new Error('this file tests the secured mode: run it with EM_SECURITY=on against the secured services (npm run test:secured starts them)');
    secrets = secretsDir(testSecurity());
  });

  it('refuses Kafka clients without credentials, with a wrong password, without TLS, or not trusting the CA', async () => {
    const ca = [read('ca.crt')];
    // A fresh object each time: kafkajs stores its authenticator (holding the password) on the
    // sasl object it is given, so a copy of a used one would authenticate with the old password.
    const sasl = (extra: { username?: string; password?: string } = {}) => ({ mechanism: 'scram-sha-512' as const, username: 'admin', password: read('kafka-admin.password').trim(), ...extra });
    // the control: the right CA and password are let in
    expect(await listTopicsAs({ ssl: { ca }, sasl: sasl() })).toEqual(expect.any(Array));
    await expect(listTopicsAs({ ssl: { ca } }), 'no credentials').rejects.toThrow();
    await expect(listTopicsAs({ ssl: { ca }, sasl: sasl({ password: 'not-the-password' }) }), 'a wrong password').rejects.toThrow(/authentication failed/i);
    await expect(listTopicsAs({ ssl: { ca }, sasl: sasl({ username: 'nobody' }) }), 'an unknown user').rejects.toThrow(/authentication failed/i);
    await expect(listTopicsAs({ sasl: sasl() }), 'plain TCP to the TLS listener').rejects.toThrow();
    await expect(listTopicsAs({ ssl: { ca: [read('other-ca.crt')] }, sasl: sasl() }), 'a client that does not trust the CA').rejects.toThrow(/certificate/i);
  });

  it('lets each principal touch only its own topics: the smoother reads scores and writes changes, but neither reads frames nor writes lists', async () => {
    const prefix = randomPrefix('acl');
    const topology = await createTopology(fx.admin, prefix, 1);
    const as = (principal: 'smoother' | 'edge' | 'gateway') => rawKafka({ ...kafkaSecurity(testSecurity(), principal) });
    await produce(fx.kafka, topicName(topology, 'emotion-scores'), [{ key: 'acl-u', value: registry.encode('emotion-score', score('acl-u', 1)) }]);
    await produce(fx.kafka, topicName(topology, 'frames'), [{ key: 'acl-u', value: registry.encode('frame', frame('acl-u', 1)) }]);

    // A fresh broker creates its offsets topic on the first group: let a patient client (the
    // admin's, which retries) join one first, so that the clients below, which do not retry, meet
    // a coordinator and only the refusals they are meant to.
    const warm = await collect(fx.kafka, [topicName(topology, 'emotion-scores')]);
    await warm.stop();
    const smoother = as('smoother');
    const producer = smoother.producer({ retry: { retries: 0 } });
    await producer.connect();
    try {
      const change = { topic: topicName(topology, 'emotion-changes'), acks: -1, messages: [{ key: 'acl-u', value: 'x' }] };
      await expect(producer.send(change), 'its own output').resolves.toBeDefined();
      await expect(producer.send({ ...change, topic: topicName(topology, 'recommendations') }), 'the recommender\'s output').rejects.toThrow(/not authorized|TOPIC_AUTHORIZATION_FAILED/i);
    } finally {
      await producer.disconnect();
    }
    // Reading: its own input gives the record; the frames topic is refused (group and topic are its own otherwise).
    const readAs = async (principal: 'smoother' | 'edge' | 'gateway', topic: string, groupId: string) => {
      const consumer = as(principal).consumer({ groupId, retry: { retries: 0 } });
      await consumer.connect();
      try {
        await consumer.subscribe({ topic, fromBeginning: true });
        const got = new Promise<string>((resolve, reject) => {
          consumer.on(consumer.events.CRASH, (e) => reject(e.payload.error));
          void consumer.run({ eachMessage: async ({ message }) => resolve(message.key!.toString()) }).catch(reject);
        });
        return await Promise.race([got, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('nothing read within 20 s')), 20_000))]);
      } finally {
        await consumer.disconnect();
      }
    };
    expect(await readAs('smoother', topicName(topology, 'emotion-scores'), `${prefix}smoother`)).toBe('acl-u');
    await expect(readAs('smoother', topicName(topology, 'frames'), `${prefix}smoother`), 'the smoother reading frames').rejects.toThrow(/not authorized|TOPIC_AUTHORIZATION_FAILED/i);
    await expect(readAs('edge', topicName(topology, 'recommendations'), `${prefix}edge-x`), 'an edge client reading lists').rejects.toThrow(/not authorized|AUTHORIZATION_FAILED/i);
    await expect(readAs('gateway', topicName(topology, 'emotion-scores'), `${prefix}smoother`), 'the gateway in the smoother\'s group').rejects.toThrow(/not authorized|GROUP_AUTHORIZATION_FAILED|find group coordinator/i); // kafkajs reports the refused FindCoordinator so
  });

  it('refuses Redis connections with a wrong password or without TLS, and commands or keys outside the ACL', async () => {
    const url = inject('redisUrl');
    const port = Number(new URL(url).port);
    const app = new Redis(url, { username: 'emotionmuse', password: read('redis-emotionmuse.password').trim(), tls: { ca: [read('ca.crt')] }, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const wrong = new Redis(url, { username: 'emotionmuse', password: 'not-the-password', tls: { ca: [read('ca.crt')] }, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const plain = new Redis(port, '127.0.0.1', { username: 'emotionmuse', password: read('redis-emotionmuse.password').trim(), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 3000 });
    const refusals: string[] = [];
    for (const r of [app, wrong, plain]) r.on('error', (err: Error) => refusals.push(err.message));
    try {
      await app.connect();
      expect(await app.set('em:security-test', '1', 'EX', 60), 'a key of the project, a command it uses').toBe('OK');
      await expect(app.set('other:security-test', '1'), 'a key outside the prefix').rejects.toThrow(/NOPERM/);
      await expect(app.flushall(), 'a command outside the ACL').rejects.toThrow(/NOPERM/);
      await expect(app.call('CONFIG', 'GET', 'requirepass'), 'CONFIG').rejects.toThrow(/NOPERM/);
      await expect(app.keys('*'), 'KEYS').rejects.toThrow(/NOPERM/);
      await expect(wrong.connect(), 'a wrong password').rejects.toThrow();
      expect(refusals.join('\n')).toMatch(/WRONGPASS/);
      await expect(plain.connect().then(() => plain.ping()), 'plain TCP to the TLS port').rejects.toThrow();
    } finally {
      for (const r of [app, wrong, plain]) r.disconnect();
    }
  });

  it('serves a list only to its own user\'s token, binds HTTP to loopback, and asks /metrics for basic auth', async () => {
    const prefix = randomPrefix('http');
    await createTopology(fx.admin, prefix, 1);
    const p = await startProcessor('recommender', { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '1', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: `${prefix}r:`, EM_JWT_SECRET: SECRET });
    try {
      const base = `http://127.0.0.1:${p.port}`;
      await waitFor('recommender ready', async () => (await fetch(`${base}/readyz`)).status === 200, 60_000);
      const bearer = async (user: string) => ({ authorization: `Bearer ${await mintDevelopmentToken({ secret: SECRET }, user, 600)}` });
      expect((await fetch(`${base}/users/ana/recommendations`)).status, 'no token').toBe(401);
      expect((await fetch(`${base}/users/ana/recommendations`, { headers: await bearer('bo') })).status, 'another user\'s token').toBe(403);
      expect((await fetch(`${base}/users/ana/recommendations`, { headers: await bearer('ana') })).status, 'her own token (no list yet)').toBe(404);
      expect((await fetch(`${base}/metrics`)).status, '/metrics without credentials').toBe(401);
      expect((await fetch(`${base}/metrics`, { headers: { authorization: `Basic ${Buffer.from('metrics:wrong').toString('base64')}` } })).status, 'a wrong password').toBe(401);
      const metrics = await fetch(`${base}/metrics`, { headers: metricsHeaders() });
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toMatch(/emotionmuse_/);
      const outside = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
      if (outside) await expect(fetch(`http://${outside}:${p.port}/healthz`), `port ${p.port} on ${outside}`).rejects.toThrow();
      else console.warn('[security] this machine has no non-loopback IPv4 address: the loopback binding is not checked from outside');
      expect(p.logs.join('')).toContain('"kafka":"SASL_SSL as User:recommender"');
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
    }
  });

  it('forgets a user: nothing of theirs is left in Redis or in the compacted changelog (read to the end, read_committed); another user keeps theirs', async () => {
    const prefix = randomPrefix('forget');
    const topology = await createTopology(fx.admin, prefix, 2);
    const rp = `${prefix}r:`;
    const catalogue = loadCatalogue(recommenderOptions.modelDir.default);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '2', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: rp };
    const procs: ProcessorProcess[] = [await startProcessor('smoother', env), await startProcessor('recommender', env)];
    const redis = testRedis();
    const changelog = changelogTopic(topology, processorSpec(topology, 'smoother')).name;
    try {
      const users = ['ana', 'bo'];
      await produce(fx.kafka, topicName(topology, 'emotion-scores'), users.flatMap((u) => Array.from({ length: 30 }, (_, i) => ({ key: u, value: registry.encode('emotion-score', score(u, i + 1)) }))));
      const listen = (u: string, n: number): Listen => ({ listenId: `${u}-${n}`, userId: u, trackId: catalogue.ids[n + 3]!, startTimeMs: 1_764_000_000_000 + n, listenedMs: 30_000, outcome: 'COMPLETED' });
      await produce(fx.kafka, topicName(topology, 'listens'), users.flatMap((u) => [0, 1, 2].map((n) => ({ key: u, value: registry.encode('listen', listen(u, n)) }))));
      await redis.set(userKeys(rp, 'ana').session('s1'), '30', 'EX', 600);
      // Both stages have taken and committed everything (nothing of ana's is still in flight).
      await waitFor('both stages committed everything', async () => (await caughtUp(fx.admin, `${prefix}smoother`, [topicName(topology, 'emotion-scores')])) && (await caughtUp(fx.admin, `${prefix}recommender`, [topicName(topology, 'listens')])) && (await redis.exists(userKeys(rp, 'ana').list, userKeys(rp, 'bo').list)) === 2, 90_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${procs.map((p) => p.logs.join('').slice(-1500)).join('\n---\n')}`);
      });

      const before = await collectToEnd(changelog);
      expect(before.get('ana'), 'the changelog held ana\'s state').toBeTruthy();
      const keysBefore = await scanAll(redis, `${rp}*`);
      expect(keysBefore.filter((k) => k.startsWith(userKeys(rp, 'ana').tag)).length, 'Redis held ana\'s keys').toBeGreaterThanOrEqual(4);

      const run = await cli(['users', 'forget', '--user', 'ana'], env);
      expect(run.code, run.out).toBe(0);
      expect(run.out).toContain(`tombstones for ana written to ${changelog} (2 partitions)`);
      expect(run.out).toMatch(new RegExp(`${topicName(topology, 'frames').replaceAll('.', '\\.')}\\s+1 h\\s+1 h\\s+\\d{4}-\\d\\d-\\d\\d`));

      const keysAfter = await scanAll(redis, `${rp}*`);
      expect(keysAfter.filter((k) => k.includes('ana')), 'no key of ana').toEqual([]);
      const values = keysAfter.length > 0 ? await Promise.all(keysAfter.map(async (k) => ((await redis.type(k)) === 'string' ? await redis.get(k) : ''))) : [];
      expect(values.filter((v) => v?.includes('"userId":"ana"')), 'no value naming ana').toEqual([]);
      expect(keysAfter).toContain(userKeys(rp, 'bo').list);
      const after = await collectToEnd(changelog);
      expect(after.has('ana') && after.get('ana') === null, 'the changelog\'s last word on ana is a tombstone').toBe(true);
      expect(after.get('bo'), 'bo keeps his state').toBeTruthy();
    } finally {
      redis.disconnect();
      for (const p of procs) p.proc.kill('SIGTERM');
      await Promise.all(procs.map((p) => p.exited));
    }

    /** The compacted view of a changelog: each key's last value, read to the end with read_committed. */
    async function collectToEnd(topic: string): Promise<Map<string, string | null>> {
      const ends = await fx.admin.fetchTopicOffsets(topic);
      const reader = await collect(fx.kafka, [topic]);
      try {
        await waitFor(`${topic} read to its end`, () => ends.every((e) => reader.records.some((r) => r.partition === e.partition && BigInt(r.offset) + 1n >= BigInt(e.offset)) || e.offset === e.low), 30_000);
      } finally {
        await reader.stop();
      }
      const view = new Map<string, string | null>();
      for (const r of reader.records) view.set(r.key, r.value === null ? null : r.value.toString());
      return view;
    }
  });

  it('keeps every secret out of the output of a full secured pipeline run, and frame bytes out of every log line', async () => {
    const prefix = randomPrefix('pipeline');
    const marker = `EMRAWFACE${randomBytes(12).toString('hex')}`;
    const proc = spawn(process.execPath, [BIN, 'pipeline', '--infra', 'false', '--users', '2', '--speed', '4', '--partitions', '2', '--gateway-port', String(await freePort()), '--timeout-s', '120'], {
      env: { ...process.env, EM_KAFKA_BROKERS: brokers().join(','), EM_REDIS_URL: inject('redisUrl'), EM_TOPIC_PREFIX: prefix, EM_REDIS_PREFIX: `${prefix}r:`, EM_JWT_SECRET_FILE: path.join(secrets, 'jwt.secret') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
    try {
      // A corrupt frame with a recognisable payload, once the topics exist: the classifier dead-letters it.
      await waitFor('the pipeline\'s topics', () => out.includes('topics:'), 120_000);
      await produce(fx.kafka, `${prefix}frames.v1`, [{ key: 'leak-u', value: registry.encode('frame', frame('leak-u', 1, { encoding: 'JPEG', width: 0, height: 0, data: Buffer.from(`\xff\xd8${marker}${marker}`, 'latin1') })) }]);
      expect(await exited, out.slice(-4000)).toBe(0);
    } finally {
      proc.kill('SIGTERM');
    }
    expect(out, 'the corrupt frame was dead-lettered and logged').toContain('record dead-lettered');
    expect(out).toMatch(/user-1: [1-9]\d* emotion changes, [1-9]\d* lists/);
    const secretFiles = readdirSync(secrets).filter((f) => f.endsWith('.password') || f.endsWith('.secret') || f.endsWith('.key'));
    expect(secretFiles.length).toBeGreaterThanOrEqual(10);
    for (const f of secretFiles) {
      const value = read(f).trim();
      // a key file by its body lines, a password by its value
      const needles = f.endsWith('.key') ? value.split('\n').filter((l) => !l.startsWith('-----')).slice(0, 3) : [value];
      for (const n of needles) expect(out.includes(n), `${f} appears in the pipeline's output`).toBe(false);
    }
    for (const encoding of ['latin1', 'base64', 'hex'] as const) {
      const needle = Buffer.from(marker, 'latin1').toString(encoding).slice(0, 24);
      expect(out.includes(needle), `frame bytes (${encoding}) in the output`).toBe(false);
    }
  });
});

async function scanAll(redis: Redis, match: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}
