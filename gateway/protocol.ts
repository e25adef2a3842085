/**
 * The `/v1/stream` WebSocket protocol, shared by the gateway, the web client and the benchmark's
 * simulated clients. Pure TypeScript (no Node APIs) so that the browser bundle can use it.
 *
 * Client to server:
 * - text `{"type":"hello","token":"<jwt>","sessionId":"<id>"}` first, unless the upgrade request
 *   carried `Authorization: Bearer <jwt>`; the server answers `welcome` with the session's last
 *   accepted sequence number, so that a client that reconnects continues after it.
 * - binary frames: a 36-byte header, then the payload (see {@link encodeFrame}).
 *
 * Server to client, always text JSON ({@link ServerMessage}): `welcome`, `ack` (highest sequence
 * number accepted, that is, stored in Kafka), `error` (per message, with a code; the socket stays
 * open), `throttle` (the gateway stopped reading for a while: rate limit or backpressure), and the
 * user's own `score`, `change` and `list` events as they happen.
 *
 * Score events come only to a socket that asks for them (`"scores": true` in the hello, or
 * `?scores=1` on the upgrade); changes and lists always.
 *
 * Close codes: 4401 (token missing, invalid or expired), 4408 (no hello in time), 4429 (the
 * gateway has no room for another connection), 4409 (the same session was opened on another
 * socket), 4307 (another gateway instance serves this user: the `redirect` message before it
 * names it; connect there), 1009 (message over the hard size limit), 1011 (Kafka refused a frame:
 * reconnect and resend from the last ack).
 */

export const PROTOCOL_MAGIC = 0x45; // 'E'
export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 36;

/** What a binary message carries, as the privacy levels of the edge client send it. */
export const FRAME_KINDS = { GRAY8: 1, SCORES: 2, NONE: 3, JPEG: 4, PNG: 5 } as const;
export type FrameKind = keyof typeof FRAME_KINDS;
const KIND_OF = new Map<number, FrameKind>(Object.entries(FRAME_KINDS).map(([k, v]) => [v, k as FrameKind]));

const FLAG_FACE_BOX = 1;

export const CLOSE_CODES = { UNAUTHENTICATED: 4401, HELLO_TIMEOUT: 4408, NO_ROOM: 4429, SESSION_TAKEN_OVER: 4409, SLOW_READER: 4413, WRONG_INSTANCE: 4307, TOO_LARGE: 1009 } as const;

/** Per-message error codes of the gateway. */
export const GATEWAY_ERRORS = ['BAD_MESSAGE', 'BAD_FRAME', 'BAD_SCORES', 'MESSAGE_TOO_LARGE', 'OUT_OF_ORDER', 'NOT_AUTHENTICATED', 'SERVICE_UNAVAILABLE'] as const;
export type GatewayErrorCode = (typeof GATEWAY_ERRORS)[number];

export interface StreamFrame {
  readonly kind: FrameKind;
  readonly seq: number;
  readonly captureTimeMs: number;
  readonly width: number;
  readonly height: number;
  readonly faceBox: { x: number; y: number; width: number; height: number } | null;
  /** GRAY8: width*height grey bytes; JPEG/PNG: the encoded image; empty for NONE and SCORES. */
  readonly data: Uint8Array;
  /** SCORES: seven probabilities in FER order and the device model's version. */
  readonly probabilities?: readonly number[];
  readonly modelVersion?: string;
}

export class ProtocolError extends Error {
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    /** The frame's sequence number when the header was readable. */
    readonly seq?: number,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/**
 * The binary layout, big-endian:
 *
 * | offset | bytes | field |
 * |---|---|---|
 * | 0 | 1 | magic `0x45` |
 * | 1 | 1 | version `1` |
 * | 2 | 1 | kind: 1 GRAY8, 2 SCORES, 3 NONE, 4 JPEG, 5 PNG |
 * | 3 | 1 | flags: bit 0, a face box follows |
 * | 4 | 4 | sequence number (uint32, from 1) |
 * | 8 | 8 | capture time, Unix epoch ms (float64) |
 * | 16 | 2 + 2 | width, height (uint16; 0 when unknown) |
 * | 20 | 4 x 4 | face box x, y, width, height in camera pixels (float32) |
 * | 36 | rest | payload: GRAY8 pixels, JPEG/PNG bytes, SCORES 7 float32 then the model version (UTF-8) |
 */
export function encodeFrame(frame: StreamFrame): Uint8Array {
  const version = frame.kind === 'SCORES' ? new TextEncoder().encode(frame.modelVersion ?? '') : undefined;
  const payload = frame.kind === 'SCORES' ? 28 + version!.length : frame.data.length;
  const out = new Uint8Array(HEADER_BYTES + payload);
  const v = new DataView(out.buffer);
  v.setUint8(0, PROTOCOL_MAGIC);
  v.setUint8(1, PROTOCOL_VERSION);
  v.setUint8(2, FRAME_KINDS[frame.kind]);
  v.setUint8(3, frame.faceBox ? FLAG_FACE_BOX : 0);
  v.setUint32(4, frame.seq);
  v.setFloat64(8, frame.captureTimeMs);
  v.setUint16(16, frame.width);
  v.setUint16(18, frame.height);
  if (frame.faceBox) [frame.faceBox.x, frame.faceBox.y, frame.faceBox.width, frame.faceBox.height].forEach((n, i) => v.setFloat32(20 + 4 * i, n));
  if (frame.kind === 'SCORES') {
    const p = frame.probabilities ?? [];
    for (let i = 0; i < 7; i++) v.setFloat32(HEADER_BYTES + 4 * i, p[i] ?? Number.NaN);
    out.set(version!, HEADER_BYTES + 28);
  } else {
    out.set(frame.data, HEADER_BYTES);
  }
  return out;
}

/** Reads a binary message; throws ProtocolError (BAD_MESSAGE, BAD_FRAME) on anything malformed. */
export function decodeFrame(bytes: Uint8Array): StreamFrame {
  if (bytes.length < HEADER_BYTES) throw new ProtocolError('BAD_MESSAGE', `a frame message has a ${HEADER_BYTES}-byte header; got ${bytes.length} bytes`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint8(0) !== PROTOCOL_MAGIC || v.getUint8(1) !== PROTOCOL_VERSION) throw new ProtocolError('BAD_MESSAGE', `not a version ${PROTOCOL_VERSION} frame message (magic 0x45)`);
  const kind = KIND_OF.get(v.getUint8(2));
  const seq = v.getUint32(4);
  if (!kind) throw new ProtocolError('BAD_MESSAGE', `unknown frame kind ${v.getUint8(2)}`, seq);
  if (seq === 0) throw new ProtocolError('BAD_FRAME', 'sequence numbers start at 1', seq);
  const captureTimeMs = v.getFloat64(8);
  if (!Number.isFinite(captureTimeMs) || captureTimeMs < 0) throw new ProtocolError('BAD_FRAME', 'the capture time is not a time', seq);
  const width = v.getUint16(16);
  const height = v.getUint16(18);
  let faceBox: StreamFrame['faceBox'] = null;
  if (v.getUint8(3) & FLAG_FACE_BOX) {
    const [x, y, w, h] = [0, 1, 2, 3].map((i) => v.getFloat32(20 + 4 * i)) as [number, number, number, number];
    if (![x, y, w, h].every(Number.isFinite) || w <= 0 || h <= 0) throw new ProtocolError('BAD_FRAME', 'the face box is not a box', seq);
    faceBox = { x, y, width: w, height: h };
  }
  const payload = bytes.subarray(HEADER_BYTES);
  const base = { kind, seq, captureTimeMs, width, height, faceBox };
  switch (kind) {
    case 'GRAY8':
      if (width === 0 || height === 0 || payload.length !== width * height) throw new ProtocolError('BAD_FRAME', `a GRAY8 frame of ${width}x${height} has ${width * height} bytes, not ${payload.length}`, seq);
      return { ...base, data: payload };
    case 'NONE':
      if (payload.length !== 0) throw new ProtocolError('BAD_FRAME', 'a no-face marker has no payload', seq);
      return { ...base, data: payload };
    case 'SCORES': {
      if (payload.length < 28) throw new ProtocolError('BAD_FRAME', 'a SCORES frame holds 7 float32 probabilities and a model version', seq);
      const probabilities = [0, 1, 2, 3, 4, 5, 6].map((i) => v.getFloat32(HEADER_BYTES + 4 * i));
      const modelVersion = new TextDecoder('utf-8', { fatal: false }).decode(payload.subarray(28));
      return { ...base, data: new Uint8Array(0), probabilities, modelVersion };
    }
    default:
      if (payload.length === 0) throw new ProtocolError('BAD_FRAME', `a ${kind} frame has no bytes`, seq);
      return { ...base, data: payload };
  }
}

export interface WelcomeMessage {
  readonly type: 'welcome';
  readonly userId: string;
  readonly sessionId: string;
  /** The session's last accepted sequence number (0 for a new session): send from the next one. */
  readonly lastSeq: number;
  readonly limits: { readonly framesPerSecond: number; readonly maxMessageBytes: number; readonly maxInFlight: number };
}
export type ServerMessage =
  | WelcomeMessage
  | { readonly type: 'ack'; readonly seq: number }
  | { readonly type: 'redirect'; readonly url: string; readonly instance: number }
  | { readonly type: 'error'; readonly code: GatewayErrorCode | string; readonly message: string; readonly seq?: number }
  | { readonly type: 'throttle'; readonly reason: 'RATE_LIMITED' | 'BACKPRESSURE'; readonly resumeInMs: number }
  | { readonly type: 'score'; readonly seq: number; readonly captureTimeMs: number; readonly faceFound: boolean; readonly probabilities: number[]; readonly scoredAt: string; readonly processedTimeMs: number }
  | { readonly type: 'change'; readonly previousLabel: string | null; readonly label: string; readonly probabilities: number[]; readonly valence: number; readonly arousal: number; readonly windowIndex: number; readonly windowEndSeq: number; readonly captureTimeMs: number; readonly emittedTimeMs: number; readonly scheme: string; readonly confidence: number | null }
  | { readonly type: 'list'; readonly listId: string; readonly trigger: string; readonly items: ReadonlyArray<{ trackId: string; rank: number; finalScore: number; preferenceScore: number; emotionScore: number; title?: string; artist?: string }>; readonly emotion: { label: string; valence: number; arousal: number } | null; readonly createdTimeMs: number };

export interface HelloMessage {
  readonly type: 'hello';
  readonly token?: string;
  readonly sessionId?: string;
  /** Send this socket the user's per-frame score events too. @defaultValue false */
  readonly scores?: boolean;
}
