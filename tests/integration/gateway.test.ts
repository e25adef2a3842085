import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Admin, Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mintDevelopmentToken, TokenVerifier } from '../../auth/tokens.ts';
import { StreamClient } from '../../gateway/client.ts';
import { HEADER_BYTES, encodeFrame, type ServerMessage, type StreamFrame } from '../../gateway/protocol.ts';
import { Gateway } from '../../gateway/server.ts';
import { SessionStore } from '../../gateway/sessions.ts';
import { recommenderOptions } from '../../processors/index.ts';
import { loadCatalogue } from '../../processors/recommender/catalogue.ts';
import { UserStore } from '../../state/user-store.ts';
import { createLogger } from '../../runtime/log.ts';
import type { EmotionChange, Recommendation } from '../../schemas/generated/types.ts';
import { topicName, type Topology } from '../../topology/topology.ts';
import { registry } from '../support/frames.ts';
import { collect, createTopology, produce, randomPrefix, testKafka, waitFor, testRedis, appRedisOptions } from '../support/kafka.ts';

// A fresh HS256 secret per run; deployments take theirs from the environment or a file.
const SECRET = randomBytes(32).toString('hex');
const OTHER_SECRET = randomBytes(32).toString('hex');
const RATE = 15;

const token = (user: string, ttl = 600, secret = SECRET, now = Date.now()) => mintDevelopmentToken({ secret }, user, ttl, now);
const crop = (seq: number, shade = 128): StreamFrame => ({ kind: 'GRAY8', seq, captureTimeMs: Date.now(), width: 48, height: 48, faceBox: { x: 10, y: 20, width: 100, height: 100 }, data: new Uint8Array(48 * 48).fill(shade) });
const errors = (c: StreamClient) => c.messages.filter((m): m is Extract<ServerMessage, { type: 'error' }> => m.type === 'error');

describe('gateway against the real broker and Redis', () => {
  let kafka: Kafka;
  let admin: Admin;
  let redis: Redis;
  let topology: Topology;
  let gateway: Gateway;
  let base: string;
  const catalogue = loadCatalogue(recommenderOptions.modelDir.default);
  const prefix = `test.gw.${randomBytes(3).toString('hex')}:`;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    redis = testRedis();
    topology = await createTopology(admin, randomPrefix('gateway'), 3);
    gateway = new Gateway({
      kafka,
      registry,
      topology,
      redisUrl: inject('redisUrl'),
      redisOptions: appRedisOptions(),
      redisPrefix: prefix,
      verifier: await TokenVerifier.create({ secret: SECRET }),
      catalogue,
      port: 0,
      host: '127.0.0.1',
      limits: { framesPerSecond: RATE, maxMessageBytes: 64 * 1024, maxInFlight: 64, helloTimeoutMs: 800 },
      maxConnections: 100,
      maxInFlight: 4096,
      logger: createLogger('warn', { component: 'gateway-test' }),
    });
    await gateway.start();
    await gateway.whenReady();
    base = `http://127.0.0.1:${gateway.port}`;
  });
  afterAll(async () => {
    await gateway?.close();
    await admin?.disconnect();
    redis?.disconnect();
  });

  const get = async (path: string, bearer?: string) => {
    const res = await fetch(`${base}${path}`, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('refuses HTTP requests without a token, with an expired or foreign-signed one, and gives each user only their own data', async () => {
    const store = new UserStore(inject('redisUrl'), { prefix, historySize: 50, ttlSeconds: 600 }, appRedisOptions());
    await store.connect();
    const list: Recommendation = { listId: 'l-ana', userId: 'ana', trigger: 'REQUEST', causeId: 'test', emotion: null, items: [{ trackId: catalogue.ids[0]!, rank: 1, finalScore: 0.9, preferenceScore: 0.8, emotionScore: 0.7 }], modelVersion: 'test', createdTimeMs: Date.now() };
    await store.saveList('ana', 'test:0', '0', list);
    await store.close();

    expect(await get('/v1/me/recommendations')).toMatchObject({ status: 401, body: { code: 'TOKEN_MISSING' } });
    expect(await get('/v1/me/recommendations', await token('ana', 60, SECRET, Date.now() - 3_600_000))).toMatchObject({ status: 401, body: { code: 'TOKEN_EXPIRED' } });
    expect(await get('/v1/me/recommendations', await token('ana', 600, OTHER_SECRET))).toMatchObject({ status: 401, body: { code: 'TOKEN_INVALID' } });
    expect(await get('/v1/me/emotion', 'not-a-jwt')).toMatchObject({ status: 401, body: { code: 'TOKEN_INVALID' } });

    const ana = await get('/v1/me/recommendations', await token('ana'));
    expect(ana.status).toBe(200);
    expect(ana.body).toMatchObject({ listId: 'l-ana', userId: 'ana', items: [{ trackId: catalogue.ids[0], title: catalogue.titles[0] }] });
    // Bea's token reads Bea's (absent) list, never Ana's; there is no route that names a user.
    expect(await get('/v1/me/recommendations', await token('bea'))).toMatchObject({ status: 404, body: { code: 'NO_LIST' } });
    expect((await get('/v1/users/ana/recommendations', await token('bea'))).status).toBe(404);
    expect(await get('/v1/me/emotion', await token('bea'))).toMatchObject({ status: 404, body: { code: 'NO_EMOTION' } });
  });

  it('takes a listen from the token\'s user only, and refuses unknown tracks with a code', async () => {
    const { records, stop } = await collect(kafka, [topicName(topology, 'listens')]);
    const post = async (body: unknown, bearer?: string) => {
      const res = await fetch(`${base}/v1/me/listens`, { method: 'POST', headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect((await post({ trackId: catalogue.ids[1] })).status).toBe(401);
    expect(await post({ trackId: 'no-such-track' }, await token('cleo'))).toMatchObject({ status: 422, body: { code: 'UNKNOWN_TRACK' } });
    expect(await post({ trackId: catalogue.ids[1], outcome: 'MAYBE' }, await token('cleo'))).toMatchObject({ status: 400, body: { code: 'BAD_REQUEST' } });
    // A user id in the body is ignored: the user is the token's.
    const ok = await post({ trackId: catalogue.ids[1], userId: 'mallory', listenedMs: 1200, outcome: 'SKIPPED' }, await token('cleo'));
    expect(ok.status).toBe(202);
    await waitFor('the listen in Kafka', () => records.length >= 1, 20_000);
    await stop();
    expect(records).toHaveLength(1);
    expect(records[0]!.key).toBe('cleo');
    expect(registry.decode('listen', records[0]!.value!)).toMatchObject({ userId: 'cleo', trackId: catalogue.ids[1], listenedMs: 1200, outcome: 'SKIPPED', listenId: ok.body.listenId });
  });

  it('refuses sockets without a token, with an expired one, or that never say hello', async () => {
    await expect(StreamClient.connect(base, { token: await token('dan', 60, SECRET, Date.now() - 3_600_000), tokenInHeader: true })).rejects.toMatchObject({ status: 401, body: { code: 'TOKEN_EXPIRED' } });
    await expect(StreamClient.connect(base, { token: await token('dan', 600, OTHER_SECRET), tokenInHeader: true })).rejects.toMatchObject({ status: 401, body: { code: 'TOKEN_INVALID' } });
    await expect(StreamClient.connect(base, { token: '' })).rejects.toMatchObject({ code: 4401, reason: 'TOKEN_MISSING' });
    await expect(StreamClient.connect(base, { token: await token('dan', 60, SECRET, Date.now() - 3_600_000) })).rejects.toMatchObject({ code: 4401, reason: 'TOKEN_EXPIRED' });
    // A socket that sends frames before hello gets an error, then is closed when its time is up.
    const { WebSocket } = await import('ws');
    const silent = new WebSocket(`${base.replace('http', 'ws')}/v1/stream`);
    const got: string[] = [];
    silent.on('message', (d) => got.push(d.toString()));
    silent.on('open', () => silent.send(encodeFrame(crop(1))));
    const closed = await new Promise<number>((resolve) => silent.on('close', (code) => resolve(code)));
    expect(closed).toBe(4408);
    expect(JSON.parse(got[0]!)).toMatchObject({ type: 'error', code: 'NOT_AUTHENTICATED' });
    // A token that expires while connected closes the socket.
    const short = await StreamClient.connect(base, { token: await token('dan', 2) });
    await short.waitFor('the expiry close', (c) => c.closed, 10_000).catch(() => undefined);
    expect(short.closed).toMatchObject({ code: 4401, reason: 'TOKEN_EXPIRED' });
  });

  it('answers malformed messages with errors and keeps the same socket working; frames are keyed by the token\'s user', async () => {
    const { records, stop } = await collect(kafka, [topicName(topology, 'frames')]);
    const c = await StreamClient.connect(base, { token: await token('eve'), sessionId: 'malformed' });
    expect(c.welcome).toMatchObject({ userId: 'eve', sessionId: 'malformed', lastSeq: 0, limits: { framesPerSecond: RATE } });
    const good = encodeFrame(crop(1));
    const scores = (p: number[]) => encodeFrame({ kind: 'SCORES', seq: 2, captureTimeMs: Date.now(), width: 0, height: 0, faceBox: null, data: new Uint8Array(0), probabilities: p, modelVersion: 'edge-test' });
    const badKind = good.slice();
    badKind[2] = 99;
    const cases: Array<[Uint8Array | string, string]> = [
      ['not json', 'BAD_MESSAGE'],
      [JSON.stringify({ type: 'subscribe', userId: 'ana' }), 'BAD_MESSAGE'],
      [JSON.stringify({ type: 'hello', token: 'x' }), 'BAD_MESSAGE'],
      [new Uint8Array([1, 2, 3]), 'BAD_MESSAGE'],
      [new Uint8Array(HEADER_BYTES).fill(7), 'BAD_MESSAGE'],
      [badKind, 'BAD_MESSAGE'],
      [good.subarray(0, good.length - 10), 'BAD_FRAME'],
      [scores([0.5, 0.5, 0.5, 0, 0, 0, 0]), 'BAD_SCORES'],
      [scores([Number.NaN, 0, 0, 1, 0, 0, 0]), 'BAD_SCORES'],
      [new Uint8Array(100 * 1024), 'MESSAGE_TOO_LARGE'],
    ];
    for (const [data, code] of cases) {
      const before = errors(c).length;
      c.sendRaw(data);
      await c.waitFor(`the error for ${code}`, () => errors(c).length > before);
      expect(errors(c).at(-1)).toMatchObject({ type: 'error', code });
    }
    c.send(crop(1));
    c.send({ kind: 'SCORES', seq: 2, captureTimeMs: Date.now(), width: 0, height: 0, faceBox: { x: 1, y: 2, width: 30, height: 30 }, data: new Uint8Array(0), probabilities: [0.1, 0, 0, 0.8, 0.1, 0, 0], modelVersion: 'edge-test' });
    c.send({ kind: 'NONE', seq: 3, captureTimeMs: Date.now(), width: 0, height: 0, faceBox: null, data: new Uint8Array(0) });
    await c.waitFor('the ack of frame 3', (x) => x.acked >= 3);
    c.send(crop(2));
    await c.waitFor('OUT_OF_ORDER', () => errors(c).at(-1)?.code === 'OUT_OF_ORDER');
    await waitFor('3 frames in Kafka', () => records.length >= 3, 20_000);
    await c.close();
    await stop();
    expect(records).toHaveLength(3);
    const frames = records.map((r) => ({ key: r.key, ...registry.decode('frame', r.value!) }));
    expect(frames.map((f) => [f.key, f.userId, f.sessionId, f.seq, f.encoding])).toEqual([
      ['eve', 'eve', 'malformed', 1, 'GRAY8'],
      ['eve', 'eve', 'malformed', 2, 'SCORES'],
      ['eve', 'eve', 'malformed', 3, 'NONE'],
    ]);
    expect(Buffer.compare(frames[0]!.data, Buffer.from(crop(1).data))).toBe(0);
    expect(frames[1]!.probabilities[3]).toBeCloseTo(0.8, 5);
    expect(frames[1]!.edgeModelVersion).toBe('edge-test');
  });

  it('slows a client faster than the rate limit, loses nothing it acked, and continues a session after a reconnect', async () => {
    const { records, stop } = await collect(kafka, [topicName(topology, 'frames')]);
    const n = 45;
    const c = await StreamClient.connect(base, { token: await token('fay'), sessionId: 'fast', tokenInHeader: true });
    const t0 = performance.now();
    for (let seq = 1; seq <= n; seq++) c.send(crop(seq, seq));
    await c.waitFor('the ack of every frame', (x) => x.acked >= n, 20_000);
    const seconds = (performance.now() - t0) / 1000;
    // One second of burst, then 15 a second: 30 frames past the burst take two seconds.
    expect(seconds).toBeGreaterThan((n - RATE) / RATE - 0.3);
    expect(c.messages.some((m) => m.type === 'throttle' && m.reason === 'RATE_LIMITED')).toBe(true);
    expect(errors(c)).toEqual([]);
    await c.close();

    // The same session on a new socket continues after the last ack; a repeat of an acked frame is acked, not stored again.
    const again = await StreamClient.connect(base, { token: await token('fay'), sessionId: 'fast' });
    expect(again.welcome.lastSeq).toBe(n);
    again.send(crop(n));
    again.send(crop(n + 1));
    await again.waitFor('the ack of the next frame', (x) => x.acked >= n + 1, 10_000);
    await again.close();
    await waitFor(`${n + 1} frames in Kafka`, () => records.length >= n + 1, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    await stop();
    const seqs = records.map((r) => registry.decode('frame', r.value!)).filter((f) => f.userId === 'fay').map((f) => f.seq);
    expect(seqs).toEqual(Array.from({ length: n + 1 }, (_, i) => i + 1));
  });

  it('stops reading a socket whose frames Kafka has not stored yet (bounded in flight), tells it, and acks every frame', async () => {
    // A second instance with a tight in-flight bound and no effective rate limit.
    const tight = new Gateway({
      kafka, registry, topology, redisUrl: inject('redisUrl'), redisOptions: appRedisOptions(), redisPrefix: prefix, verifier: await TokenVerifier.create({ secret: SECRET }), catalogue, port: 0, host: '127.0.0.1',
      limits: { framesPerSecond: 100_000, maxMessageBytes: 64 * 1024, maxInFlight: 4, helloTimeoutMs: 800 }, maxConnections: 10, maxInFlight: 4096,
      logger: createLogger('warn', { component: 'gateway-test' }),
    });
    await tight.start();
    try {
      await tight.whenReady();
      const { records, stop } = await collect(kafka, [topicName(topology, 'frames')]);
      const n = 300;
      const c = await StreamClient.connect(`http://127.0.0.1:${tight.port}`, { token: await token('ivy'), sessionId: 'burst', tokenInHeader: true });
      for (let seq = 1; seq <= n; seq++) c.send(crop(seq));
      await c.waitFor('every frame acked', (x) => x.acked >= n, 30_000);
      expect(c.messages.some((m) => m.type === 'throttle' && m.reason === 'BACKPRESSURE')).toBe(true);
      expect(errors(c)).toEqual([]);
      await c.close();
      await waitFor(`${n} frames in Kafka`, () => records.filter((r) => r.key === 'ivy').length >= n, 20_000);
      await stop();
      expect(records.filter((r) => r.key === 'ivy').map((r) => registry.decode('frame', r.value!).seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(await (await fetch(`http://127.0.0.1:${tight.port}/metrics`)).text()).toMatch(/emotionmuse_gateway_throttles_total\{reason="BACKPRESSURE"\} [1-9]/);
    } finally {
      await tight.close();
    }
  });

  it('sends each socket its own user\'s events only', async () => {
    const ana = await StreamClient.connect(base, { token: await token('gil') });
    const bea = await StreamClient.connect(base, { token: await token('hal') });
    const change = (userId: string, label: EmotionChange['label']): EmotionChange => ({ userId, sessionId: 's', previousLabel: null, label, probabilities: [0, 0, 0, 1, 0, 0, 0], valence: 0.8, arousal: 0.5, windowIndex: 4, windowEndSeq: 50, captureTimeMs: Date.now(), emittedTimeMs: Date.now(), scheme: 'paper', confidence: null });
    await produce(kafka, topicName(topology, 'emotion-changes'), [
      { key: 'gil', value: registry.encode('emotion-change', change('gil', 'happy')) },
      { key: 'hal', value: registry.encode('emotion-change', change('hal', 'sad')) },
    ]);
    await ana.waitFor('gil\'s change', (c) => c.messages.some((m) => m.type === 'change'), 15_000);
    await bea.waitFor('hal\'s change', (c) => c.messages.some((m) => m.type === 'change'), 15_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(ana.messages.filter((m) => m.type === 'change').map((m) => (m as { label: string }).label)).toEqual(['happy']);
    expect(bea.messages.filter((m) => m.type === 'change').map((m) => (m as { label: string }).label)).toEqual(['sad']);
    await ana.close();
    await bea.close();
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/emotionmuse_gateway_rejections_total\{reason="BAD_SCORES"\} 2/);
    expect(metrics).toMatch(/emotionmuse_gateway_events_out_total\{type="change"\} 2/);
  });

  it('bounds what a socket that stops reading holds: its scores are dropped (counted), and when changes and lists would pass the bound it is closed with 4413 (the memory was unbounded before)', async () => {
    const bound = 64 * 1024;
    const small = new Gateway({
      kafka, registry, topology, redisUrl: inject('redisUrl'), redisOptions: appRedisOptions(), redisPrefix: prefix, verifier: await TokenVerifier.create({ secret: SECRET }), catalogue, port: 0, host: '127.0.0.1',
      limits: { framesPerSecond: RATE, maxMessageBytes: 64 * 1024, maxInFlight: 64, helloTimeoutMs: 800, maxSocketBufferBytes: bound }, maxConnections: 10, maxInFlight: 4096,
      logger: createLogger('error', { component: 'gateway-test' }),
    });
    await small.start();
    try {
      await small.whenReady();
      const c = await StreamClient.connect(`http://127.0.0.1:${small.port}`, { token: await token('kim'), tokenInHeader: true });
      // The client stops reading: the kernel's buffers fill, then the gateway's.
      (c.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
      const score = (seq: number) => registry.encode('emotion-score', { userId: 'kim', sessionId: 's', seq, captureTimeMs: Date.now(), faceFound: true, probabilities: [0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1], faceBox: null, modelVersion: 'm', scoredAt: 'EDGE', timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 }, processedTimeMs: Date.now() });
      const scores = 60_000;
      await produce(kafka, topicName(topology, 'emotion-scores'), Array.from({ length: scores }, (_, i) => ({ key: 'kim', value: score(i + 1) })), 5000);
      const dropped = async () => Number(/emotionmuse_gateway_events_dropped_total\{type="score",reason="slow-reader"\} (\d+)/.exec(await (await fetch(`http://127.0.0.1:${small.port}/metrics`)).text())?.[1] ?? 0);
      await waitFor('scores dropped for the slow reader', async () => (await dropped()) > 0, 60_000);
      const list = (n: number): Recommendation => ({ listId: `kim-${n}`, userId: 'kim', trigger: 'LISTEN', causeId: 'c', emotion: null, items: catalogue.ids.slice(0, 10).map((trackId, i) => ({ trackId, rank: i + 1, finalScore: 0.5, preferenceScore: 0.5, emotionScore: 0.5 })), modelVersion: 'm', createdTimeMs: Date.now() });
      await produce(kafka, topicName(topology, 'recommendations'), Array.from({ length: 200 }, (_, i) => ({ key: 'kim', value: registry.encode('recommendation', list(i + 1)) })));
      await waitFor('the socket closed for reading too slowly', async () => /emotionmuse_gateway_events_dropped_total\{type="list",reason="slow-reader-closed"\} 1/.test(await (await fetch(`http://127.0.0.1:${small.port}/metrics`)).text()), 60_000);
      (c.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
      await c.waitFor('the close', (x) => x.closed !== undefined, 30_000);
      expect(c.closed?.code).toBe(4413);
      const got = c.messages.filter((m) => m.type === 'score').length;
      expect(got).toBeLessThan(scores);
      expect(got + (await dropped())).toBe(scores);
      // The lists it got came in order, none skipped before the close.
      const lists = c.messages.filter((m) => m.type === 'list').map((m) => (m as { listId: string }).listId);
      expect(lists).toEqual(Array.from({ length: lists.length }, (_, i) => `kim-${i + 1}`));
    } finally {
      await small.close();
    }
  }, 180_000);

  it('a fan-out consumer that dies makes /readyz fail, is started again, and events flow again (before, its crash was only logged)', async () => {
    const fragile = new Gateway({
      kafka, registry, topology, redisUrl: inject('redisUrl'), redisOptions: appRedisOptions(), redisPrefix: prefix, verifier: await TokenVerifier.create({ secret: SECRET }), catalogue, port: 0, host: '127.0.0.1',
      limits: { framesPerSecond: RATE, maxMessageBytes: 64 * 1024, maxInFlight: 64, helloTimeoutMs: 800 }, maxConnections: 10, maxInFlight: 4096, fanoutRetries: 0,
      logger: createLogger('error', { component: 'gateway-test' }),
    });
    await fragile.start();
    try {
      await fragile.whenReady();
      const readyz = async () => (await fetch(`http://127.0.0.1:${fragile.port}/readyz`)).status;
      expect(await readyz()).toBe(200);
      // A handler that fails once: the consumer dies (retries 0) as it would on an error it cannot get past.
      let failed = false;
      const stopListening = (fragile as unknown as { fanout: { listen(u: string, l: () => void): () => void } }).fanout.listen('zed', () => {
        if (!failed) {
          failed = true;
          throw new Error('a handler failed');
        }
      });
      const change = (label: EmotionChange['label']): EmotionChange => ({ userId: 'zed', sessionId: 's', previousLabel: null, label, probabilities: [0, 0, 0, 1, 0, 0, 0], valence: 0.8, arousal: 0.5, windowIndex: 4, windowEndSeq: 50, captureTimeMs: Date.now(), emittedTimeMs: Date.now(), scheme: 'paper', confidence: null });
      await produce(kafka, topicName(topology, 'emotion-changes'), [{ key: 'zed', value: registry.encode('emotion-change', change('happy')) }]);
      await waitFor('/readyz failing after the crash', async () => (await readyz()) === 503, 30_000);
      expect(await (await fetch(`http://127.0.0.1:${fragile.port}/readyz`)).text()).toMatch(/crashed/);
      await waitFor('/readyz back after the restart', async () => (await readyz()) === 200, 60_000);
      stopListening();
      const c = await StreamClient.connect(`http://127.0.0.1:${fragile.port}`, { token: await token('zed'), tokenInHeader: true });
      await produce(kafka, topicName(topology, 'emotion-changes'), [{ key: 'zed', value: registry.encode('emotion-change', change('sad')) }]);
      await c.waitFor('the change after the restart', (x) => x.messages.some((m) => m.type === 'change' && (m as { label: string }).label === 'sad'), 20_000);
      await c.close();
      expect(await (await fetch(`http://127.0.0.1:${fragile.port}/metrics`)).text()).toMatch(/emotionmuse_gateway_fanout_crashes_total 1/);
    } finally {
      await fragile.close();
    }
  }, 120_000);

  it('keeps sessions of users whose ids and session ids share a joined form apart (user a, session b:c moved user a:b\'s session c before)', async () => {
    const conn = testRedis();
    await conn.ping();
    const sessions = new SessionStore(conn, { prefix, logger: createLogger('error') });
    try {
      sessions.advance('a', 'b:c', 100);
      await sessions.flush();
      const other = testRedis();
      const fresh = new SessionStore(other, { prefix, logger: createLogger('error') });
      expect(await fresh.lastSeq('a', 'b:c')).toBe(100);
      expect(await fresh.lastSeq('a:b', 'c')).toBe(0);
      await fresh.close();
      other.disconnect();
    } finally {
      await sessions.close();
      conn.disconnect();
    }
  });
});
