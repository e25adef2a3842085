import { Redis, ReplyError, type RedisOptions } from 'ioredis';
import { EmotionMuseError, errorMessage } from '../../schemas/errors.ts';
import type { Recommendation } from '../../schemas/generated/types.ts';

/**
 * Per-user state in Redis. Key layout (prefix `em:` by default):
 *
 * - `<prefix>u:<user>` (hash): `emotion` (JSON: label, probabilities, valence, arousal, sinceMs),
 *   `change` (the session and closing sequence number of the emotion change applied last, so that
 *   a change repeated by an at-least-once smoother after a restart is recognised),
 *   `listAtMs` (time of the listen that last refreshed the list), and one `at:<topic>:<partition>`
 *   field per source partition: the last input offset applied to this user, which makes every
 *   update idempotent (a redelivered record is not applied twice).
 * - `<prefix>u:<user>:history` (list): the last N listened track ids, most recent first.
 * - `<prefix>u:<user>:list` (string): the last published recommendation, as JSON.
 * - `<prefix>o:<topic>:<partition>:<offset>` (string, short-lived): what the record at that
 *   source offset produced (a list as JSON, or `none`), so that a redelivered record gives the
 *   same output again.
 *
 * Every key of a user expires `ttlSeconds` after that user's last update.
 */
export interface UserState {
  readonly history: string[];
  readonly emotion: EmotionState | null;
  readonly listAtMs: number | null;
}

export interface EmotionState {
  readonly label: string;
  readonly probabilities: number[];
  readonly valence: number;
  readonly arousal: number;
  readonly sinceMs: number;
}

// KEYS: hash, history. ARGV: field, offset, trackId, N, ttl. Returns 1 when applied, 0 when already.
const APPLY_LISTEN = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[2]) then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1`;

// KEYS: hash, history. ARGV: field, offset, emotion JSON, ttl, change id. Returns 1 when applied,
// 0 when this offset was, 2 when the same change came before from another offset.
const APPLY_EMOTION = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[1], 'change') == ARGV[5] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 2
end
redis.call('HSET', KEYS[1], 'emotion', ARGV[3], ARGV[1], ARGV[2], 'change', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
return 1`;

type Scripted = Redis & {
  applyListen(hash: string, history: string, field: string, offset: string, track: string, n: number, ttl: number): Promise<number>;
  applyEmotion(hash: string, history: string, field: string, offset: string, emotion: string, ttl: number, change: string): Promise<number>;
};

/**
 * How the pipeline's Redis connections behave: connect on demand, fail a command fast while Redis
 * is away (the batch is retried from Kafka instead of waiting in a queue), reconnect with backoff.
 */
export const REDIS_OPTIONS = {
  lazyConnect: true,
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  retryStrategy: (times: number) => Math.min(5000, 100 * 2 ** Math.min(times, 6)),
} as const;

/** `s` with Redis' glob characters escaped, for a SCAN MATCH pattern. */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** A stored emotion, or null when there is none or it is not a usable one (never throws). */
function parseEmotion(raw: string | undefined): EmotionState | null {
  if (!raw) return null;
  try {
    const e = JSON.parse(raw) as EmotionState;
    return typeof e?.label === 'string' && Number.isFinite(e.valence) && Number.isFinite(e.arousal) && Array.isArray(e.probabilities) ? e : null;
  } catch {
    return null;
  }
}

export class UserStore {
  /** Private: every command goes through `timed`, which makes a Redis error retriable. */
  private readonly redis: Scripted;
  private readonly timed: <T>(op: string, fn: () => Promise<T>) => Promise<T>;

  readonly prefix: string;

  constructor(
    url: string,
    private readonly options: { prefix: string; historySize: number; ttlSeconds: number; onOperation?: (op: string, ms: number) => void },
    /** Authentication and TLS (runtime/security.ts `redisSecurity`). */
    connection: RedisOptions = {},
  ) {
    this.prefix = options.prefix;
    const redis = new Redis(url, { ...REDIS_OPTIONS, ...connection });
    redis.defineCommand('applyListen', { numberOfKeys: 2, lua: APPLY_LISTEN });
    redis.defineCommand('applyEmotion', { numberOfKeys: 2, lua: APPLY_EMOTION });
    // An error reaches the caller of the command that met it (retriable); the connection itself only reconnects.
    redis.on('error', () => undefined);
    this.redis = redis as Scripted;
    this.timed = async (op, fn) => {
      const t0 = performance.now();
      try {
        return await fn();
      } catch (err) {
        // Every Redis error is retriable: a valid record never goes to the dead letters for it. A
        // refusal (no permission, a wrong password) is told apart: it stops the processor after a
        // few attempts instead of waiting for ever (runtime/failure-policy.ts).
        const refused = err instanceof ReplyError && /^(NOPERM|NOAUTH|WRONGPASS)/.test((err as Error).message);
        throw new EmotionMuseError(refused ? 'SERVICE_REFUSED' : 'SERVICE_UNAVAILABLE', `redis ${op}: ${errorMessage(err)}`, { retriable: true, cause: err });
      } finally {
        this.options.onOperation?.(op, performance.now() - t0);
      }
    };
  }

  async connect(): Promise<void> {
    await this.redis.connect().catch(() => undefined);
  }

  ready(): boolean {
    return this.redis.status === 'ready';
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }

  private keys(user: string) {
    const base = `${this.options.prefix}u:${user}`;
    return { hash: base, history: `${base}:history`, list: `${base}:list` };
  }

  /** Appends a listened track unless this source offset was already applied. */
  applyListen(user: string, source: string, offset: string, trackId: string): Promise<boolean> {
    const k = this.keys(user);
    return this.timed('apply-listen', async () => (await this.redis.applyListen(k.hash, k.history, `at:${source}`, offset, trackId, this.options.historySize, this.options.ttlSeconds)) === 1);
  }

  /**
   * Sets the user's emotion unless this source offset was already applied (`already`), or the
   * same change (`changeId`: its session and closing sequence number) was applied from another
   * offset (`repeat`).
   */
  applyEmotion(user: string, source: string, offset: string, emotion: EmotionState, changeId: string): Promise<'applied' | 'already' | 'repeat'> {
    const k = this.keys(user);
    return this.timed('apply-emotion', async () => {
      const r = await this.redis.applyEmotion(k.hash, k.history, `at:${source}`, offset, JSON.stringify(emotion), this.options.ttlSeconds, changeId);
      return r === 1 ? 'applied' : r === 2 ? 'repeat' : 'already';
    });
  }

  read(user: string): Promise<UserState> {
    const k = this.keys(user);
    return this.timed('read', async () => {
      const [[, hash], [, history]] = (await this.redis.multi().hgetall(k.hash).lrange(k.history, 0, -1).exec()) as [[unknown, Record<string, string>], [unknown, string[]]];
      return {
        history,
        emotion: parseEmotion(hash.emotion),
        listAtMs: hash.listAtMs ? Number(hash.listAtMs) : null,
      };
    });
  }

  saveList(user: string, list: Recommendation, listAtMs: number | null): Promise<void> {
    const k = this.keys(user);
    return this.timed('save-list', async () => {
      const tx = this.redis.multi().set(k.list, JSON.stringify(list), 'EX', this.options.ttlSeconds);
      if (listAtMs !== null) tx.hset(k.hash, 'listAtMs', String(listAtMs));
      await tx.exec();
    });
  }

  /** Remembers what the record at a source offset produced (a list, or nothing), for `ttlSeconds`. */
  rememberOutput(source: string, offset: string, list: Recommendation | null, ttlSeconds: number): Promise<void> {
    return this.timed('set-output', async () => {
      await this.redis.set(`${this.options.prefix}o:${source}:${offset}`, list ? JSON.stringify(list) : 'none', 'EX', ttlSeconds);
    });
  }

  /** What the record at a source offset produced before: a list, `none`, or undefined when unknown. */
  rememberedOutput(source: string, offset: string): Promise<Recommendation | 'none' | undefined> {
    return this.timed('get-output', async () => {
      const raw = await this.redis.get(`${this.options.prefix}o:${source}:${offset}`);
      return raw === null ? undefined : raw === 'none' ? 'none' : (JSON.parse(raw) as Recommendation);
    });
  }

  /**
   * Deletes everything this store holds about `user`: state, history, last list, and the
   * remembered outputs of its records (found by scanning, as their keys name offsets, not users),
   * plus the keys matching `extraPatterns` (the gateway's sessions). Returns how many keys went.
   */
  forget(user: string, extraPatterns: readonly string[] = []): Promise<number> {
    return this.timed('forget', async () => {
      const k = this.keys(user);
      let deleted = await this.redis.unlink(k.hash, k.history, k.list);
      const scan = async (match: string, keep: (key: string, value: string | null) => boolean, withValues: boolean) => {
        let cursor = '0';
        do {
          const [next, keys] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
          cursor = next;
          if (keys.length === 0) continue;
          const values = withValues ? await this.redis.mget(...keys) : keys.map(() => null);
          const gone = keys.filter((key, i) => keep(key, values[i] ?? null));
          if (gone.length > 0) deleted += await this.redis.unlink(...gone);
        } while (cursor !== '0');
      };
      const ofUser = (value: string | null) => {
        try {
          return value !== null && value !== 'none' && (JSON.parse(value) as { userId?: unknown }).userId === user;
        } catch {
          return false;
        }
      };
      await scan(`${globEscape(this.options.prefix)}o:*`, (_key, value) => ofUser(value), true);
      for (const pattern of extraPatterns) await scan(pattern, () => true, false);
      return deleted;
    });
  }

  async lastList(user: string): Promise<Recommendation | null> {
    const k = this.keys(user);
    const raw = await this.timed('get-list', () => this.redis.get(k.list));
    if (!raw) return null;
    try {
      return JSON.parse(raw) as Recommendation;
    } catch {
      throw new EmotionMuseError('INVALID_RECORD', `the stored list of ${user.slice(0, 64)} is not JSON`);
    }
  }
}
