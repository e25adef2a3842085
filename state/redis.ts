import { ReplyError } from 'ioredis';
import { EmotionMuseError, errorMessage } from '../schemas/errors.ts';

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

/**
 * Redis error replies that a later try can succeed on: the server loading, busy with a script,
 * failing over (a replica, a master down, a cluster reconfiguring, a slot moving), or full of
 * clients. Every other error reply (WRONGTYPE, a script error, NOPERM, OOM, ...) says the same
 * thing every time it is asked.
 */
const TRANSIENT_REPLY = /^(LOADING|BUSY|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|MOVED|ASK|NOREPLICAS|ERR max number of clients)/;

/**
 * The error a failed Redis command becomes. The connection failing, or a transient reply, is
 * SERVICE_UNAVAILABLE (the batch waits for Redis); any other reply is SERVICE_REFUSED, which
 * stops the processor after a few attempts and says why (runtime/failure-policy.ts), instead of
 * retrying for ever a command that will fail the same way.
 */
export function redisError(op: string, err: unknown): EmotionMuseError {
  const reply = err instanceof ReplyError || (err as { name?: string } | null)?.name === 'ReplyError';
  const refused = reply && !TRANSIENT_REPLY.test(errorMessage(err));
  const hint = refused && /^WRONGTYPE/.test(errorMessage(err)) ? ' (a key holds another type than this layout writes: another program or layout shares the key prefix; see state/keys.ts)' : '';
  return new EmotionMuseError(refused ? 'SERVICE_REFUSED' : 'SERVICE_UNAVAILABLE', `redis ${op}: ${errorMessage(err)}${hint}`, { retriable: true, cause: err });
}
