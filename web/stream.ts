// The browser's side of /v1/stream (gateway/protocol.ts): hello with the token, frames out, the
// server's messages in, and a reconnect that continues the session's sequence.
import { CLOSE_CODES, encodeFrame, type ServerMessage, type StreamFrame } from '../gateway/protocol.ts';

export interface StreamEvents {
  onMessage(m: ServerMessage): void;
  onStatus(text: string, ok: boolean): void;
}

export class BrowserStream {
  private ws: WebSocket | undefined;
  private nextSeq = 1;
  private stopped = false;
  /** The gateway instance that serves this user, once one has said so (a redirect). */
  private base = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
  readonly sessionId: string;
  open = false;
  sent = 0;
  acked = 0;

  constructor(
    private readonly token: string,
    private readonly events: StreamEvents,
  ) {
    this.sessionId = sessionStorage.getItem('em.session') ?? `web-${crypto.randomUUID()}`;
    sessionStorage.setItem('em.session', this.sessionId);
  }

  connect(): void {
    const url = `${this.base}/v1/stream?session=${encodeURIComponent(this.sessionId)}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    // the live view shows every frame's scores: ask for them
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', token: this.token, sessionId: this.sessionId, scores: true }));
    ws.onmessage = (e) => {
      const m = JSON.parse(String(e.data)) as ServerMessage;
      if (m.type === 'redirect') this.base = m.url.replace(/^http/, 'ws');
      if (m.type === 'welcome') {
        this.open = true;
        this.nextSeq = m.lastSeq + 1;
        this.events.onStatus(`connected as ${m.userId}`, true);
      }
      if (m.type === 'ack') this.acked = m.seq;
      this.events.onMessage(m);
    };
    ws.onclose = (e) => {
      this.open = false;
      if (e.code === CLOSE_CODES.UNAUTHENTICATED) {
        this.stopped = true;
        this.events.onStatus(`signed out: ${e.reason || 'the token was refused'}; sign in again`, false);
        return;
      }
      if (this.stopped) return;
      if (e.code === CLOSE_CODES.WRONG_INSTANCE) {
        // another gateway instance serves this user: go there at once
        this.events.onStatus(`moving to the gateway that serves this user (${this.base})`, false);
        return this.connect();
      }
      this.events.onStatus(`disconnected (${e.code}); reconnecting`, false);
      setTimeout(() => this.connect(), 1000);
    };
  }

  /** Sends a frame (its sequence number is given here); false when the socket is not open or is backed up. */
  send(frame: Omit<StreamFrame, 'seq'>): boolean {
    const ws = this.ws;
    if (!ws || !this.open || ws.bufferedAmount > 256 * 1024) return false;
    ws.send(encodeFrame({ ...frame, seq: this.nextSeq++ }));
    this.sent++;
    return true;
  }

  close(): void {
    this.stopped = true;
    this.ws?.close(1000);
  }
}
