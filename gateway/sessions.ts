import { Cluster } from 'ioredis';
import type { RedisClient } from '../state/redis.ts';
import type { Logger } from '../runtime/log.ts';
import { checkPrefix, userKeys } from '../state/keys.ts';

// KEYS: the session key. ARGV: seq, ttl. Keeps the larger sequence number.
const ADVANCE = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) else redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1`;

type Scripted = RedisClient & { advanceSeq(key: string, seq: number, ttl: number): Promise<number> };

/**
 * The last sequence number the gateway accepted per user and session, in Redis (key
 * `<prefix>{u:<user>}:gw:s:<session>`, ids escaped: state/keys.ts; expiring a day after its last frame), so that a client that
 * reconnects, to this gateway or another, continues its sequence. Writes go out twice a second
 * (one pipeline for every session that moved), so another instance may be up to half a second
 * behind and the client then resends a few frames the pipeline already has (the smoother drops
 * repeated sequence numbers). While Redis is away this instance's memory answers.
 */
export class SessionStore {
  private readonly memory = new Map<string, number>();
  private readonly redis: Scripted;
  private readonly dirty = new Set<string>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    redis: RedisClient,
    private readonly o: { prefix: string; ttlSeconds?: number; logger: Logger },
  ) {
    checkPrefix(o.prefix);
    redis.defineCommand('advanceSeq', { numberOfKeys: 1, lua: ADVANCE });
    this.redis = redis as Scripted;
    this.timer = setInterval(() => void this.flush(), 500);
    this.timer.unref();
  }

  /** The user's session key in the one key scheme (state/keys.ts): ids escaped, in the user's hash slot. */
  private key(user: string, session: string): string {
    return userKeys(this.o.prefix, user).session(session);
  }

  async lastSeq(user: string, session: string): Promise<number> {
    const key = this.key(user, session);
    try {
      const stored = Number((await this.redis.get(key)) ?? 0);
      return Math.max(stored, this.memory.get(key) ?? 0);
    } catch (err) {
      this.o.logger.warn('redis unavailable; session sequence from this instance only', { error: String(err) });
      return this.memory.get(key) ?? 0;
    }
  }

  advance(user: string, session: string, seq: number): void {
    const key = this.key(user, session);
    if (seq <= (this.memory.get(key) ?? 0)) return;
    this.memory.delete(key);
    this.memory.set(key, seq);
    if (this.memory.size > 100_000) this.memory.delete(this.memory.keys().next().value!);
    this.dirty.add(key);
  }

  /** Writes the sessions that moved since the last flush. */
  async flush(): Promise<void> {
    if (this.dirty.size === 0 || this.redis.status !== 'ready') return;
    const keys = [...this.dirty];
    this.dirty.clear();
    const ttl = this.o.ttlSeconds ?? 86_400;
    if (this.redis instanceof Cluster) {
      // a cluster pipeline must stay on one node; the users' keys are on many
      const failed = await Promise.all(keys.map((key) => this.redis.advanceSeq(key, this.memory.get(key) ?? 0, ttl).then(() => undefined, () => key)));
      for (const key of failed) if (key) this.dirty.add(key);
      return;
    }
    const tx = this.redis.pipeline();
    for (const key of keys) (tx as unknown as Scripted).advanceSeq(key, this.memory.get(key) ?? 0, ttl);
    await tx.exec().catch(() => keys.forEach((k) => this.dirty.add(k)));
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
