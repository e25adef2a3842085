import kafkajs, { type Kafka, type Producer } from 'kafkajs';
import { EmotionMuseError, errorMessage } from '../schemas/errors.ts';
import type { Frame, FrameEncoding } from '../schemas/generated/types.ts';
import type { SchemaRegistry } from '../schemas/registry.ts';
import type { CameraImage, EdgeAnalyzer } from './analyzer.ts';
import { frameTokenHeaders } from '../auth/frame-token.ts';

const { CompressionTypes } = kafkajs;

export interface EdgePublisherOptions {
  readonly kafka: Kafka;
  readonly registry: SchemaRegistry;
  /** Full name of the frames topic. */
  readonly topic: string;
  readonly userId: string;
  readonly sessionId: string;
  /** Frames held in memory before `publish` waits (backpressure). @defaultValue 256 */
  readonly maxBuffered?: number;
  /** Frames per Kafka request. @defaultValue 64 */
  readonly batchSize?: number;
  /**
   * Encoded bytes per Kafka request at most (the broker refuses requests over its
   * message.max.bytes, 1 MiB by default, even when they compress below it). @defaultValue 768 KiB
   */
  readonly maxBatchBytes?: number;
  /** Attempts per batch before its frames count as errors. @defaultValue 5 */
  readonly retries?: number;
  /**
   * gzip the requests: `auto` only those of several frames (a replay, a backlog after an outage);
   * a live camera's request of one frame goes as it is (gzip cost a quarter of the sending CPU
   * for a 2.3 KB crop, and JPEG frames barely shrink). @defaultValue 'auto'
   */
  readonly compression?: boolean | 'auto';
  /** Sequence number of the first frame. @defaultValue 1 */
  readonly firstSeq?: number;
  /**
   * What `capture` lets leave the device (edge/analyzer.ts: crop, scores or frame); needed only
   * for `capture`. `publish` sends frames as they are given.
   */
  readonly analyzer?: EdgeAnalyzer;
  /**
   * The user's bearer token, sent with every frame (header em-token): a classifier that requires
   * it (the secured mode) dead-letters frames without it or for another user (auth/frame-token.ts).
   */
  readonly token?: string;
}

export interface EdgeFrame {
  readonly data: Buffer;
  readonly encoding: FrameEncoding;
  readonly width?: number;
  readonly height?: number;
  /** Defaults to now. */
  readonly captureTimeMs?: number;
  readonly faceBox?: Frame['faceBox'];
  /** SCORES frames: the device's probabilities and model version. */
  readonly probabilities?: number[];
  readonly edgeModelVersion?: string;
  /** Defaults to the next number of this session. */
  readonly seq?: number;
}

export interface PublisherStats {
  readonly queued: number;
  readonly sent: number;
  readonly errors: number;
  readonly buffered: number;
  /** Encoded record bytes queued (what leaves the device, before compression), and the largest. */
  readonly bytes: number;
  readonly largest: number;
  /** Frames queued per encoding (GRAY8 crops, NONE markers, SCORES, JPEG, ...). */
  readonly byEncoding: Readonly<Record<string, number>>;
}

/**
 * The edge client's way into the pipeline: numbers frames, stamps capture times, keeps a bounded
 * buffer (publish waits while it is full), sends batches with retries and compression, keyed by
 * user so that a user's frames stay in order.
 *
 * @example
 * const edge = new EdgePublisher({ kafka, registry, topic: 'emotionmuse.frames.v1', userId: 'ana', sessionId: 's1' });
 * await edge.start();
 * await edge.publish({ data: jpeg, encoding: 'JPEG' });
 * await edge.close();
 */
export class EdgePublisher {
  private readonly producer: Producer;
  private readonly buffer: Frame[] = [];
  private readonly waiting: Array<() => void> = [];
  private seq: number;
  private flushing: Promise<void> | undefined;
  private stats = { queued: 0, sent: 0, errors: 0, bytes: 0, largest: 0 };
  private readonly byEncoding: Record<string, number> = {};
  private readonly encoded = new WeakMap<Frame, Buffer>();
  private readonly o: Required<Omit<EdgePublisherOptions, 'kafka' | 'registry' | 'analyzer' | 'token'>> & Pick<EdgePublisherOptions, 'kafka' | 'registry' | 'analyzer' | 'token'>;

  constructor(options: EdgePublisherOptions) {
    this.o = { maxBuffered: 256, batchSize: 64, maxBatchBytes: 768 * 1024, retries: 5, compression: 'auto', firstSeq: 1, ...options };
    this.seq = this.o.firstSeq - 1;
    this.producer = options.kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: this.o.retries } });
  }

  async start(): Promise<void> {
    await this.producer.connect();
  }

  get counters(): PublisherStats {
    return { ...this.stats, buffered: this.buffer.length, byEncoding: { ...this.byEncoding } };
  }

  /**
   * Publishes a camera image at the analyzer's privacy level: the grey face crop, the scores, a
   * no-face marker, or the whole frame. Resolves with the frame's sequence number.
   */
  async capture(image: CameraImage): Promise<number> {
    if (!this.o.analyzer) throw new EmotionMuseError('CONFIG_INVALID', 'EdgePublisher.capture needs an analyzer (the privacy level)');
    const [frame] = await this.o.analyzer.analyze([image]);
    return this.publish(frame!);
  }

  /** Queues a frame; waits while the buffer is full. Resolves with the frame's sequence number. */
  async publish(frame: EdgeFrame): Promise<number> {
    while (this.buffer.length >= this.o.maxBuffered) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    const seq = frame.seq ?? ++this.seq;
    this.seq = Math.max(this.seq, seq);
    const record: Frame = {
      userId: this.o.userId,
      sessionId: this.o.sessionId,
      seq,
      captureTimeMs: frame.captureTimeMs ?? Date.now(),
      encoding: frame.encoding,
      width: frame.width ?? 0,
      height: frame.height ?? 0,
      data: frame.data,
      faceBox: frame.faceBox ?? null,
      probabilities: frame.probabilities ?? [],
      edgeModelVersion: frame.edgeModelVersion ?? '',
    };
    const value = this.o.registry.encode('frame', record);
    this.encoded.set(record, value);
    this.buffer.push(record);
    this.stats.queued++;
    this.stats.bytes += value.length;
    this.stats.largest = Math.max(this.stats.largest, value.length);
    this.byEncoding[record.encoding] = (this.byEncoding[record.encoding] ?? 0) + 1;
    this.kick();
    return seq;
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = this.drain().finally(() => {
      this.flushing = undefined;
      if (this.buffer.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.buffer.length > 0) {
      let take = 0;
      let bytes = 0;
      while (take < this.buffer.length && take < this.o.batchSize) {
        const size = this.encoded.get(this.buffer[take]!)?.length ?? 0;
        if (take > 0 && bytes + size > this.o.maxBatchBytes) break;
        bytes += size;
        take++;
      }
      const batch = this.buffer.splice(0, take);
      for (const w of this.waiting.splice(0)) w();
      try {
        await this.producer.send({
          topic: this.o.topic,
          compression: this.o.compression === true || (this.o.compression === 'auto' && batch.length > 1) ? CompressionTypes.GZIP : CompressionTypes.None,
          acks: -1,
          messages: batch.map((f) => ({ key: f.userId, value: this.encoded.get(f) ?? this.o.registry.encode('frame', f), timestamp: String(f.captureTimeMs), headers: frameTokenHeaders(this.o.token) })),
        });
        this.stats.sent += batch.length;
      } catch (err) {
        this.stats.errors += batch.length;
        this.lastError = new EmotionMuseError('SERVICE_UNAVAILABLE', `could not send ${batch.length} frames after ${this.o.retries} retries: ${errorMessage(err)}`, { retriable: true, cause: err });
      }
    }
  }

  lastError: EmotionMuseError | undefined;

  /** Waits until every queued frame is sent (or counted as an error). */
  async flush(): Promise<void> {
    while (this.flushing || this.buffer.length > 0) {
      this.kick();
      await this.flushing;
    }
  }

  async close(): Promise<void> {
    await this.flush();
    await this.producer.disconnect();
  }
}
