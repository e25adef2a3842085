import type { KafkaMessage } from 'kafkajs';
import type { Input } from './records.ts';

/** Fetched records of one input topic waiting for the task's worker. */
export interface Chunk {
  readonly input: Input;
  messages: KafkaMessage[];
  /** The offset to commit past once the whole chunk is processed (past trailing transaction markers). */
  readonly last: bigint;
  /** When the fetch loop handed it over (performance.now()). */
  readonly fetchedAt: number;
}

export interface InboxLimits {
  /** Most input records in one batch. */
  readonly maxBatchRecords: number;
  /** Pause the partition while this many records wait. */
  readonly maxBacklog: number;
  /** Pause the partition while the waiting records hold more value bytes than this. */
  readonly maxBacklogBytes: number;
}

export function valueBytes(messages: ReadonlyArray<{ value: Buffer | null }>): number {
  let n = 0;
  for (const m of messages) n += m.value?.length ?? 0;
  return n;
}

export const recordCount = (batch: readonly Chunk[]): number => batch.reduce((n, c) => n + c.messages.length, 0);

/**
 * The records fetched for one task and not yet processed, in arrival order across its input
 * topics, and the backlog they make: the task's partition pauses when too many records or bytes
 * wait, and resumes once half of each has been processed.
 */
export class Inbox {
  private readonly chunks: Chunk[] = [];
  /** Records taken or waiting, not yet done. */
  private waiting = 0;
  private waitingBytes = 0;

  constructor(private readonly limits: InboxLimits) {}

  get length(): number {
    return this.chunks.length;
  }

  /** Adds fetched records; true when the backlog is now over a limit (the partition should pause). */
  push(chunk: Chunk): boolean {
    this.chunks.push(chunk);
    this.waiting += chunk.messages.length;
    this.waitingBytes += valueBytes(chunk.messages);
    return this.waiting > this.limits.maxBacklog || this.waitingBytes > this.limits.maxBacklogBytes;
  }

  /** Up to maxBatchRecords records from the head, across input topics, in arrival order. */
  take(): Chunk[] {
    const out: Chunk[] = [];
    let room = this.limits.maxBatchRecords;
    while (room > 0 && this.chunks.length > 0) {
      const head = this.chunks[0]!;
      if (head.messages.length <= room) {
        out.push(head);
        this.chunks.shift();
        room -= head.messages.length;
      } else {
        const part = head.messages.slice(0, room);
        out.push({ input: head.input, messages: part, last: BigInt(part[part.length - 1]!.offset), fetchedAt: head.fetchedAt });
        head.messages = head.messages.slice(room);
        room = 0;
      }
    }
    return out;
  }

  /** A taken batch is done; true when the backlog is down to half of both limits (a paused partition may resume). */
  done(batch: readonly Chunk[]): boolean {
    this.waiting -= recordCount(batch);
    this.waitingBytes -= batch.reduce((n, c) => n + valueBytes(c.messages), 0);
    return this.waiting <= this.limits.maxBacklog / 2 && this.waitingBytes <= this.limits.maxBacklogBytes / 2;
  }

  /** Drops whatever waits (a closed or reset task: the next owner fetches it again). */
  clear(): void {
    this.chunks.length = 0;
  }
}
