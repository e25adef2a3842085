import { describe, expect, it } from 'vitest';
import { UserStore } from '../../processors/recommender/store.ts';
import { EmotionMuseError } from '../../schemas/errors.ts';

describe('UserStore with Redis away', () => {
  it('turns every Redis error, of every operation the recommender makes, into a retriable SERVICE_UNAVAILABLE (the batch is retried, no valid record is dead-lettered)', async () => {
    // Nothing listens on port 1.
    const store = new UserStore('redis://127.0.0.1:1', { prefix: 't:', historySize: 5, ttlSeconds: 60 });
    await store.connect();
    const emotion = { label: 'happy', probabilities: [0, 0, 0, 1, 0, 0, 0], valence: 0.8, arousal: 0.6, sinceMs: 0 };
    const list = { listId: 'l', userId: 'u', trigger: 'LISTEN' as const, causeId: 'c', emotion: null, items: [], modelVersion: 'm', createdTimeMs: 0 };
    const operations: Array<[string, () => Promise<unknown>]> = [
      ['applyListen', () => store.applyListen('u', 'listens:0', '5', 't1')],
      ['applyEmotion', () => store.applyEmotion('u', 'changes:0', '5', emotion, 's:10')],
      ['read', () => store.read('u')],
      ['saveList', () => store.saveList('u', list, null)],
      ['lastList', () => store.lastList('u')],
      ['rememberOutput', () => store.rememberOutput('listens:0', '5', null, 60)],
      ['rememberedOutput', () => store.rememberedOutput('listens:0', '5')],
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
