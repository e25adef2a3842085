import { describe, expect, it } from 'vitest';
import { ReplyError } from 'ioredis';
import { redisError } from '../../state/redis.ts';
import { UserStore } from '../../state/user-store.ts';
import { EmotionMuseError } from '../../schemas/errors.ts';

describe('UserStore with Redis away', () => {
  it('turns every Redis error, of every operation the recommender makes, into a retriable SERVICE_UNAVAILABLE (the batch is retried, no valid record is dead-lettered)', async () => {
    // Nothing listens on port 1.
    const store = new UserStore('redis://127.0.0.1:1', { prefix: 't:', historySize: 5, ttlSeconds: 60 });
    await store.connect();
    const emotion = { label: 'happy', probabilities: [0, 0, 0, 1, 0, 0, 0], valence: 0.8, arousal: 0.6, sinceMs: 0 };
    const list = { listId: 'l', userId: 'u', trigger: 'LISTEN' as const, causeId: 'c', emotion: null, items: [], modelVersion: 'm', createdTimeMs: 0 };
    const operations: Array<[string, () => Promise<unknown>]> = [
      ['applyListen', () => store.applyListen('u', 'listens:0', '5', 't1', 0, 30_000)],
      ['applyEmotion', () => store.applyEmotion('u', 'changes:0', '5', emotion, 's:10')],
      ['read', () => store.read('u')],
      ['saveList', () => store.saveList('u', 'listens:0', '5', list)],
      ['lastList', () => store.lastList('u')],
      ['rememberedOutput', () => store.rememberedOutput('u', 'listens:0', '5')],
    ];
    for (const [name, op] of operations) {
      const err = await op().then(() => undefined, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(EmotionMuseError);
      expect(err, name).toMatchObject({ code: 'SERVICE_UNAVAILABLE', retriable: true });
    }
    expect(store.ready()).toBe(false);
    await store.close();
  });
});

describe('Redis errors', () => {
  it('a reply that says the same every time (WRONGTYPE, NOPERM, a script error) is SERVICE_REFUSED; the connection or a failover is SERVICE_UNAVAILABLE', () => {
    const reply = (message: string) => new ReplyError(message);
    expect(redisError('read', reply('WRONGTYPE Operation against a key holding the wrong kind of value'))).toMatchObject({ code: 'SERVICE_REFUSED', message: expect.stringMatching(/WRONGTYPE.*another type/) });
    expect(redisError('read', reply('NOPERM this user has no permissions'))).toMatchObject({ code: 'SERVICE_REFUSED' });
    expect(redisError('read', reply('ERR Error running script'))).toMatchObject({ code: 'SERVICE_REFUSED' });
    for (const m of ['LOADING Redis is loading', 'READONLY You can\'t write against a read only replica', 'CLUSTERDOWN The cluster is down', 'TRYAGAIN Multiple keys request during rehashing', 'MASTERDOWN Link with MASTER is down'])
      expect(redisError('read', reply(m)), m).toMatchObject({ code: 'SERVICE_UNAVAILABLE', retriable: true });
    expect(redisError('read', new Error('Connection is closed.'))).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
  });
});
