import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RedisOptions } from 'ioredis';
import type { Kafka } from 'kafkajs';
import { WebSocketServer } from 'ws';
import { AuthError, type Identity, type TokenVerifier } from '../auth/tokens.ts';
import { errorMessage } from '../schemas/errors.ts';
import { basicAuthorized, refuseMetrics, type BasicAuth } from '../runtime/http.ts';
import type { Logger } from '../runtime/log.ts';
import { createGatewayMetrics, type GatewayMetrics } from '../runtime/metrics.ts';
import type { TrackCatalogue } from '../processors/recommender/catalogue.ts';
import { openRedis, type RedisClient } from '../state/redis.ts';
import { UserStore } from '../state/user-store.ts';
import type { Listen, Recommendation } from '../schemas/generated/types.ts';
import type { SchemaRegistry } from '../schemas/registry.ts';
import { topicName, topicSpec, type Topology } from '../topology/topology.ts';
import type { WebAssets } from './assets.ts';
import { StreamConnection, type StreamContext, type StreamLimits } from './connection.ts';
import { Fanout } from './fanout.ts';
import { checkRouting, ownedPartitions, ownerOf } from './routing.ts';
import { Ingest } from './ingest.ts';
import { InFlight, TokenBucket } from './limits.ts';
import { SessionStore } from './sessions.ts';

export interface GatewayOptions {
  readonly kafka: Kafka;
  readonly registry: SchemaRegistry;
  readonly topology: Topology;
  readonly redisUrl: string;
  /** Authentication and TLS of the Redis connections (runtime/security.ts `redisSecurity`). */
  readonly redisOptions?: RedisOptions;
  /** Basic auth that /metrics asks for; undefined: open. */
  readonly metricsAuth?: BasicAuth;
  /** The recommender's Redis key prefix (the gateway reads its users' lists and emotions). */
  readonly redisPrefix: string;
  readonly verifier: TokenVerifier;
  /** Track names for lists, and the tracks a listen may name. */
  readonly catalogue: TrackCatalogue;
  readonly port: number;
  readonly host?: string;
  readonly limits: StreamLimits;
  /** Open sockets at most; more are refused (503 on the upgrade). */
  readonly maxConnections: number;
  /** Frames of all sockets in flight to Kafka at most. */
  readonly maxInFlight: number;
  /** The web client's files, served at `/`. */
  readonly assets?: WebAssets;
  readonly logger: Logger;
  /** Tuning of the producer and the fan-out consumer (gateway/options.ts has the defaults). */
  readonly lingerMs?: number;
  readonly fanoutMinBytes?: number;
  readonly fanoutMaxWaitMs?: number;
  /** Tries of a failing fan-out fetch before its consumer is started again (gateway/fanout.ts). @defaultValue 5 */
  readonly fanoutRetries?: number;
  /**
   * Several instances that split the users by partition (gateway/routing.ts): this one reads only
   * its partitions and sends other users' clients to their instance. Undefined: one instance.
   */
  readonly routing?: { readonly instances: number; readonly instance: number; readonly peers: readonly string[] };
}

const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
const MAX_BODY_BYTES = 4096;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `emotionmuse gateway`: the way in for clients that do not speak Kafka. HTTP and WebSocket on
 * one port; every request carries a bearer token, and the user of every frame, subscription and
 * read is the token's subject. Runs no stage. Scale it by running more instances behind a load
 * balancer, or, with `routing`, instances that each read only the partitions of their own users
 * (gateway/README.md).
 */
export class Gateway {
  readonly metrics: GatewayMetrics;
  private server: http.Server | undefined;
  private readonly wss: WebSocketServer;
  private readonly ingest: Ingest;
  /** Public for tests and benchmarks: what it read, by partition. */
  readonly fanout: Fanout;
  private readonly redis: RedisClient;
  private readonly store: UserStore;
  private readonly sessions: SessionStore;
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly claims = new Map<string, () => void>();
  private readonly context: StreamContext;
  private listenProducer: ReturnType<Kafka['producer']>;
  private readonly sweep: NodeJS.Timeout;
  port = 0;

  constructor(private readonly o: GatewayOptions) {
    this.metrics = createGatewayMetrics();
    this.ingest = new Ingest({ kafka: o.kafka, registry: o.registry, topic: topicName(o.topology, 'frames'), lingerMs: o.lingerMs });
    const partitions = topicSpec(o.topology, 'recommendations').partitions;
    const routing = o.routing && o.routing.instances > 1 ? checkRouting({ ...o.routing, partitions }) : undefined;
    this.fanout = new Fanout({
      owned: routing ? ownedPartitions(routing) : undefined,
      kafka: o.kafka,
      registry: o.registry,
      groupPrefix: o.topology.prefix,
      topics: { 'emotion-scores': topicName(o.topology, 'emotion-scores'), 'emotion-changes': topicName(o.topology, 'emotion-changes'), recommendations: topicName(o.topology, 'recommendations') },
      names: (id) => this.names(id),
      logger: o.logger,
      minBytes: o.fanoutMinBytes,
      maxWaitMs: o.fanoutMaxWaitMs,
      retries: o.fanoutRetries,
      onEvent: (type) => this.metrics.eventsOut.inc({ type }),
      onCrash: () => this.metrics.fanoutCrashes.inc(),
    });
    this.store = new UserStore(o.redisUrl, { prefix: o.redisPrefix, historySize: 50, ttlSeconds: 86_400 }, o.redisOptions);
    // Its own connection for the sessions (UserStore keeps its connection to itself).
    this.redis = openRedis(o.redisUrl, o.redisOptions);
    this.sessions = new SessionStore(this.redis, { prefix: o.redisPrefix, logger: o.logger });
    this.listenProducer = o.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    this.wss = new WebSocketServer({ noServer: true, maxPayload: Math.max(1024 * 1024, o.limits.maxMessageBytes * 4), perMessageDeflate: false });
    const processInFlight = new InFlight(o.maxInFlight);
    // A user's bucket outlives their sockets (a reconnect gets no fresh burst) until it is full
    // again and they have no socket here.
    this.sweep = setInterval(() => {
      for (const [user, bucket] of this.buckets) if (bucket.full && !this.fanout.has(user)) this.buckets.delete(user);
    }, 60_000);
    this.sweep.unref();
    this.context = {
      verifier: o.verifier,
      ingest: this.ingest,
      fanout: this.fanout,
      sessions: this.sessions,
      limits: o.limits,
      processInFlight,
      metrics: this.metrics,
      logger: o.logger,
      bucket: (userId) => {
        let b = this.buckets.get(userId);
        if (!b) this.buckets.set(userId, (b = new TokenBucket(o.limits.framesPerSecond)));
        return b;
      },
      redirectFor: (userId) => {
        if (!routing) return undefined;
        const owner = ownerOf(routing, userId);
        return owner === routing.instance ? undefined : { url: routing.peers[owner]!, instance: owner };
      },
      claim: (key, takeOver) => {
        this.claims.get(key)?.();
        this.claims.set(key, takeOver);
        return () => {
          if (this.claims.get(key) === takeOver) this.claims.delete(key);
        };
      },
    };
  }

  /** A track's title and artist, when the catalogue has it. */
  names(id: string): { title: string; artist: string } | undefined {
    const i = this.o.catalogue.indexOf.get(id);
    return i === undefined ? undefined : { title: this.o.catalogue.titles[i]!, artist: this.o.catalogue.artists[i]! };
  }

  /** Whether the gateway can take frames and deliver events: Kafka producer, fan-out group, Redis. */
  readiness(): { ready: boolean; reason?: string } {
    if (!this.ingest.ready) return { ready: false, reason: 'Kafka producer not connected' };
    if (!this.fanout.ready) return { ready: false, reason: this.fanout.reason };
    if (!this.store.ready()) return { ready: false, reason: 'Redis not connected' };
    return { ready: true };
  }

  async start(): Promise<void> {
    await this.store.connect();
    await this.redis.connect().catch(() => undefined);
    await this.ingest.start();
    await this.listenProducer.connect();
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.on('upgrade', (req, socket, head) => void this.upgrade(req, socket as import('node:net').Socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.host ?? '0.0.0.0', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    // Joining the fan-out group takes a few seconds; /readyz says when it is done.
    void this.fanout.start().catch((err) => this.o.logger.error('fan-out consumer failed to start', { error: errorMessage(err) }));
  }

  /** Resolves once /readyz would answer 200. */
  async whenReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.readiness().ready) {
      if (Date.now() > deadline) throw new Error(`gateway not ready: ${this.readiness().reason}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async identify(req: http.IncomingMessage): Promise<Identity> {
    try {
      return await this.o.verifier.verify(req.headers.authorization);
    } catch (err) {
      if (err instanceof AuthError) throw new HttpError(401, err.code, err.message);
      throw err;
    }
  }

  private async upgrade(req: http.IncomingMessage, socket: import('node:net').Socket, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const refuse = (status: number, code: string, message: string) => {
      this.metrics.rejections.inc({ reason: code });
      const body = JSON.stringify({ code, error: message });
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${status === 401 ? 'www-authenticate: Bearer\r\n' : ''}connection: close\r\n\r\n${body}`);
    };
    if (url.pathname !== '/v1/stream') return refuse(404, 'NOT_FOUND', 'the stream is at /v1/stream');
    if (this.wss.clients.size >= this.o.maxConnections) return refuse(503, 'NO_ROOM', 'this gateway holds its most connections; try another instance');
    let identity: Identity | undefined;
    if (req.headers.authorization) {
      try {
        identity = await this.identify(req);
      } catch (err) {
        if (err instanceof HttpError) return refuse(err.status, err.code, err.message);
        throw err;
      }
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.wss.emit('connection', ws, req);
      new StreamConnection(ws, this.context, identity, url.searchParams.get('session') ?? undefined, url.searchParams.get('scores') === '1');
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const json = (status: number, body: unknown, extra: Record<string, string> = {}) => {
      res.writeHead(status, { ...JSON_TYPE, ...extra });
      res.end(JSON.stringify(body));
    };
    try {
      if (url.pathname.startsWith('/v1/')) return json(...(await this.api(req, url)));
      if (url.pathname === '/healthz') return json(200, { status: 'ok' });
      if (url.pathname === '/readyz') {
        const r = this.readiness();
        return json(r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', reason: r.reason });
      }
      if (url.pathname === '/metrics') {
        if (!basicAuthorized(this.o.metricsAuth, req)) return refuseMetrics(res);
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
        return void res.end(await this.metrics.registry.metrics());
      }
      const asset = req.method === 'GET' || req.method === 'HEAD' ? this.o.assets?.get(url.pathname) : undefined;
      if (asset) {
        res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, 'cache-control': 'no-cache', ...asset.headers });
        return void res.end(req.method === 'HEAD' ? undefined : asset.body);
      }
      json(404, { code: 'NOT_FOUND', error: `nothing at ${url.pathname}` });
    } catch (err) {
      if (err instanceof HttpError) {
        this.metrics.rejections.inc({ reason: err.code });
        return json(err.status, { code: err.code, error: err.message }, err.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
      }
      this.o.logger.error('request failed', { path: url.pathname, error: errorMessage(err) });
      json(500, { code: 'INTERNAL', error: 'the gateway could not answer' });
    }
  }

  /** The `/v1/me/...` routes: the user is always the token's subject. */
  private async api(req: http.IncomingMessage, url: URL): Promise<[number, unknown]> {
    const route = `${req.method} ${url.pathname}`;
    const known = ['GET /v1/me/recommendations', 'GET /v1/me/emotion', 'POST /v1/me/listens'];
    if (!known.includes(route)) {
      if (known.some((k) => k.endsWith(` ${url.pathname}`))) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}`);
      throw new HttpError(404, 'NOT_FOUND', `no route ${url.pathname}`);
    }
    const { userId } = await this.identify(req);
    const unavailable = (err: unknown) => new HttpError(503, 'SERVICE_UNAVAILABLE', errorMessage(err));
    if (route === 'GET /v1/me/recommendations') {
      const list = await this.store.lastList(userId).catch((err) => Promise.reject(unavailable(err)));
      if (!list) throw new HttpError(404, 'NO_LIST', 'no recommendation list for this user yet');
      return [200, this.withNames(list)];
    }
    if (route === 'GET /v1/me/emotion') {
      const state = await this.store.read(userId).catch((err) => Promise.reject(unavailable(err)));
      if (!state.emotion) throw new HttpError(404, 'NO_EMOTION', 'no emotion for this user yet');
      return [200, state.emotion];
    }
    const listen = parseListen(await readBody(req), userId, this.o.catalogue);
    await this.listenProducer
      .send({ topic: topicName(this.o.topology, 'listens'), acks: -1, messages: [{ key: userId, value: this.o.registry.encode('listen', listen), timestamp: String(listen.startTimeMs) }] })
      .catch((err) => Promise.reject(unavailable(err)));
    return [202, { listenId: listen.listenId }];
  }

  private withNames(list: Recommendation): unknown {
    return { ...list, items: list.items.map((it) => ({ ...it, ...this.names(it.trackId) })) };
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    for (const ws of this.wss.clients) ws.close(1001, 'gateway stopping');
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
    await this.ingest.close();
    await this.listenProducer.disconnect().catch(() => undefined);
    await this.fanout.close().catch(() => undefined);
    await this.sessions.close();
    this.redis.disconnect();
    await this.store.close();
  }
}

async function readBody(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'BODY_TOO_LARGE', `a request body may have at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'BAD_REQUEST', 'the body must be JSON');
  }
}

/** A play from `POST /v1/me/listens`: `{ trackId, listenedMs?, outcome?, startTimeMs? }`. */
export function parseListen(body: unknown, userId: string, catalogue: TrackCatalogue, now = Date.now()): Listen {
  if (typeof body !== 'object' || body === null) throw new HttpError(400, 'BAD_REQUEST', 'the body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.trackId !== 'string' || b.trackId === '') throw new HttpError(400, 'BAD_REQUEST', 'trackId (a string) is required');
  if (!catalogue.indexOf.has(b.trackId)) throw new HttpError(422, 'UNKNOWN_TRACK', `no track ${JSON.stringify(b.trackId.slice(0, 64))} in the catalogue`);
  const listenedMs = b.listenedMs ?? 30_000;
  if (typeof listenedMs !== 'number' || !Number.isInteger(listenedMs) || listenedMs < 0 || listenedMs > 24 * 3_600_000) throw new HttpError(400, 'BAD_REQUEST', 'listenedMs must be a whole number of milliseconds from 0 to a day');
  const outcome = b.outcome ?? 'COMPLETED';
  if (outcome !== 'COMPLETED' && outcome !== 'SKIPPED') throw new HttpError(400, 'BAD_REQUEST', 'outcome must be COMPLETED or SKIPPED');
  const startTimeMs = b.startTimeMs ?? now;
  if (typeof startTimeMs !== 'number' || !Number.isFinite(startTimeMs) || Math.abs(startTimeMs - now) > 7 * 86_400_000) throw new HttpError(400, 'BAD_REQUEST', 'startTimeMs must be a time within a week of now');
  return { listenId: randomUUID(), userId, trackId: b.trackId, startTimeMs: Math.round(startTimeMs), listenedMs, outcome };
}
