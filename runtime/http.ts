import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Registry } from 'prom-client';
import { listenOnFirstFree } from './net.ts';
import type { Secret } from './secret.ts';

/** The credentials /metrics asks for (Prometheus' scrape config sends them with basic_auth). */
export interface BasicAuth {
  readonly username: string;
  readonly password: Secret;
}

/** Whether a request carries the basic-auth credentials (compared in constant time); true when none are configured. */
export function basicAuthorized(auth: BasicAuth | undefined, req: http.IncomingMessage): boolean {
  if (!auth) return true;
  const header = req.headers.authorization ?? '';
  if (!header.startsWith('Basic ')) return false;
  const given = Buffer.from(header.slice(6).trim(), 'base64');
  const wanted = Buffer.from(`${auth.username}:${auth.password.reveal()}`);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** The Authorization header that `auth` asks for (none when it is undefined). */
export function basicAuthHeaders(auth: BasicAuth | undefined): Record<string, string> {
  return auth ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password.reveal()}`).toString('base64')}` } : {};
}

/** The answer to a /metrics request without the right credentials. */
export function refuseMetrics(res: http.ServerResponse): void {
  res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="metrics"' });
  res.end('{"code":"METRICS_AUTH","error":"/metrics needs basic auth"}');
}

export type RouteHandler = (req: http.IncomingMessage, url: URL) => Promise<{ status: number; body: unknown } | undefined>;

export interface HttpServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Every process serves /metrics (Prometheus text), /healthz (the process is alive) and /readyz
 * (it is consuming and its dependencies answer). Extra routes (for example the recommender's
 * read-back) are tried first; returning undefined passes the request on.
 */
export async function startHttpServer(options: {
  port: number;
  host?: string;
  /** Ports tried from `port` on when it is taken (1: only `port`). */
  portTries?: number;
  /** Basic auth on /metrics; undefined leaves it open. */
  metricsAuth?: BasicAuth;
  registry: Registry;
  ready: () => { ready: boolean; reason?: string };
  routes?: RouteHandler[];
}): Promise<HttpServer> {
  const server = http.createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: String(err) }));
    });
  });

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    for (const route of options.routes ?? []) {
      const answer = await route(req, url);
      if (answer) {
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer.body));
        return;
      }
    }
    if (url.pathname === '/metrics') {
      if (!basicAuthorized(options.metricsAuth, req)) return refuseMetrics(res);
      res.writeHead(200, { 'content-type': options.registry.contentType });
      res.end(await options.registry.metrics());
    } else if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
    } else if (url.pathname === '/readyz') {
      const r = options.ready();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: r.ready ? 'ready' : 'not ready', reason: r.reason }));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"not found"}');
    }
  };

  const port = await listenOnFirstFree(server, options.port, options.host ?? '127.0.0.1', options.portTries);
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
