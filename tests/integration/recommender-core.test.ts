import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from '../../runtime/net.ts';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TopologyTestDriver } from '../../runtime/test-driver.ts';
import type { DeadLetter, EmotionChange, Listen, Recommendation } from '../../schemas/generated/types.ts';
import { buildTopology } from '../../topology/topology.ts';
import { createRecommenderCore, DEFAULT_RECOMMENDER_CONFIG } from '../../processors/recommender/core.ts';
import { Scorer } from '../../processors/recommender/scorer.ts';
import { userKeys } from '../../state/keys.ts';
import { UserStore } from '../../state/user-store.ts';
import { recommenderOptions } from '../../processors/index.ts';

const topology = buildTopology({ prefix: 'rec.', partitions: 2 });
const listen = (user: string, trackId: string, n: number, startTimeMs = 1_000_000 + n * 60_000): Listen => ({ listenId: `${user}-${n}`, userId: user, trackId, startTimeMs, listenedMs: 30_000, outcome: 'COMPLETED' });
const change = (user: string, label: EmotionChange['label'], windowEndSeq: number, previousLabel: EmotionChange['previousLabel'] = null): EmotionChange => ({
  userId: user, sessionId: 's1', previousLabel, label, probabilities: [0.02, 0.02, 0.02, 0.88, 0.02, 0.02, 0.02], valence: 0.8, arousal: 0.5,
  windowIndex: windowEndSeq / 10, windowEndSeq, captureTimeMs: 2_000_000 + windowEndSeq * 100, emittedTimeMs: 2_000_000 + windowEndSeq * 100 + 5, scheme: 'filter', confidence: 0.99,
});

/** A redis-server of the test's own (Debian package), with an append-only file so a restart keeps its data. */
class OwnRedis {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'em-rec-core-'));
  proc: ChildProcess | undefined;
  constructor(readonly port: number) {}
  async start(): Promise<void> {
    const proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], { stdio: 'ignore' });
    proc.on('error', (err) => {
      throw new Error(`this test starts its own redis-server (Debian package redis-server, installed by infra/local.sh install) and could not: ${err.message}`);
    });
    this.proc = proc;
    const deadline = Date.now() + 10_000;
    while (!(await new Promise<boolean>((resolve) => connect(this.port, '127.0.0.1', function (this: import('node:net').Socket) { this.end(); resolve(true); }).on('error', () => resolve(false))))) {
      if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${this.port} within 10 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  kill(): void {
    this.proc?.kill('SIGKILL');
  }
  stop(): void {
    this.proc?.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

describe('recommender core through the in-memory driver (real Redis of its own, the packaged model)', () => {
  let redis: OwnRedis;
  let scorer: Scorer;
  let store: UserStore;
  /** Set by a test: called after each Redis operation with its name. */
  let afterOperation: ((op: string) => void) | undefined;

  beforeAll(async () => {
    redis = new OwnRedis(await freePort());
    await redis.start();
    scorer = await Scorer.open(recommenderOptions.modelDir.default, { providers: ['cpu'], threads: 1, graph: 'auto' });
    store = new UserStore(`redis://127.0.0.1:${redis.port}`, { prefix: 't:', historySize: 50, ttlSeconds: 600, onOperation: (op) => afterOperation?.(op) });
    await store.connect();
  }, 30_000);
  afterAll(async () => {
    await store?.close();
    redis?.stop();
  });

  const driverFor = (onRetry?: () => Promise<void>) =>
    new TopologyTestDriver({ topology, cores: { recommender: createRecommenderCore({ scorer, store, config: { ...DEFAULT_RECOMMENDER_CONFIG, refreshIntervalMs: 30 * 60_000 } }) }, onRetry, maxAttempts: 4 });

  /** A driver whose Redis is killed after the first `op` of the run, and started again before the retry. */
  const killRedisAfter = (op: string) => {
    let killed = false;
    afterOperation = (done) => {
      if (done === op && !killed) {
        killed = true;
        redis.kill();
      }
    };
    const driver = driverFor(async () => {
      afterOperation = undefined;
      await redis.start();
      const deadline = Date.now() + 15_000;
      while (!store.ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    });
    return { driver, killed: () => killed };
  };

  it('builds a list on an emotion change and on the first listen, not on listens within the refresh interval; a repeated change makes no second list; an unknown track is dead-lettered', async () => {
    const driver = driverFor();
    const [t1, t2, t3] = scorer.catalogue.ids;
    driver.pipe('emotion-changes', 'ana', change('ana', 'happy', 20));
    driver.pipe('listens', 'ana', listen('ana', t1!, 1));
    driver.pipe('listens', 'ana', listen('ana', t2!, 2));
    driver.pipe('listens', 'ana', listen('ana', 'no-such-track', 3));
    driver.pipe('emotion-changes', 'ana', change('ana', 'happy', 20)); // the same change again (an at-least-once smoother's repeat)
    driver.pipe('emotion-changes', 'ana', change('ana', 'sad', 60, 'happy'));
    driver.pipe('listens', 'ana', listen('ana', t3!, 40)); // 39 minutes after the last refresh
    await driver.run();
    const lists = driver.read<Recommendation>('recommendations').map((r) => r.value);
    expect(lists.map((l) => l.trigger)).toEqual(['EMOTION_CHANGE', 'LISTEN', 'EMOTION_CHANGE', 'LISTEN']);
    for (const l of lists) {
      expect(l.userId).toBe('ana');
      expect(l.items).toHaveLength(DEFAULT_RECOMMENDER_CONFIG.topK);
      expect(l.items.map((i) => i.rank)).toEqual(Array.from({ length: DEFAULT_RECOMMENDER_CONFIG.topK }, (_, i) => i + 1));
      for (const it of l.items) expect(scorer.catalogue.indexOf.has(it.trackId)).toBe(true);
    }
    expect(lists[0]!.emotion?.label).toBe('happy');
    expect(lists[2]!.emotion?.label).toBe('sad');
    expect(driver.read<DeadLetter>('dead-letter').map((r) => r.value.errorCode)).toEqual(['UNKNOWN_TRACK']);
    expect(await store.read('ana')).toMatchObject({ history: [t3, t2, t1], emotion: { label: 'sad' } });
  }, 30_000);

  it('a Redis that refuses (an ACL user without the permission) is SERVICE_REFUSED: retried, never dead-lettered, and the run stops after the 5 attempts its code allows', async () => {
    const admin = new UserStore(`redis://127.0.0.1:${redis.port}`, { prefix: 't:', historySize: 5, ttlSeconds: 60 });
    await admin.connect();
    // The same server as an ACL user that may read the keys but not run scripts or write.
    const { Redis } = await import('ioredis');
    const root = new Redis(redis.port, '127.0.0.1');
    await root.call('ACL', 'SETUSER', 'reader', 'on', '>reader-pw', '~t:*', '+@read', '-@scripting');
    root.disconnect();
    await admin.close();
    const limited = new UserStore(`redis://reader:reader-pw@127.0.0.1:${redis.port}`, { prefix: 't:', historySize: 5, ttlSeconds: 60 });
    await limited.connect();
    try {
      const err = await limited.applyListen('cara', 'listens:0', '1', scorer.catalogue.ids[0]!, 0, 1000).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'SERVICE_REFUSED', retriable: true });
      const attempts: number[] = [];
      const driver = new TopologyTestDriver({ topology, cores: { recommender: createRecommenderCore({ scorer, store: limited }) }, maxAttempts: 50, onRetry: (_s, attempt) => void attempts.push(attempt) });
      driver.pipe('listens', 'cara', listen('cara', scorer.catalogue.ids[0]!, 1));
      await expect(driver.run()).rejects.toMatchObject({ code: 'SERVICE_REFUSED' });
      expect(attempts).toEqual([1, 2, 3, 4]);
      expect(driver.read('dead-letter')).toEqual([]);
    } finally {
      await limited.close();
    }
  }, 30_000);

  it('retries a batch whose Redis goes away in the middle of a list (after reading the user, before saving the list): one list, nothing dead-lettered', async () => {
    // The first list read of this test: Redis dies before the list is saved.
    const { driver, killed } = killRedisAfter('read');
    driver.pipe('emotion-changes', 'ben', change('ben', 'surprise', 30));
    await driver.run();
    expect(killed()).toBe(true);
    expect(driver.retries.get('recommender')).toBeGreaterThanOrEqual(1);
    const lists = driver.read<Recommendation>('recommendations').map((r) => r.value);
    expect(lists).toHaveLength(1);
    expect(lists[0]).toMatchObject({ userId: 'ben', trigger: 'EMOTION_CHANGE', emotion: { label: 'surprise' } });
    expect(driver.read('dead-letter')).toEqual([]);
    // The list saved in Redis is the one published (the published copy went through Avro floats).
    const saved = await store.lastList('ben');
    expect(saved).toMatchObject({ listId: lists[0]!.listId, createdTimeMs: lists[0]!.createdTimeMs });
    expect(saved!.items.map((i) => i.trackId)).toEqual(lists[0]!.items.map((i) => i.trackId));
  }, 60_000);

  it('a listen applied just before Redis fails still makes its list: the retry finds the list pending (it was lost before: the listen counted as applied, its list never made)', async () => {
    // Redis dies right after the listen is applied, before the list is built and saved.
    const { driver, killed } = killRedisAfter('apply-listen');
    driver.pipe('listens', 'dan', listen('dan', scorer.catalogue.ids[5]!, 1));
    await driver.run();
    expect(killed()).toBe(true);
    expect(driver.retries.get('recommender')).toBeGreaterThanOrEqual(1);
    const lists = driver.read<Recommendation>('recommendations').map((r) => r.value);
    expect(lists.map((l) => [l.userId, l.trigger])).toEqual([['dan', 'LISTEN']]);
    expect((await store.lastList('dan'))?.listId).toBe(lists[0]!.listId);
    expect(driver.read('dead-letter')).toEqual([]);
  }, 60_000);

  it('users whose ids look like each other\'s keys (X, X:history, X:list, {X}, %58) keep their own state', async () => {
    const driver = driverFor();
    const [t1, t2, t3, t4, t5] = scorer.catalogue.ids;
    const users = ['eve', 'eve:history', 'eve:list', '{eve}', 'eve%3A', 'e'.repeat(128)];
    const tracks = [t1, t2, t3, t4, t5, t1];
    driver.pipe('emotion-changes', 'eve', change('eve', 'happy', 10));
    users.forEach((u, i) => driver.pipe('listens', u, { ...listen(u, tracks[i]!, 1), listenId: `l-${i}` }));
    driver.pipe('emotion-changes', 'eve:list', change('eve:list', 'sad', 10));
    await driver.run();
    expect(driver.read('dead-letter')).toEqual([]);
    for (const [i, u] of users.entries()) expect((await store.read(u)).history, u).toEqual([tracks[i]]);
    expect((await store.read('eve')).emotion?.label).toBe('happy');
    expect((await store.read('eve:list')).emotion?.label).toBe('sad');
    expect((await store.read('eve:history')).emotion).toBeNull();
    for (const u of users) expect((await store.lastList(u))?.userId, u).toBe(u);
    // Forgetting one of them deletes only theirs.
    expect(await store.forget('eve')).toBeGreaterThanOrEqual(3);
    expect(await store.lastList('eve')).toBeNull();
    for (const u of users.slice(1)) expect((await store.lastList(u))?.userId, u).toBe(u);
  }, 30_000);

  it('a key of the wrong type (another program on the prefix) is a refusal that stops the run after 5 attempts and names WRONGTYPE, not a retry for ever', async () => {
    const { Redis } = await import('ioredis');
    const root = new Redis(redis.port, '127.0.0.1');
    await root.set(userKeys('t:', 'fay').state, 'not a hash');
    root.disconnect();
    const attempts: number[] = [];
    const driver = new TopologyTestDriver({ topology, cores: { recommender: createRecommenderCore({ scorer, store }) }, maxAttempts: 50, onRetry: (_s, attempt) => void attempts.push(attempt) });
    driver.pipe('listens', 'fay', listen('fay', scorer.catalogue.ids[0]!, 1));
    const err = await driver.run().then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'SERVICE_REFUSED' });
    expect(String((err as Error).message)).toMatch(/WRONGTYPE/);
    expect(attempts).toEqual([1, 2, 3, 4]);
    expect(driver.read('dead-letter')).toEqual([]);
  }, 30_000);

  it('moves the keys of the old layout to the new one, telling X\'s history from the user "X:history" by type; a second run moves nothing', async () => {
    const { Redis } = await import('ioredis');
    const { migrateLegacyKeys } = await import('../../state/migrate.ts');
    const root = new Redis(redis.port, '127.0.0.1');
    const p = 'old:';
    const emotion = JSON.stringify({ label: 'sad', probabilities: [0, 0, 0, 0, 1, 0, 0], valence: 0.2, arousal: 0.3, sinceMs: 1 });
    await root.hset(`${p}u:gus`, 'emotion', emotion, 'listAtMs', '5');
    await root.rpush(`${p}u:gus:history`, 't2', 't1');
    await root.set(`${p}u:gus:list`, JSON.stringify({ listId: 'gus-list', userId: 'gus' }), 'EX', 500);
    await root.hset(`${p}u:gus:history`.replace('history', 'hist'), 'emotion', emotion); // user "gus:hist"
    await root.hset(`${p}u:gus:list:history`, 'listAtMs', '9'); // the hash of user "gus:list:history"
    const old = new UserStore(`redis://127.0.0.1:${redis.port}`, { prefix: p, historySize: 5, ttlSeconds: 60 });
    await old.connect();
    try {
      expect(await migrateLegacyKeys(root, p, { dryRun: true })).toMatchObject({ moved: 5 });
      expect(await migrateLegacyKeys(root, p)).toMatchObject({ moved: 5, kept: 0, skipped: [] });
      expect(await old.read('gus')).toMatchObject({ history: ['t2', 't1'], emotion: { label: 'sad' }, listAtMs: 5 });
      expect((await old.lastList('gus'))?.listId).toBe('gus-list');
      expect(await root.ttl(userKeys(p, 'gus').list)).toBeGreaterThan(400);
      expect((await old.read('gus:hist')).emotion?.label).toBe('sad');
      expect((await old.read('gus:list:history')).listAtMs).toBe(9);
      expect(await migrateLegacyKeys(root, p)).toMatchObject({ moved: 0 });
      expect(await root.keys(`${p}u:*`)).toEqual([]);
    } finally {
      await old.close();
      root.disconnect();
    }
  }, 30_000);
});
