import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import { AuthError, type Identity, type TokenVerifier } from '../auth/tokens.ts';
import { EmotionMuseError } from '../schemas/errors.ts';
import type { Logger } from '../runtime/log.ts';
import type { Frame } from '../schemas/generated/types.ts';
import { checkEdgeScores } from '../vision/scores.ts';
import type { Fanout } from './fanout.ts';
import type { Ingest } from './ingest.ts';
import { InFlight, TokenBucket } from './limits.ts';
import type { GatewayMetrics } from '../runtime/metrics.ts';
import { CLOSE_CODES, decodeFrame, ProtocolError, type GatewayErrorCode, type HelloMessage, type ServerMessage, type StreamFrame } from './protocol.ts';
import type { SessionStore } from './sessions.ts';

export interface StreamLimits {
  /** Frames a second per user (a token bucket with one second of burst). @defaultValue 15 */
  readonly framesPerSecond: number;
  /** Largest message answered with an error rather than read (bytes). */
  readonly maxMessageBytes: number;
  /** Frames of one socket sent to Kafka and not yet acknowledged; past it the socket is not read. */
  readonly maxInFlight: number;
  /** Milliseconds a socket has to say hello when its upgrade carried no token. */
  readonly helloTimeoutMs: number;
  /**
   * Bytes of events the socket may hold unsent (its reader is slow or gone): past half of it
   * score events are dropped (counted), and an event that would pass it closes the socket with
   * 4413 (changes and lists are never dropped from an open socket). @defaultValue 1 MiB
   */
  readonly maxSocketBufferBytes?: number;
}

export const DEFAULT_SOCKET_BUFFER_BYTES = 1024 * 1024;

/** What every connection of one gateway process shares. */
export interface StreamContext {
  readonly verifier: TokenVerifier;
  readonly ingest: Ingest;
  readonly fanout: Fanout;
  readonly sessions: SessionStore;
  readonly limits: StreamLimits;
  /** Frames of the whole process in flight to Kafka. */
  readonly processInFlight: InFlight;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  /** The user's bucket, shared by all of that user's sockets on this process. */
  bucket(userId: string): TokenBucket;
  /** Registers a (user, session) pair; returns a function that closes the socket that held it before. */
  claim(key: string, takeOver: () => void): () => void;
  /** Where a user this instance does not serve is sent (gateway/routing.ts); undefined when it serves them. */
  redirectFor(userId: string): { url: string; instance: number } | undefined;
}

interface Waiting {
  readonly frame: StreamFrame;
  readonly receivedAt: number;
}

/**
 * One `/v1/stream` socket: authenticates it, reads frames in the binary protocol
 * (gateway/protocol.ts), answers malformed ones with an error and goes on, applies the user's rate
 * limit and the in-flight bounds by not reading the socket for a while (the client is told with a
 * `throttle`), acks what Kafka stored, and forwards the user's events.
 */
export class StreamConnection {
  private identity: Identity | undefined;
  private sessionId = '';
  private lastReceived = 0;
  private acked = 0;
  /** The session's last accepted sequence number when this socket joined it. */
  private resumedAfter = 0;
  /** After Kafka refused a frame, acks stop: the client reconnects and resends from the last ack. */
  private broken = false;
  private readonly waiting: Waiting[] = [];
  private readonly inFlight: InFlight;
  private paused: 'RATE_LIMITED' | 'BACKPRESSURE' | undefined;
  private closed = false;
  private readonly cleanups: Array<() => void> = [];
  private ackScheduled = false;
  private helloPending = false;
  /** Frames count only after the welcome (the session's last sequence number is known then). */
  private welcomed = false;
  /** Cancels the wait of the current pause (its timer, or its place among the in-flight waiters). */
  private pauseCancel: (() => void) | undefined;
  /** Whether the client asked for score events (changes and lists always come). */
  private wantsScores: boolean;

  constructor(
    private readonly ws: WebSocket,
    private readonly ctx: StreamContext,
    /** Set when the upgrade request carried a valid token. */
    identity: Identity | undefined,
    /** `?session=` of the upgrade request. */
    sessionId: string | undefined,
    /** `?scores=1` of the upgrade request. */
    scores = false,
  ) {
    this.wantsScores = scores;
    this.inFlight = new InFlight(ctx.limits.maxInFlight);
    ctx.metrics.connections.inc();
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.onClose());
    ws.on('error', () => undefined);
    if (identity) void this.begin(identity, sessionId);
    else {
      const timer = setTimeout(() => this.close(CLOSE_CODES.HELLO_TIMEOUT, 'no hello with a token in time'), ctx.limits.helloTimeoutMs);
      this.cleanups.push(() => clearTimeout(timer));
    }
  }

  private send(message: ServerMessage): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    // What the socket holds unsent is bounded: a reader that stops does not hold this process's memory.
    const bound = this.ctx.limits.maxSocketBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
    const unsent = this.ws.bufferedAmount;
    if (message.type === 'score' && unsent >= bound / 2) {
      this.ctx.metrics.eventsDropped.inc({ type: 'score', reason: 'slow-reader' });
      return;
    }
    const text = JSON.stringify(message);
    if (unsent + Buffer.byteLength(text) > bound) {
      this.ctx.metrics.eventsDropped.inc({ type: message.type, reason: 'slow-reader-closed' });
      this.ctx.logger.warn('closing a socket that reads too slowly', { unsentBytes: unsent, bound });
      this.close(CLOSE_CODES.SLOW_READER, 'too many events unsent: read faster, or reconnect');
      // The close frame waits behind what is unsent: a reader that never drains it is cut off.
      setTimeout(() => this.ws.terminate(), 5000).unref();
      return;
    }
    this.ws.send(text);
  }

  private reject(code: GatewayErrorCode, message: string, seq?: number): void {
    this.ctx.metrics.rejections.inc({ reason: code });
    this.send({ type: 'error', code, message, ...(seq !== undefined ? { seq } : {}) });
  }

  private close(code: number, reason: string): void {
    if (this.closed) return;
    this.ws.close(code, reason);
    this.onClose();
  }

  private async begin(identity: Identity, sessionId: string | undefined): Promise<void> {
    this.identity = identity;
    const elsewhere = this.ctx.redirectFor(identity.userId);
    if (elsewhere) {
      // Another instance reads this user's partitions: the client goes there.
      this.ctx.metrics.rejections.inc({ reason: 'WRONG_INSTANCE' });
      this.send({ type: 'redirect', url: elsewhere.url, instance: elsewhere.instance });
      return this.close(CLOSE_CODES.WRONG_INSTANCE, `this user is served by gateway instance ${elsewhere.instance}`);
    }
    this.sessionId = sessionId && /^[\w.:-]{1,128}$/.test(sessionId) ? sessionId : `ws-${randomUUID()}`;
    // (timers hold at most 2^31 - 1 ms, about 24.8 days: a longer token is checked again then)
    let expiry: NodeJS.Timeout;
    const watch = () => {
      const left = identity.expiresAtMs - Date.now();
      if (left <= 0) return this.close(CLOSE_CODES.UNAUTHENTICATED, 'TOKEN_EXPIRED');
      expiry = setTimeout(watch, Math.min(left, 2 ** 31 - 1));
    };
    watch();
    this.cleanups.push(() => clearTimeout(expiry));
    this.cleanups.push(this.ctx.claim(`${identity.userId}\u0000${this.sessionId}`, () => this.close(CLOSE_CODES.SESSION_TAKEN_OVER, 'the session was opened on another socket')));
    this.cleanups.push(this.ctx.fanout.listen(identity.userId, (m) => (m.type !== 'score' || this.wantsScores) && this.send(m)));
    const lastSeq = await this.ctx.sessions.lastSeq(identity.userId, this.sessionId);
    this.lastReceived = this.acked = this.resumedAfter = lastSeq;
    this.welcomed = true;
    const { framesPerSecond, maxMessageBytes, maxInFlight } = this.ctx.limits;
    this.send({ type: 'welcome', userId: identity.userId, sessionId: this.sessionId, lastSeq, limits: { framesPerSecond, maxMessageBytes, maxInFlight } });
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    if (!isBinary) return void this.onText(data);
    if (!this.welcomed) return this.reject('NOT_AUTHENTICATED', 'say hello with a token, and wait for the welcome, before sending frames');
    if (data.length > this.ctx.limits.maxMessageBytes) return this.reject('MESSAGE_TOO_LARGE', `a message may have at most ${this.ctx.limits.maxMessageBytes} bytes; this one has ${data.length}`);
    let frame: StreamFrame;
    try {
      frame = decodeFrame(data);
      if (frame.kind === 'SCORES') checkScores(frame);
    } catch (err) {
      if (err instanceof ProtocolError) return this.reject(err.code, err.message, err.seq);
      throw err;
    }
    if (frame.seq <= this.resumedAfter) {
      // Sent again after a reconnect: the pipeline has it already.
      this.ctx.metrics.rejections.inc({ reason: 'DUPLICATE' });
      return this.send({ type: 'ack', seq: this.acked });
    }
    if (frame.seq <= this.lastReceived) return this.reject('OUT_OF_ORDER', `sequence number ${frame.seq} after ${this.lastReceived}: a session's frames must increase`, frame.seq);
    this.lastReceived = frame.seq;
    this.ctx.metrics.framesIn.inc({ kind: frame.kind });
    this.waiting.push({ frame, receivedAt: performance.now() });
    this.pump();
  }

  private onText(data: Buffer): void {
    let message: HelloMessage;
    try {
      message = JSON.parse(data.toString('utf8')) as HelloMessage;
    } catch {
      return this.reject('BAD_MESSAGE', 'a text message must be JSON');
    }
    if (message?.type !== 'hello') return this.reject('BAD_MESSAGE', `unknown message type ${JSON.stringify(message?.type ?? null)}`);
    if (this.identity || this.helloPending) return this.reject('BAD_MESSAGE', 'this socket has said hello already');
    this.helloPending = true;
    this.ctx.verifier.verify(typeof message.token === 'string' ? message.token : undefined).then(
      (identity) => {
        this.cleanups.shift()?.(); // the hello timer
        if (message.scores === true) this.wantsScores = true;
        return this.begin(identity, typeof message.sessionId === 'string' ? message.sessionId : undefined);
      },
      (err: unknown) => {
        const code = err instanceof AuthError ? err.code : 'TOKEN_INVALID';
        this.ctx.metrics.rejections.inc({ reason: code });
        this.send({ type: 'error', code, message: err instanceof Error ? err.message : String(err) });
        this.close(CLOSE_CODES.UNAUTHENTICATED, code);
      },
    );
  }

  /** Hands waiting frames to Kafka while the rate limit and the in-flight bounds allow. */
  private pump(): void {
    const bucket = this.ctx.bucket(this.identity!.userId);
    while (this.waiting.length > 0 && !this.closed) {
      if (this.inFlight.full || this.ctx.processInFlight.full) {
        this.pause('BACKPRESSURE', 0);
        const resume = () => this.resumeAndPump();
        this.pauseCancel?.();
        this.pauseCancel = this.inFlight.full ? this.inFlight.onRoom(resume) : this.ctx.processInFlight.onRoom(resume);
        return;
      }
      if (!bucket.take()) {
        const wait = bucket.waitMs();
        this.pause('RATE_LIMITED', wait);
        const timer = setTimeout(() => this.resumeAndPump(), wait);
        this.pauseCancel?.();
        this.pauseCancel = () => clearTimeout(timer);
        return;
      }
      this.submit(this.waiting.shift()!);
    }
    if (this.paused) {
      this.paused = undefined;
      this.ws.resume();
    }
  }

  private resumeAndPump(): void {
    this.pauseCancel = undefined;
    if (!this.closed) this.pump();
  }

  private pause(reason: 'RATE_LIMITED' | 'BACKPRESSURE', resumeInMs: number): void {
    if (this.paused === reason) return;
    this.paused = reason;
    this.ws.pause();
    this.ctx.metrics.throttles.inc({ reason });
    this.send({ type: 'throttle', reason, resumeInMs });
  }

  private submit(w: Waiting): void {
    const f = w.frame;
    const record: Frame = {
      userId: this.identity!.userId,
      sessionId: this.sessionId,
      seq: f.seq,
      captureTimeMs: f.captureTimeMs,
      encoding: f.kind,
      width: f.width,
      height: f.height,
      data: Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength),
      faceBox: f.faceBox,
      probabilities: f.probabilities ? [...f.probabilities] : [],
      edgeModelVersion: f.modelVersion ?? '',
    };
    this.inFlight.add();
    this.ctx.processInFlight.add();
    this.ctx.ingest.submit(record, this.identity!.token).then(
      () => {
        this.settle();
        this.ctx.metrics.ackSeconds.observe((performance.now() - w.receivedAt) / 1000);
        if (this.broken) return;
        this.acked = Math.max(this.acked, f.seq);
        this.ctx.sessions.advance(record.userId, this.sessionId, this.acked);
        this.scheduleAck();
      },
      (err: EmotionMuseError) => {
        this.settle();
        this.broken = true;
        this.ctx.metrics.rejections.inc({ reason: 'SERVICE_UNAVAILABLE' });
        this.send({ type: 'error', code: 'SERVICE_UNAVAILABLE', message: `${err.message}; reconnect and resend from the last ack`, seq: f.seq });
        this.close(1011, 'Kafka unavailable');
      },
    );
  }

  private settle(): void {
    this.inFlight.done();
    this.ctx.processInFlight.done();
  }

  /** One ack per socket for all the frames of a produce request. */
  private scheduleAck(): void {
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      this.send({ type: 'ack', seq: this.acked });
    });
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.metrics.connections.dec();
    this.pauseCancel?.();
    for (const c of this.cleanups.splice(0)) c();
  }
}

function checkScores(frame: StreamFrame): void {
  try {
    checkEdgeScores(frame.probabilities ?? [], frame.modelVersion ?? '');
  } catch (err) {
    if (err instanceof EmotionMuseError) throw new ProtocolError('BAD_SCORES', err.message, frame.seq);
    throw err;
  }
}
