import { WebSocket } from 'ws';
import { encodeFrame, type ServerMessage, type StreamFrame, type WelcomeMessage } from './protocol.ts';

export interface StreamClientOptions {
  readonly token: string;
  readonly sessionId?: string;
  /** Send the token in the upgrade's Authorization header (Node clients) rather than in a hello (browsers). @defaultValue false */
  readonly tokenInHeader?: boolean;
  /** Called with every server message. */
  readonly onMessage?: (m: ServerMessage) => void;
  /** Ask for the per-frame score events too (changes and lists always come). @defaultValue true */
  readonly scores?: boolean;
  /** Redirects to another gateway instance (close 4307) followed before giving up. @defaultValue 2 */
  readonly followRedirects?: number;
}

/**
 * A Node client of `/v1/stream` (gateway/protocol.ts), for tests, the gateway benchmark and
 * scripts: connects, says hello, keeps the server's messages and the highest ack.
 */
export class StreamClient {
  readonly messages: ServerMessage[] = [];
  acked = 0;
  closed: { code: number; reason: string } | undefined;
  private readonly waiters = new Set<() => void>();

  private constructor(
    readonly ws: WebSocket,
    readonly welcome: WelcomeMessage,
  ) {}

  /**
   * Opens a socket and resolves once the server's welcome arrives, following the gateway's
   * redirects to the instance that serves the user; rejects with the close code or HTTP status
   * otherwise.
   */
  static async connect(baseUrl: string, o: StreamClientOptions): Promise<StreamClient> {
    let base = baseUrl;
    for (let hops = 0; ; hops++) {
      try {
        return await StreamClient.open(base, o);
      } catch (err) {
        const redirect = (err as { code?: number; messages?: ServerMessage[] }).messages?.find((m) => m.type === 'redirect');
        if ((err as { code?: number }).code !== 4307 || !redirect || redirect.type !== 'redirect' || hops >= (o.followRedirects ?? 2)) throw err;
        base = redirect.url;
      }
    }
  }

  private static open(baseUrl: string, o: StreamClientOptions): Promise<StreamClient> {
    const scores = o.scores ?? true;
    const query = new URLSearchParams({ ...(o.sessionId ? { session: o.sessionId } : {}), ...(scores ? { scores: '1' } : {}) }).toString();
    const url = `${baseUrl.replace(/^http/, 'ws')}/v1/stream${query ? `?${query}` : ''}`;
    const ws = new WebSocket(url, { headers: o.tokenInHeader ? { authorization: `Bearer ${o.token}` } : {}, perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      let client: StreamClient | undefined;
      const early: ServerMessage[] = [];
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body: JSON.parse(body || '{}') })));
      });
      ws.on('error', (err) => {
        if (!client) reject(err);
      });
      ws.on('open', () => {
        if (!o.tokenInHeader) ws.send(JSON.stringify({ type: 'hello', token: o.token, sessionId: o.sessionId, scores }));
      });
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        const m = JSON.parse(data.toString()) as ServerMessage;
        if (!client) {
          if (m.type === 'welcome') {
            client = new StreamClient(ws, m);
            for (const e of early) client.receive(e);
            resolve(client);
          } else early.push(m);
          o.onMessage?.(m);
          return;
        }
        o.onMessage?.(m);
        client.receive(m);
      });
      ws.on('close', (code, reason) => {
        if (client) {
          client.closed = { code, reason: reason.toString() };
          client.notify();
        } else reject(Object.assign(new Error(`closed ${code} ${reason.toString()}`), { code, reason: reason.toString(), messages: early }));
      });
    });
  }

  private receive(m: ServerMessage): void {
    this.messages.push(m);
    if (m.type === 'ack') this.acked = Math.max(this.acked, m.seq);
    this.notify();
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  send(frame: StreamFrame): void {
    this.ws.send(encodeFrame(frame));
  }

  /** Bytes as they are (tests of malformed messages). */
  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data);
  }

  /** Resolves when `predicate` holds for the messages so far (checked on each message). */
  waitFor<T>(what: string, predicate: (c: StreamClient) => T | undefined | false, timeoutMs = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = predicate(this);
        if (v) {
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve(v);
        } else if (this.closed) {
          this.waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`socket closed (${this.closed.code} ${this.closed.reason}) while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
    });
  }
}
