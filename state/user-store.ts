import type { RedisOptions } from 'ioredis';
import { EmotionMuseError } from '../schemas/errors.ts';
import type { Recommendation } from '../schemas/generated/types.ts';
import { checkPrefix, userKeys } from './keys.ts';
import { keyHolders, openRedis, redisError, type RedisClient } from './redis.ts';

/**
 * Per-user state in Redis, in the key scheme of state/keys.ts (every key of a user in one hash
 * slot, `<prefix>{u:<escaped user>}:...`):
 *
 * - `state` (hash): `emotion` (JSON: label, probabilities, valence, arousal, sinceMs), `change`
 *   (the session and closing sequence number of the emotion change applied last, so that a change
 *   repeated by an at-least-once smoother after a restart is recognised), `listAtMs` (time of the
 *   listen that last refreshed the list), and one `at:<topic>:<partition>` field per source
 *   partition: the last input offset applied to this user, which makes every update idempotent
 *   (a redelivered record is not applied twice).
 * - `history` (list): the last N listened track ids, most recent first.
 * - `list` (string): the last published recommendation, as JSON.
 * - `o:<topic>:<partition>:<offset>` (string, short-lived): what the record at that source offset
 *   produced: a list as JSON, `none`, or `pending` (a list is due and not yet made). The script
 *   that applies a record writes `pending` or `none` in the same step, so a failure between the
 *   update and its list leaves `pending`, and the retry makes the list.
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

// KEYS: state, history, output. ARGV: field, offset, trackId, N, ttl, listen start (ms), refresh
// interval (ms), output ttl. Returns 0 when this offset was applied already; else applies the listen,
// decides whether it refreshes the list (no list made by a listen yet, or the last one at least the
// interval of listen time ago), writes `pending` or `none` as its output, and returns 2 or 1.
const APPLY_LISTEN = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[2]) then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local at = redis.call('HGET', KEYS[1], 'listAtMs')
local refresh = (not at) or (tonumber(ARGV[6]) - tonumber(at) >= tonumber(ARGV[7]))
if refresh then redis.call('HSET', KEYS[1], 'listAtMs', ARGV[6]) end
redis.call('SET', KEYS[3], refresh and 'pending' or 'none', 'EX', ARGV[8])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
if refresh then return 2 end
return 1`;

// KEYS: state, history, output. ARGV: field, offset, emotion JSON, ttl, change id, output ttl.
// Returns 1 when applied (output `pending`), 0 when this offset was, 2 when the same change came
// before from another offset (output `none`).
const APPLY_EMOTION = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[1], 'change') == ARGV[5] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('SET', KEYS[3], 'none', 'EX', ARGV[6])
  return 2
end
redis.call('HSET', KEYS[1], 'emotion', ARGV[3], ARGV[1], ARGV[2], 'change', ARGV[5])
redis.call('SET', KEYS[3], 'pending', 'EX', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
return 1`;

type Scripted = RedisClient & {
  applyListen(state: string, history: string, output: string, field: string, offset: string, track: string, n: number, ttl: number, startMs: number, intervalMs: number, outputTtl: number): Promise<number>;
  applyEmotion(state: string, history: string, output: string, field: string, offset: string, emotion: string, ttl: number, change: string, outputTtl: number): Promise<number>;
};

/** What a record at a source offset produced: a list, nothing, a list due and not yet made, or unknown (never seen, or expired). */
export type RememberedOutput = Recommendation | 'none' | 'pending' | undefined;

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

export interface UserStoreOptions {
  readonly prefix: string;
  readonly historySize: number;
  readonly ttlSeconds: number;
  /** How long a record's output is remembered, to answer a redelivery identically. @defaultValue 3600 */
  readonly outputTtlSeconds?: number;
  readonly onOperation?: (op: string, ms: number) => void;
}

export class UserStore {
  /** Private: every command goes through `timed`, which turns a Redis error into an EmotionMuseError. */
  private readonly redis: Scripted;
  private readonly timed: <T>(op: string, fn: () => Promise<T>) => Promise<T>;
  private readonly outputTtl: number;

  readonly prefix: string;

  constructor(
    url: string,
    private readonly options: UserStoreOptions,
    /** Authentication and TLS (runtime/security.ts `redisSecurity`). */
    connection: RedisOptions = {},
  ) {
    this.prefix = checkPrefix(options.prefix);
    this.outputTtl = options.outputTtlSeconds ?? 3600;
    const redis = openRedis(url, connection);
    redis.defineCommand('applyListen', { numberOfKeys: 3, lua: APPLY_LISTEN });
    redis.defineCommand('applyEmotion', { numberOfKeys: 3, lua: APPLY_EMOTION });
    // An error reaches the caller of the command that met it; the connection itself only reconnects.
    redis.on('error', () => undefined);
    this.redis = redis as Scripted;
    this.timed = async (op, fn) => {
      const t0 = performance.now();
      try {
        return await fn();
      } catch (err) {
        // Redis away: retriable, a valid record never goes to the dead letters for it. A refusal
        // (no permission, a key of the wrong type) stops the processor after a few attempts
        // instead of retrying for ever (state/redis.ts, runtime/failure-policy.ts).
        throw redisError(op, err);
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
    return userKeys(this.prefix, user);
  }

  /**
   * Appends a listened track unless this source offset was already applied (`already`), and says
   * whether it refreshes the user's list (`refresh`: none made by a listen yet, or the last one at
   * least `refreshIntervalMs` of listen time before `startTimeMs`) or not (`applied`). The decision
   * is remembered as the record's output (`pending` / `none`) in the same step.
   */
  applyListen(user: string, source: string, offset: string, trackId: string, startTimeMs: number, refreshIntervalMs: number): Promise<'already' | 'applied' | 'refresh'> {
    const k = this.keys(user);
    return this.timed('apply-listen', async () => {
      const r = await this.redis.applyListen(k.state, k.history, k.output(source, offset), `at:${source}`, offset, trackId, this.options.historySize, this.options.ttlSeconds, startTimeMs, refreshIntervalMs, this.outputTtl);
      return r === 2 ? 'refresh' : r === 1 ? 'applied' : 'already';
    });
  }

  /**
   * Sets the user's emotion unless this source offset was already applied (`already`), or the
   * same change (`changeId`: its session and closing sequence number) was applied from another
   * offset (`repeat`).
   */
  applyEmotion(user: string, source: string, offset: string, emotion: EmotionState, changeId: string): Promise<'applied' | 'already' | 'repeat'> {
    const k = this.keys(user);
    return this.timed('apply-emotion', async () => {
      const r = await this.redis.applyEmotion(k.state, k.history, k.output(source, offset), `at:${source}`, offset, JSON.stringify(emotion), this.options.ttlSeconds, changeId, this.outputTtl);
      return r === 1 ? 'applied' : r === 2 ? 'repeat' : 'already';
    });
  }

  read(user: string): Promise<UserState> {
    const k = this.keys(user);
    return this.timed('read', async () => {
      const [[, hash], [, history]] = (await this.redis.multi().hgetall(k.state).lrange(k.history, 0, -1).exec()) as [[unknown, Record<string, string>], [unknown, string[]]];
      return {
        history,
        emotion: parseEmotion(hash.emotion),
        listAtMs: hash.listAtMs ? Number(hash.listAtMs) : null,
      };
    });
  }

  /** Publishes-to-be: the user's last list, and the list as the output of the record that made it, in one transaction. */
  saveList(user: string, source: string, offset: string, list: Recommendation): Promise<void> {
    const k = this.keys(user);
    return this.timed('save-list', async () => {
      const json = JSON.stringify(list);
      await this.redis.multi().set(k.list, json, 'EX', this.options.ttlSeconds).set(k.output(source, offset), json, 'EX', this.outputTtl).exec();
    });
  }

  /** What the record at a source offset produced before (see {@link RememberedOutput}). */
  rememberedOutput(user: string, source: string, offset: string): Promise<RememberedOutput> {
    return this.timed('get-output', async () => {
      const raw = await this.redis.get(this.keys(user).output(source, offset));
      return raw === null ? undefined : raw === 'none' || raw === 'pending' ? raw : (JSON.parse(raw) as Recommendation);
    });
  }

  /**
   * Deletes every key this layout holds about `user` (state, history, last list, remembered
   * outputs, the gateway's sessions): one SCAN of the user's own pattern (on a cluster, on each
   * master; the keys are all on the one that holds the user's slot). Returns how many went.
   */
  forget(user: string): Promise<number> {
    return this.timed('forget', async () => {
      let deleted = 0;
      for (const server of keyHolders(this.redis)) {
        let cursor = '0';
        do {
          const [next, keys] = await server.scan(cursor, 'MATCH', this.keys(user).pattern, 'COUNT', 1000);
          cursor = next;
          if (keys.length > 0) deleted += await this.redis.unlink(...keys);
        } while (cursor !== '0');
      }
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
