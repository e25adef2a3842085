import { Cluster, Redis, ReplyError, type RedisOptions } from 'ioredis';
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

/** A connection to one Redis server or to a Redis Cluster. */
export type RedisClient = Redis | Cluster;

const CLUSTER_URL = /^(rediss?)-cluster:\/\/(.+)$/;

/**
 * The seed nodes of a Redis Cluster URL, `redis-cluster://host:port,host:port` (or
 * `rediss-cluster://` for TLS), or undefined for a plain `redis://` or `rediss://` URL.
 */
export function clusterNodes(url: string): { tls: boolean; nodes: Array<{ host: string; port: number }> } | undefined {
  const m = CLUSTER_URL.exec(url);
  if (!m) return undefined;
  const nodes = m[2]!.split(',').map((hostPort) => {
    const at = hostPort.lastIndexOf(':');
    const host = at > 0 ? hostPort.slice(0, at) : hostPort;
    const port = at > 0 ? Number(hostPort.slice(at + 1)) : 6379;
    if (!host || !Number.isInteger(port) || port <= 0 || port > 65_535) throw new EmotionMuseError('CONFIG_INVALID', `a Redis Cluster URL lists host:port seed nodes separated by commas; "${hostPort}" is not one (${url.split('@').pop()})`);
    return { host, port };
  });
  return { tls: m[1] === 'rediss', nodes };
}

/**
 * Opens (lazily, with REDIS_OPTIONS' behaviour) a Redis client for `url`: one server for
 * `redis://` and `rediss://`, a Redis Cluster for `redis-cluster://` and `rediss-cluster://`.
 * On a cluster every command of one user goes to one node, as all of a user's keys share a hash
 * slot (state/keys.ts); the scripts and transactions that touch several of them work unchanged.
 */
export function openRedis(url: string, options: RedisOptions = {}): RedisClient {
  const cluster = clusterNodes(url);
  const merged = { ...REDIS_OPTIONS, ...options };
  if (!cluster) return new Redis(url, merged);
  const { lazyConnect, enableOfflineQueue, retryStrategy, ...node } = merged;
  return new Cluster(cluster.nodes, {
    lazyConnect,
    enableOfflineQueue,
    clusterRetryStrategy: retryStrategy,
    // a slot that moves (a resharding, a failover) is followed; a node that is away fails the command fast
    maxRedirections: 16,
    redisOptions: { ...node, ...(cluster.tls && !node.tls ? { tls: {} } : {}) },
  });
}

/** The servers that hold keys: a cluster's masters, or the one server. */
export function keyHolders(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis];
}
