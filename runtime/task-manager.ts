import type { Admin, Consumer, Kafka } from 'kafkajs';
import { errorMessage, EmotionMuseError } from '../schemas/errors.ts';
import { restoreChangelog } from './changelog.ts';
import type { CommitProtocol } from './commit-protocol.ts';
import { Inbox, type InboxLimits } from './inbox.ts';
import { KeyState } from './key-state.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { Input } from './records.ts';
import { closeTaskWork, type Task } from './task.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface TaskManagerOptions<S> {
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly consumer: Consumer;
  readonly protocol: CommitProtocol<S>;
  readonly inputs: readonly Input[];
  readonly changelog: string | undefined;
  readonly groupId: string;
  readonly stage: string;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly limits: InboxLimits & { readonly stallTimeoutMs: number; readonly maxBatchRetries: number; readonly restoreTimeoutMs: number };
  /** The partition was paused for its backlog: resume it. */
  resume(task: Task<S>): void;
  stopping(): boolean;
  /** A batch failed more often than maxBatchRetries: the processor stops. */
  crash(err: Error): void;
}

/**
 * The tasks of the assigned partitions: their start (fencing through the commit protocol, the
 * changelog restored, the committed offsets found), their close on revocation, and their reset
 * after a failed batch, with a backoff per partition that also says when a partition is stalled.
 */
export class TaskManager<S> {
  private readonly tasks = new Map<number, Promise<Task<S>>>();
  private assigned = new Set<number>();
  /** Partitions whose task has restored its state and found its offsets. */
  private readonly initialized = new Set<number>();
  /** Per partition: failed attempts since its last committed batch, and when the first failed. */
  private readonly failures = new Map<number, { count: number; since: number }>();

  constructor(private readonly o: TaskManagerOptions<S>) {}

  all(): Array<Promise<Task<S>>> {
    return [...this.tasks.values()];
  }

  clear(): void {
    this.tasks.clear();
  }

  /** Assigned partitions whose task is not ready yet. */
  starting(): number[] {
    return [...this.assigned].filter((p) => !this.initialized.has(p));
  }

  /** Partitions whose batches have failed for longer than the stall timeout. */
  stalled(now = Date.now()): number[] {
    return [...this.failures].filter(([, f]) => now - f.since >= this.o.limits.stallTimeoutMs).map(([p]) => p);
  }

  /** A batch of the partition failed and is tried again: the stall timer runs from its first failure. */
  failing(partition: number): void {
    if (!this.failures.has(partition)) this.failures.set(partition, { count: 0, since: Date.now() });
    this.o.metrics.partitionsStalled.set({ stage: this.o.stage }, this.stalled().length);
  }

  /** A batch of the partition committed: it is no longer failing. */
  succeeded(partition: number): void {
    if (this.failures.delete(partition)) this.o.metrics.partitionsStalled.set({ stage: this.o.stage }, this.stalled().length);
  }

  /** A new assignment: the tasks of revoked partitions close, those of new ones start. */
  assign(next: Set<number>): void {
    for (const partition of this.assigned) if (!next.has(partition)) void this.close(partition, 'revoked');
    this.assigned = next;
    this.o.metrics.assignedPartitions.set({ stage: this.o.stage }, next.size * this.o.inputs.length);
    for (const partition of next) void this.task(partition).catch(() => undefined);
    this.o.logger.info('partitions assigned', { partitions: [...next].sort((a, b) => a - b) });
  }

  /** The partition's task; `resetAfterMs`: a task that starts over after a failed batch, after that long. */
  task(partition: number, resetAfterMs?: number): Promise<Task<S>> {
    let pending = this.tasks.get(partition);
    if (pending) return pending;
    pending = resetAfterMs !== undefined ? sleep(resetAfterMs).then(() => this.init(partition, true)) : this.init(partition, false);
    // (a task starting over after a failed batch stays ready: the stall timeout says when it is not)
    if (resetAfterMs === undefined) this.initialized.delete(partition);
    const started = pending;
    pending.then(() => {
      if (this.tasks.get(partition) === started) this.initialized.add(partition);
    }, () => undefined);
    pending.catch((err: unknown) => {
      if (this.tasks.get(partition) !== started) return;
      this.tasks.delete(partition);
      if (this.o.stopping() || !this.assigned.has(partition)) return;
      // Start over (with a seek to the committed offsets: records fetched meanwhile were not
      // processed), after a backoff that grows with each failure of this partition.
      const { count, backoffMs } = this.failed(partition);
      this.o.logger.warn('task init failed; trying again', { partition, attempt: count, backoffMs, error: errorMessage(err) });
      void this.task(partition, backoffMs).catch(() => undefined);
    });
    this.tasks.set(partition, pending);
    return pending;
  }

  private async init(partition: number, reset: boolean): Promise<Task<S>> {
    const producer = await this.o.protocol.openTask(partition);
    let state: KeyState<S>;
    const positions = new Map<string, bigint>();
    try {
      const started = performance.now();
      state = KeyState.of(this.o.changelog
        ? await restoreChangelog<S>({ kafka: this.o.kafka, admin: this.o.admin, topic: this.o.changelog, partition, groupId: this.o.groupId, timeoutMs: this.o.limits.restoreTimeoutMs })
        : []);
      if (this.o.changelog) this.o.metrics.stateRestoreSeconds.observe({ stage: this.o.stage }, (performance.now() - started) / 1000);
      const committed = await this.o.admin.fetchOffsets({ groupId: this.o.groupId, topics: this.o.inputs.map((i) => i.name) });
      for (const t of committed) {
        const offset = BigInt(t.partitions.find((p) => p.partition === partition)?.offset ?? '-1');
        positions.set(t.topic, offset < 0n ? 0n : offset);
      }
    } catch (err) {
      await producer?.disconnect().catch(() => undefined);
      throw err;
    }
    const task: Task<S> = {
      partition, producer, state, positions, fetched: new Map(positions), seeking: new Map(), inbox: new Inbox(this.o.limits), ahead: [],
      worker: undefined, paused: false, dirty: false, unflushed: new Map(), acked: Promise.resolve(), closed: false,
    };
    if (reset) {
      // The consumer fetched ahead of what was processed: send it back to the committed offsets,
      // and drop whatever it had already fetched from further on.
      for (const [topic, offset] of positions) {
        task.seeking.set(topic, offset);
        this.o.consumer.seek({ topic, partition, offset: offset.toString() });
      }
    }
    this.o.logger.info('task ready', { partition, keys: state.size, positions: Object.fromEntries([...positions].map(([k, v]) => [k, v.toString()])) });
    return task;
  }

  /**
   * Stops a task after its batch in flight. Under at-least-once its last positions are not
   * committed here: the group has moved on, and the new owner starts from the last commit.
   */
  async close(partition: number, why: string): Promise<void> {
    const pending = this.tasks.get(partition);
    if (!pending) return;
    this.tasks.delete(partition);
    const task = await pending.catch(() => undefined);
    if (!task) return;
    closeTaskWork(task);
    await task.worker?.catch(() => undefined);
    await task.acked;
    if (task.paused) this.o.resume(task);
    await task.producer?.disconnect().catch(() => undefined);
    this.o.logger.info('task closed', { partition, why });
  }

  /**
   * After a failed commit (or a fenced producer) the task starts over from what was committed: a
   * new task restores the state and sends the consumer back to the committed offsets.
   */
  async reset(task: Task<S>, err: unknown): Promise<void> {
    if (task.closed) return;
    closeTaskWork(task);
    if (task.paused) this.o.resume(task);
    this.o.metrics.transactionsAborted.inc({ stage: this.o.stage });
    const partition = task.partition;
    await task.producer?.disconnect().catch(() => undefined);
    const pending = this.tasks.get(partition);
    if (!pending || (await pending.catch(() => undefined)) !== task) return;
    this.tasks.delete(partition);
    if (this.o.stopping() || !this.assigned.has(partition)) return;
    const { count, backoffMs } = this.failed(partition);
    const max = this.o.limits.maxBatchRetries;
    if (max > 0 && count > max) {
      this.o.logger.error('a batch failed too many times; stopping the processor', { partition, attempts: count, error: errorMessage(err) });
      this.o.crash(new EmotionMuseError('PROCESSING_FAILED', `partition ${partition}: a batch failed ${count} times: ${errorMessage(err)}`));
      return;
    }
    this.o.logger.warn('batch could not be committed; the task starts over from its committed offsets', { partition, attempt: count, backoffMs, error: errorMessage(err) });
    // In the map at once, so that records fetched meanwhile wait for the reset task (and its seek).
    await this.task(partition, backoffMs).catch(() => undefined);
  }

  /** Counts a failure of the partition (a batch or a task start); the backoff before its next try: 200 ms doubling to 30 s. */
  private failed(partition: number): { count: number; backoffMs: number } {
    const f = this.failures.get(partition) ?? { count: 0, since: Date.now() };
    f.count++;
    this.failures.set(partition, f);
    this.o.metrics.partitionsStalled.set({ stage: this.o.stage }, this.stalled().length);
    return { count: f.count, backoffMs: Math.min(30_000, 200 * 2 ** Math.min(f.count - 1, 8)) };
  }
}
