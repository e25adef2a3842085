import kafkajs, { type Kafka, type Producer } from 'kafkajs';
import { EmotionMuseError, errorMessage } from '../schemas/errors.ts';
import type { Frame } from '../schemas/generated/types.ts';
import { frameTokenHeaders } from '../auth/frame-token.ts';
import type { SchemaRegistry } from '../schemas/registry.ts';
import { producerIsBroken } from '../runtime/kafka.ts';
import { ownPartitionTable, sendChecked } from '../runtime/checked-send.ts';

const { CompressionTypes } = kafkajs;

interface Pending {
  readonly value: Buffer;
  readonly frame: Frame;
  readonly token: string | undefined;
  readonly resolve: () => void;
  readonly reject: (err: EmotionMuseError) => void;
}

export interface IngestOptions {
  readonly kafka: Kafka;
  readonly registry: SchemaRegistry;
  /** Full name of the frames topic. */
  readonly topic: string;
  /** Records per produce request at most. @defaultValue 500 */
  readonly maxBatch?: number;
  /** Encoded bytes per request at most (under the broker's message.max.bytes). @defaultValue 768 KiB */
  readonly maxBatchBytes?: number;
  /** Milliseconds a request waits for more frames once the first is queued (the gateway's default: 2; bench/results/gateway.md). @defaultValue 0 */
  readonly lingerMs?: number;
}

/**
 * The gateway's one producer. Frames of every socket go into one queue; while a request is at the
 * broker the next batch gathers, so that the request rate follows the broker's speed rather than
 * the frame rate. A frame's promise resolves when the broker has it (acks from all in-sync
 * replicas), which is when the gateway acks it to the client; it rejects with SERVICE_UNAVAILABLE
 * when the producer gave up on it.
 */
export class Ingest {
  private producer: Producer;
  private queue: Pending[] = [];
  private sending = false;
  private readonly maxBatch: number;
  private readonly maxBatchBytes: number;
  private connected = false;
  /** Frames of many users span partitions: each send's answer is checked (runtime/checked-send.ts). */
  private readonly partitions: ReturnType<typeof ownPartitionTable>;

  constructor(private readonly o: IngestOptions) {
    this.maxBatch = o.maxBatch ?? 500;
    this.maxBatchBytes = o.maxBatchBytes ?? 768 * 1024;
    this.producer = o.kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 5 } });
    this.partitions = ownPartitionTable(o.kafka);
  }

  async start(): Promise<void> {
    await this.producer.connect();
    // The frames topic's partitions, looked up before the first frame (again at a send if this fails).
    await this.partitions.table.of(this.o.topic).catch(() => undefined);
    this.connected = true;
  }

  /** A new producer after one that cannot go on (a broker failed over mid-request). */
  private async reopen(): Promise<void> {
    const broken = this.producer;
    this.producer = this.o.kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 5 } });
    await this.producer.connect().catch(() => undefined);
    void broken.disconnect().catch(() => undefined);
  }

  get ready(): boolean {
    return this.connected;
  }

  /** Frames queued and at the broker. */
  get pending(): number {
    return this.queue.length;
  }

  /** Resolves once the frame is stored in the frames topic. `token`: the socket's bearer token, which travels with the frame (auth/frame-token.ts). */
  submit(frame: Frame, token?: string): Promise<void> {
    const value = this.o.registry.encode('frame', frame);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ value, frame, token, resolve, reject });
      if (this.sending) return;
      this.sending = true;
      if (this.o.lingerMs) setTimeout(() => void this.drain(), this.o.lingerMs);
      else void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        let take = 0;
        let bytes = 0;
        while (take < this.queue.length && take < this.maxBatch) {
          const size = this.queue[take]!.value.length;
          if (take > 0 && bytes + size > this.maxBatchBytes) break;
          bytes += size;
          take++;
        }
        const batch = this.queue.splice(0, take);
        try {
          await sendChecked(
            this.producer,
            this.partitions.table,
            [{ topic: this.o.topic, messages: batch.map((p) => ({ key: p.frame.userId, value: p.value, timestamp: String(Math.round(p.frame.captureTimeMs)), headers: frameTokenHeaders(p.token) })) }],
            // Crops and scores are small; a batch of many compresses well, one alone is not worth it.
            { acks: -1, compression: batch.length > 8 ? CompressionTypes.GZIP : CompressionTypes.None, maxBytes: this.maxBatchBytes },
          );
          for (const p of batch) p.resolve();
        } catch (err) {
          const e = new EmotionMuseError('SERVICE_UNAVAILABLE', `Kafka did not take the frame: ${errorMessage(err)}`, { retriable: true, cause: err });
          for (const p of batch) p.reject(e);
          if (producerIsBroken(err)) await this.reopen();
        }
      }
    } finally {
      this.sending = false;
    }
  }

  async close(): Promise<void> {
    while (this.sending || this.queue.length > 0) await new Promise((r) => setTimeout(r, 10));
    if (this.connected) await this.producer.disconnect();
    await this.partitions.close();
    this.connected = false;
  }
}
