import type { Batch, Producer } from 'kafkajs';
import type { Prepared } from './batch-step.ts';
import type { Chunk, Inbox } from './inbox.ts';

/** A batch taken ahead of its turn, and its preparation (a rejection is handled, and thrown again in its turn). */
export interface Ahead {
  readonly batch: Chunk[];
  readonly ready: Promise<Prepared>;
}

/**
 * One task per input partition number: its producer, key state, input positions, and the records
 * fetched for it. Its worker processes the inbox one batch at a time, in order.
 */
export interface Task<S> {
  readonly partition: number;
  /** Exactly-once: the task's transactional producer. */
  readonly producer: Producer | undefined;
  readonly state: Map<string, S>;
  /** Next input offset whose processing is done (committed, or acknowledged under at-least-once), per topic name. */
  readonly positions: Map<string, bigint>;
  /** Next input offset to hand to the worker, per topic name: records below it are in the inbox or done. */
  readonly fetched: Map<string, bigint>;
  /** After a reset, the offset the consumer was sent back to: batches fetched from beyond it are stale. */
  readonly seeking: Map<string, bigint>;
  readonly inbox: Inbox;
  /** Batches taken from the inbox whose `prepare` already runs (cores with prepareAhead), oldest first. */
  readonly ahead: Ahead[];
  worker: Promise<void> | undefined;
  paused: boolean;
  /** At-least-once: positions not yet committed to the group. */
  dirty: boolean;
  /** At-least-once: state changes not yet written to the changelog (written before each offset commit). */
  readonly unflushed: Map<string, S | undefined>;
  /** At-least-once: settles when every batch handed to the producer is acknowledged (or the task reset). */
  acked: Promise<void>;
  closed: boolean;
}

/** Stops a task's work: nothing more is taken from its inbox. */
export function closeTaskWork(task: Task<unknown>): void {
  task.closed = true;
  task.inbox.clear();
  task.ahead.length = 0;
}

/**
 * What a fetched batch brings the task: the records not yet handed to its worker, how many were
 * committed by a previous owner, and the offset to commit past once they are done. A batch fetched
 * from beyond the offset a reset sent the consumer back to is stale (null).
 */
export function admit(task: Task<unknown>, batch: Batch): { fresh: Batch['messages']; already: number; last: bigint; position: bigint } | null {
  const seek = task.seeking.get(batch.topic);
  if (seek !== undefined) {
    // kafkajs keeps the offset a batch was fetched from, though its types do not say so.
    if (BigInt((batch as unknown as { fetchedOffset: string }).fetchedOffset) > seek) return null;
    task.seeking.delete(batch.topic);
  }
  const position = task.positions.get(batch.topic) ?? 0n;
  const from = task.fetched.get(batch.topic) ?? position;
  const fresh = batch.messages.filter((m) => BigInt(m.offset) >= from);
  const already = batch.messages.filter((m) => BigInt(m.offset) < position).length;
  // The batch's last offset can lie past its last record (transaction markers, aborted
  // records): committing past them leaves no phantom lag behind.
  const last = BigInt(batch.lastOffset());
  if (last + 1n > from) task.fetched.set(batch.topic, last + 1n);
  return { fresh, already, last, position };
}
