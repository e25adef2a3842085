import { randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { mintDevelopmentToken, TokenVerifier } from '../../auth/tokens.ts';
import { StreamClient } from '../../gateway/client.ts';
import { ownerOf, userPartition } from '../../gateway/routing.ts';
import { Gateway } from '../../gateway/server.ts';
import { recommenderOptions } from '../../processors/index.ts';
import { loadCatalogue } from '../../processors/recommender/catalogue.ts';
import { createLogger } from '../../runtime/log.ts';
import type { EmotionChange, EmotionScore, Recommendation } from '../../schemas/generated/types.ts';
import { topicName } from '../../topology/topology.ts';
import { registry } from '../support/frames.ts';
import { appRedisOptions, collect, createTopology, freePort, produce, randomPrefix, useKafka, waitFor } from '../support/kafka.ts';

// Two gateway instances on loopback that split the users by partition (gateway/routing.ts):
// each reads only its partitions' records, a client that connects to the wrong one is sent to the
// other, and score events go only to the sockets that ask for them.
const PARTITIONS = 4;
const catalogue = loadCatalogue(recommenderOptions.modelDir.default);

const score = (userId: string, seq: number): EmotionScore => ({ userId, sessionId: 's', seq, captureTimeMs: Date.now(), faceFound: true, probabilities: [0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1], faceBox: null, modelVersion: 'm', scoredAt: 'EDGE', timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 }, processedTimeMs: Date.now() });
const change = (userId: string): EmotionChange => ({ userId, sessionId: 's', previousLabel: null, label: 'happy', probabilities: [0.02, 0.02, 0.02, 0.88, 0.02, 0.02, 0.02], valence: 0.8, arousal: 0.6, windowIndex: 0, windowEndSeq: 10, captureTimeMs: Date.now(), emittedTimeMs: Date.now(), scheme: 'filter', confidence: 0.99 });
const list = (userId: string): Recommendation => ({ listId: `l-${userId}`, userId, trigger: 'EMOTION_CHANGE', causeId: 'test', emotion: null, items: [{ trackId: catalogue.ids[0]!, rank: 1, finalScore: 1, preferenceScore: 1, emotionScore: 1 }], modelVersion: 'test', createdTimeMs: Date.now() });

describe('gateway instances that split the users by partition', () => {
  const fx = useKafka();

  it('reads only its own partitions on each instance, sends a client of the other\'s user there, and sends scores only to sockets that ask', async () => {
    const prefix = randomPrefix('routing');
    const topology = await createTopology(fx.admin, prefix, PARTITIONS);
    const secret = randomBytes(32).toString('hex');
    const ports = [await freePort(), await freePort()];
    const peers = ports.map((p) => `http://127.0.0.1:${p}`);
    const verifier = await TokenVerifier.create({ secret });
    const gateways = [0, 1].map((instance) => new Gateway({
      kafka: fx.kafka, registry, topology, redisUrl: inject('redisUrl'), redisOptions: appRedisOptions(), redisPrefix: `${prefix}r:`,
      verifier, catalogue, port: ports[instance]!, host: '127.0.0.1',
      limits: { framesPerSecond: 15, maxMessageBytes: 64 * 1024, maxInFlight: 64, helloTimeoutMs: 2000 },
      maxConnections: 100, maxInFlight: 1024, logger: createLogger('warn', { component: `gateway-${instance}` }),
      routing: { instances: 2, instance, peers },
    }));
    const users = Array.from({ length: 16 }, (_, i) => `rt-${i}`);
    const routing = { instances: 2, instance: 0, peers, partitions: PARTITIONS };
    const clients: StreamClient[] = [];
    const reader = await collect(fx.kafka, [topicName(topology, 'emotion-changes')]);
    try {
      for (const g of gateways) await g.start();
      await Promise.all(gateways.map((g) => g.whenReady()));
      // every client connects to instance 0; the users of instance 1 are sent there
      for (const [i, user] of users.entries()) {
        const c = await StreamClient.connect(peers[0]!, { token: await mintDevelopmentToken({ secret }, user, 600), sessionId: 'r', tokenInHeader: i % 4 < 2, scores: i % 2 === 0 });
        clients.push(c);
        expect(c.welcome.userId).toBe(user);
        const owner = ownerOf(routing, user);
        expect(gateways[owner]!.fanout.has(user), `${user} served by instance ${owner}`).toBe(true);
        expect(gateways[1 - owner]!.fanout.has(user)).toBe(false);
      }
      expect(new Set(users.map((u) => ownerOf(routing, u))).size).toBe(2);

      for (const topic of ['emotion-scores', 'emotion-changes', 'recommendations'] as const) {
        const kind = topic === 'emotion-scores' ? 'emotion-score' : topic === 'emotion-changes' ? 'emotion-change' : 'recommendation';
        const value = (u: string) => (topic === 'emotion-scores' ? registry.encode(kind, score(u, 1) as never) : topic === 'emotion-changes' ? registry.encode(kind, change(u) as never) : registry.encode(kind, list(u) as never));
        await produce(fx.kafka, topicName(topology, topic), users.map((u) => ({ key: u, value: value(u) })));
      }
      for (const [i, c] of clients.entries()) {
        await c.waitFor('its change and its list', (x) => x.messages.some((m) => m.type === 'change') && x.messages.some((m) => m.type === 'list'), 20_000);
        if (i % 2 === 0) await c.waitFor('its score (asked for)', (x) => x.messages.some((m) => m.type === 'score'), 20_000);
      }
      // a socket that did not ask has had no score, though its change and list (written after) came
      for (const [i, c] of clients.entries()) if (i % 2 === 1) expect(c.messages.filter((m) => m.type === 'score'), users[i]).toEqual([]);

      // the writers' partitioner is the one routing computes
      await waitFor('the changes read back', () => reader.records.length >= users.length, 20_000);
      for (const r of reader.records) expect(r.partition, r.key?.toString()).toBe(userPartition(r.key!.toString(), PARTITIONS));
      // each instance read only its partitions, and together all 48 records, none twice
      await waitFor('every record read by one instance', () => gateways.reduce((n, g) => n + [...g.fanout.recordsRead.values()].reduce((a, b) => a + b, 0), 0) >= users.length * 3, 20_000);
      const read = gateways.map((g) => Object.fromEntries(g.fanout.recordsRead));
      console.log(`[routing] records read by partition: instance 0 ${JSON.stringify(read[0])}, instance 1 ${JSON.stringify(read[1])}`);
      for (const p of Object.keys(read[0]!)) expect(Number(p) % 2).toBe(0);
      for (const p of Object.keys(read[1]!)) expect(Number(p) % 2).toBe(1);
      const total = read.flatMap((r) => Object.values(r)).reduce((a, b) => a + b, 0);
      expect(total).toBe(users.length * 3);
    } finally {
      for (const c of clients) c.ws.close();
      await reader.stop();
      for (const g of gateways) await g.close();
    }
  });
});
