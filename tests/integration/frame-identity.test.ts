import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FRAME_TOKEN_HEADER } from '../../auth/frame-token.ts';
import { mintDevelopmentToken } from '../../auth/tokens.ts';
import { main } from '../../cli/main.ts';
import { topicName } from '../../topology/topology.ts';
import { frame, registry } from '../support/frames.ts';
import { collect, createTopology, metricSum, metricsText, produce, randomPrefix, startProcessor, useKafka, waitFor } from '../support/kafka.ts';

/**
 * Identity travels with each frame: a Kafka-direct edge client could write any user's frames
 * before (the shared edge principal may write the topic, and nothing checked the key). Now the
 * classifier requires the user's bearer token in the em-token header.
 */
describe('frame identity (the em-token header, checked by the classifier)', () => {
  const fx = useKafka();

  it('scores a frame whose token is its key\'s user, and dead-letters one without a token, for another user, expired, or signed with another key, each with its code; dead-letters replay gives a replayed frame a token again', async () => {
    const prefix = randomPrefix('ident');
    const topology = await createTopology(fx.admin, prefix, 1);
    const secret = randomBytes(32).toString('hex');
    const token = (user: string, ttl = 600, s = secret, now = Date.now()) => mintDevelopmentToken({ secret: s }, user, ttl, now);
    // No-face markers: the identity check comes before the model, and these need no image.
    const marker = (user: string, seq: number) => registry.encode('frame', frame(user, seq, { encoding: 'NONE', width: 0, height: 0, data: Buffer.alloc(0), faceBox: null }));
    const hostile = 'a:{b}%c';
    const withToken = async (user: string, seq: number, t?: string) => ({ key: user, value: marker(user, seq), headers: t === undefined ? {} : { [FRAME_TOKEN_HEADER]: t } });
    await produce(fx.kafka, topicName(topology, 'frames'), [
      await withToken('ana', 1, await token('ana')),
      await withToken('ana', 2),
      await withToken('ana', 3, await token('bea')),
      await withToken('ana', 4, await token('ana', 60, secret, Date.now() - 3 * 3600_000)),
      await withToken('ana', 5, await token('ana', 600, randomBytes(32).toString('hex'))),
      await withToken(hostile, 6, await token(hostile)),
      await withToken('ana', 7, 'not-a-jwt'),
    ]);
    const reader = await collect(fx.kafka, [topicName(topology, 'emotion-scores'), topicName(topology, 'dead-letter-frames')]);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '1', EM_FRAME_AUTH: 'required', EM_JWT_SECRET: secret, EM_FRAME_TOKEN_GRACE_MS: '60000' };
    const p = await startProcessor('classifier', env);
    try {
      await waitFor('2 scores and 5 dead letters', () => reader.records.length >= 7, 90_000);
      const scores = reader.records.filter((r) => r.topic === topicName(topology, 'emotion-scores')).map((r) => registry.decode('emotion-score', r.value!));
      expect(scores.map((s) => [s.userId, s.seq])).toEqual([['ana', 1], [hostile, 6]]);
      const letters = reader.records.filter((r) => r.topic === topicName(topology, 'dead-letter-frames')).map((r) => registry.decode('dead-letter', r.value!));
      expect(letters.map((l) => [l.sourceOffset, l.errorCode])).toEqual([[1, 'TOKEN_MISSING'], [2, 'TOKEN_WRONG_USER'], [3, 'TOKEN_EXPIRED'], [4, 'TOKEN_INVALID'], [6, 'TOKEN_INVALID']]);
      for (const l of letters) expect(l.errorMessage).not.toMatch(/eyJ/); // no token in a dead letter's message
      const metrics = await metricsText(p.port);
      expect(metricSum(metrics, 'emotionmuse_dead_letters_total', 'code="TOKEN_MISSING"')).toBe(1);

      // The token-less frame, replayed by an operator who holds the token secret, gets its user's token and is scored.
      const saved = process.env.EM_JWT_SECRET;
      process.env.EM_JWT_SECRET = secret;
      try {
        expect(await main(['dead-letters', 'replay', '--code', 'TOKEN_MISSING', '--topic-prefix', prefix, '--partitions', '1'])).toBe(0);
      } finally {
        if (saved === undefined) delete process.env.EM_JWT_SECRET;
        else process.env.EM_JWT_SECRET = saved;
      }
      await waitFor('the replayed frame scored', () => reader.records.filter((r) => r.topic === topicName(topology, 'emotion-scores')).length >= 3, 60_000);
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      await reader.stop();
    }
  }, 240_000);
});
