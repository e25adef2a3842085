import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintDevelopmentToken, TokenVerifier } from '../../auth/tokens.ts';
import { StreamClient } from '../../gateway/client.ts';
import { Gateway } from '../../gateway/server.ts';
import { recommenderOptions } from '../../processors/index.ts';
import { loadCatalogue } from '../../processors/recommender/catalogue.ts';
import { createLogger } from '../../runtime/log.ts';
import type { EmotionChange, Listen, Recommendation } from '../../schemas/generated/types.ts';
import { userKeys } from '../../state/keys.ts';
import { UserStore } from '../../state/user-store.ts';
import { topicName } from '../../topology/topology.ts';
import { registry } from '../support/frames.ts';
import { collect, createTopology, freePort, produce, randomPrefix, startProcessor, useKafka, waitFor } from '../support/kafka.ts';

// The recommender and the gateway on a real Redis Cluster: three masters from Debian's
// redis-server on loopback, made with redis-cli --cluster create. Every user's keys share a hash
// slot (state/keys.ts), so the scripts and transactions that touch several of them work, and the
// users spread over the masters. Password-protected, so that it runs the same in the secured run.
const PASSWORD = randomBytes(16).toString('hex');
const USERS = ['ana', 'ana:history', '{ana}', 'bo%7B', `long-${'x'.repeat(120)}`, ...Array.from({ length: 45 }, (_, i) => `user-${i}`)];
const catalogue = loadCatalogue(recommenderOptions.modelDir.default);
const HISTORY = recommenderOptions.historySize.default;
const TOP_K = recommenderOptions.topK.default;

function change(userId: string, t: number): EmotionChange {
  const probabilities = [0.02, 0.02, 0.02, 0.88, 0.02, 0.02, 0.02];
  return { userId, sessionId: 's', previousLabel: null, label: 'happy', probabilities, valence: 0.8, arousal: 0.6, windowIndex: 0, windowEndSeq: 10, captureTimeMs: t, emittedTimeMs: t, scheme: 'paper', confidence: null };
}
const listen = (userId: string, n: number): Listen => ({ listenId: `${userId}-${n}`, userId, trackId: catalogue.ids[n]!, startTimeMs: 1_764_000_000_000 + n * 1000, listenedMs: 30_000, outcome: 'COMPLETED' });

describe('Redis Cluster: three masters on loopback', () => {
  const fx = useKafka();
  let dir: string;
  let ports: number[];
  let servers: ChildProcess[] = [];
  let url: string;
  const options = { username: 'default', password: PASSWORD };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'em-redis-cluster-'));
    ports = [await freePort(), await freePort(), await freePort()];
    servers = ports.map((port) =>
      spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--dir', dir, '--save', '', '--appendonly', 'no', '--requirepass', PASSWORD, '--masterauth', PASSWORD], { stdio: 'ignore' }));
    await waitFor('three redis-server nodes', async () => {
      const answers = await Promise.all(ports.map(async (port) => {
        const probe = new Redis({ port, host: '127.0.0.1', password: PASSWORD, lazyConnect: true, retryStrategy: () => null }).on('error', () => undefined);
        try {
          await probe.connect();
          return true;
        } catch {
          return false;
        } finally {
          probe.disconnect();
        }
      }));
      return answers.every(Boolean);
    }, 20_000, 200);
    const create = spawnSync('redis-cli', ['-a', PASSWORD, '--no-auth-warning', '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 60_000 });
    expect(create.status, create.stdout + create.stderr).toBe(0);
    await waitFor('cluster_state:ok on every node', () => ports.every((port) => {
      const info = spawnSync('redis-cli', ['-p', String(port), '-a', PASSWORD, '--no-auth-warning', 'cluster', 'info'], { encoding: 'utf8' });
      return info.stdout.includes('cluster_state:ok');
    }), 30_000, 300);
    url = `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
  });

  afterAll(() => {
    for (const s of servers) s.kill('SIGTERM');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps each user\'s state on one master, spreads the users over all three, and forgets one user without touching another', async () => {
    const prefix = `test.cluster.${randomBytes(3).toString('hex')}:`;
    // each user as the recommender keeps one after a while: a full history and a full list
    const store = new UserStore(url, { prefix, historySize: HISTORY, ttlSeconds: 600 }, options);
    await store.connect();
    await waitFor('the store ready on the cluster', () => store.ready(), 20_000);
    const track = (i: number, n: number) => catalogue.ids[(i * 7 + n) % catalogue.ids.length]!;
    try {
      for (const [i, user] of USERS.entries()) {
        const emotion = { label: 'happy', probabilities: change(user, 0).probabilities, valence: 0.8, arousal: 0.6, sinceMs: 1000 };
        expect(await store.applyEmotion(user, 'changes:0', String(i), emotion, `c-${i}`)).toBe('applied');
        for (let n = 0; n < HISTORY; n++) expect(await store.applyListen(user, 'listens:0', String(n), track(i, n), 1_764_000_000_000 + n * 60_000, 60_000)).toBe('refresh');
        const items = Array.from({ length: TOP_K }, (_, r) => ({ trackId: track(i, r), rank: r + 1, finalScore: 0.9 - r / 100, preferenceScore: 0.8 - r / 100, emotionScore: 0.7 }));
        const list: Recommendation = { listId: `l-${i}`, userId: user, trigger: 'LISTEN', causeId: `listens:0@${HISTORY - 1}`, emotion: { label: 'happy', probabilities: change(user, 0).probabilities, valence: 0.8, arousal: 0.6 }, items, modelVersion: 'bilstm-va-full', createdTimeMs: 1_764_000_000_000 };
        await store.saveList(user, 'listens:0', String(HISTORY - 1), list);
      }
      for (const [i, user] of USERS.entries()) {
        expect((await store.lastList(user))?.listId).toBe(`l-${i}`);
        const { history } = await store.read(user);
        expect(history).toHaveLength(HISTORY);
        expect(history[0]).toBe(track(i, HISTORY - 1));
      }

      // where the keys are: each user's on exactly one master, every master holding some users
      const cluster = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })), { redisOptions: options });
      await new Promise((resolve) => cluster.once('ready', resolve));
      try {
        const holders = new Map<string, Set<number>>();
        const perMaster: number[] = [];
        let kept = 0;
        let outputs = 0;
        for (const [m, node] of cluster.nodes('master').entries()) {
          const keys = await node.keys(`${prefix}*`);
          perMaster.push(keys.length);
          for (const key of keys) {
            const user = USERS.find((u) => key.startsWith(`${userKeys(prefix, u).tag}:`))!;
            expect(user, key).toBeDefined();
            holders.set(user, (holders.get(user) ?? new Set()).add(m));
            const size = Number(await node.memory('USAGE', key));
            if (key.startsWith(`${userKeys(prefix, user).tag}:o:`)) outputs += size;
            else kept += size;
          }
        }
        expect(perMaster).toHaveLength(3);
        for (const n of perMaster) expect(n).toBeGreaterThan(0);
        for (const user of USERS) expect(holders.get(user)?.size, user).toBe(1);
        console.log(`[redis-cluster] ${USERS.length} users over 3 masters (${perMaster.join(', ')} keys); by MEMORY USAGE a user holds ${Math.round(kept / USERS.length)} bytes of state (its hash, ${HISTORY} listens, a list of ${TOP_K}) and ${Math.round(outputs / USERS.length / (HISTORY + 1))} bytes per remembered output (one per record of the last hour; ${HISTORY + 1} here)`);

        expect(await store.forget('ana')).toBe(3 + HISTORY + 1);
        expect(await store.lastList('ana')).toBeNull();
        for (const other of ['ana:history', '{ana}']) expect((await store.lastList(other))?.userId).toBe(other);
      } finally {
        cluster.disconnect();
      }
    } finally {
      await store.close();
    }
  });

  it('runs the recommender processor and the gateway on it: lists made from changes and listens, read back through the gateway', async () => {
    const prefix = randomPrefix('cluster');
    const topology = await createTopology(fx.admin, prefix, 3);
    const redisPrefix = `${prefix}r:`;
    const secret = randomBytes(32).toString('hex');
    const users = USERS.slice(0, 12);
    const redisEnv = { EM_REDIS_URL: url, EM_REDIS_TLS: 'off', EM_REDIS_USERNAME: 'default', EM_REDIS_PASSWORD: PASSWORD, EM_REDIS_PREFIX: redisPrefix };
    const recommender = await startProcessor('recommender', { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_JWT_SECRET: secret, ...redisEnv });
    const reader = await collect(fx.kafka, [topicName(topology, 'recommendations'), topicName(topology, 'dead-letter')]);
    const gateway = new Gateway({
      kafka: fx.kafka, registry, topology, redisUrl: url, redisOptions: options, redisPrefix,
      verifier: await TokenVerifier.create({ secret }), catalogue, port: 0, host: '127.0.0.1',
      limits: { framesPerSecond: 15, maxMessageBytes: 64 * 1024, maxInFlight: 64, helloTimeoutMs: 2000 },
      maxConnections: 10, maxInFlight: 1024, logger: createLogger('warn', { component: 'cluster-gateway' }),
    });
    try {
      await waitFor('the recommender ready', async () => (await fetch(`http://127.0.0.1:${recommender.port}/readyz`).catch(() => undefined))?.ok, 120_000, 500, [recommender]);
      await gateway.start();
      await gateway.whenReady();
      await produce(fx.kafka, topicName(topology, 'emotion-changes'), users.map((u, i) => ({ key: u, value: registry.encode('emotion-change', change(u, 1_764_000_000_000 + i)) })));
      await produce(fx.kafka, topicName(topology, 'listens'), users.map((u, i) => ({ key: u, value: registry.encode('listen', listen(u, i)) })));
      const listsOf = () => new Set(reader.records.filter((r) => r.topic === topicName(topology, 'recommendations')).map((r) => registry.decode('recommendation', r.value!).userId));
      await waitFor(`lists for all ${users.length} users`, () => users.every((u) => listsOf().has(u)), 60_000, 300, [recommender]);
      expect(reader.records.filter((r) => r.topic === topicName(topology, 'dead-letter'))).toEqual([]);

      // the gateway reads each user's own list from the cluster, and keeps a session's sequence there
      for (const user of [users[0]!, users[3]!, users[7]!]) {
        const token = await mintDevelopmentToken({ secret }, user, 600);
        const res = await fetch(`http://127.0.0.1:${gateway.port}/v1/me/recommendations`, { headers: { authorization: `Bearer ${token}` } });
        expect(res.status, user).toBe(200);
        expect(((await res.json()) as { userId: string }).userId).toBe(user);
        const client = await StreamClient.connect(`http://127.0.0.1:${gateway.port}`, { token, sessionId: 'c1', tokenInHeader: true });
        client.send({ kind: 'GRAY8', seq: 1, captureTimeMs: Date.now(), width: 48, height: 48, faceBox: null, data: new Uint8Array(48 * 48).fill(100) });
        await client.waitFor('the frame acked', (c) => c.acked >= 1, 20_000);
        client.ws.close();
      }
      const cluster = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })), { redisOptions: options });
      try {
        await waitFor('the sessions stored on the cluster', async () => {
          const stored = await Promise.all([users[0]!, users[3]!, users[7]!].map((u) => cluster.get(userKeys(redisPrefix, u).session('c1'))));
          return stored.every((v) => v === '1');
        }, 10_000, 200);
      } finally {
        cluster.disconnect();
      }
    } finally {
      await gateway.close();
      recommender.proc.kill('SIGTERM');
      await recommender.exited;
      await reader.stop();
    }
  });
});
