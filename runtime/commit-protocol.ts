import type { Consumer, Kafka, Message, Producer, TopicMessages } from 'kafkajs';
import { errorMessage } from '../schemas/errors.ts';
import type { Guarantee } from '../topology/topology.ts';
import { applyStaged, type StepOutcome } from './batch-step.ts';
import { changelogMessages } from './changelog.ts';
import { coalesce } from './coalesce.ts';
import { producerIsBroken } from './kafka.ts';
import type { Logger } from './log.ts';
import { sendChecked, type PartitionTable } from './checked-send.ts';
import { mergeByTopic, topicMessagesOf } from './produce.ts';
import type { Task } from './task.ts';

/** A failure of the producing or committing step: the task is reset from its committed offsets. */
export class CommitFailed extends Error {}

/**
 * How a processed batch becomes durable: the processor's guarantee, chosen once. `commit` writes
 * a batch's outputs, dead letters and state changes, moves the task's state on, and calls `done`
 * once the batch counts as processed.
 */
export interface CommitProtocol<S> {
  readonly guarantee: Guarantee;
  start(): Promise<void>;
  /** The task's own producer (exactly-once: transactional, and fencing the partition's previous owner). */
  openTask(partition: number): Promise<Producer | undefined>;
  commit(task: Task<S>, outcome: StepOutcome<S>, done: () => void): Promise<void>;
  /** On stop, after every task's batch in flight: the last commit. */
  stop(): Promise<void>;
}

export interface ProtocolContext<S> {
  readonly kafka: Kafka;
  readonly consumer: Consumer;
  readonly logger: Logger;
  readonly groupId: string;
  /** The state changelog's topic name, for stateful processors. */
  readonly changelog: string | undefined;
  readonly commitIntervalMs: number;
  /** Every send's answer is checked against its records' partitions (runtime/checked-send.ts says why). */
  readonly partitions: PartitionTable;
  /** The tasks whose positions an interval commit takes. */
  tasks(): ReadonlyArray<Promise<Task<S>>>;
  /** At-least-once: a batch's send failed after the batch moved on; the task starts over. */
  failed(task: Task<S>, err: unknown): void;
  stopping(): boolean;
}

export function commitProtocol<S>(guarantee: Guarantee, ctx: ProtocolContext<S>): CommitProtocol<S> {
  return guarantee === 'exactly-once' ? new ExactlyOnce(ctx) : new AtLeastOnce(ctx);
}

/**
 * Outputs, state changes and the input offsets in one Kafka transaction per batch (downstream
 * readers use read_committed). Each input partition number is a task with its own transactional
 * id (`<group>.task-<n>`), as in Kafka Streams' first exactly-once mode: whoever takes over a
 * partition initialises that id, which fences the previous owner and settles its open transaction
 * before the new owner reads the committed offsets and restores the task's state.
 */
class ExactlyOnce<S> implements CommitProtocol<S> {
  readonly guarantee = 'exactly-once' as const;
  constructor(private readonly ctx: ProtocolContext<S>) {}

  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  async openTask(partition: number): Promise<Producer> {
    const producer = this.ctx.kafka.producer({
      transactionalId: `${this.ctx.groupId}.task-${partition}`,
      transactionTimeout: 30_000,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // Right after a commit the coordinator answers CONCURRENT_TRANSACTIONS until its markers
      // are written (a few ms): retry at once and then quickly, instead of kafkajs's 300 ms.
      retry: { initialRetryTime: 1, maxRetryTime: 500, multiplier: 1.5, retries: 30 },
    });
    await producer.connect();
    // Initialising the transactional id fences a previous owner and settles its open
    // transaction, so the committed offsets and the changelog read after this are final.
    const fence = await producer.transaction();
    await fence.abort();
    return producer;
  }

  async commit(task: Task<S>, outcome: StepOutcome<S>, done: () => void): Promise<void> {
    const topicMessages = topicMessagesOf(outcome.out);
    if (this.ctx.changelog && outcome.staged.size > 0) topicMessages.push({ topic: this.ctx.changelog, messages: changelogMessages(task.partition, outcome.staged) });
    const txn = await task.producer!.transaction().catch((err: unknown) => {
      throw new CommitFailed(errorMessage(err), { cause: err });
    });
    try {
      await sendChecked(txn, this.ctx.partitions, topicMessages, { transactional: true, onMended: (m) => this.ctx.logger.warn('kafkajs left partitions of a send unwritten; sent them again', { partition: task.partition, ...m }) });
      await txn.sendOffsets({
        consumerGroupId: this.ctx.groupId,
        topics: [...outcome.next].map(([topic, offset]) => ({ topic, partitions: [{ partition: task.partition, offset: offset.toString() }] })),
      });
      await txn.commit();
    } catch (err) {
      this.ctx.logger.warn('transaction failed; the batch will be processed again from the committed offsets', { partition: task.partition, error: errorMessage(err) });
      await txn.abort().catch(() => undefined);
      throw new CommitFailed(errorMessage(err), { cause: err });
    }
    applyStaged(task.state, outcome.staged);
    done();
  }
}

/**
 * One idempotent producer per process writes the outputs of every task (the sends of tasks that
 * finish together in one request). Every commitIntervalMs the state changes since the last time
 * go to the changelog and then the processed offsets are committed, so the stored state is never
 * behind the committed offsets. After a crash the records since the last commit are processed
 * again: a stateful core drops those its state has seen, and the consumers of the outputs see the
 * repeats of the records the state had not seen. Nothing is lost, and no transaction sits between
 * a record and its output.
 */
class AtLeastOnce<S> implements CommitProtocol<S> {
  readonly guarantee = 'at-least-once' as const;
  private producer: Producer | undefined;
  private send: ((topicMessages: readonly TopicMessages[]) => Promise<void[]>) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The flush and commit in progress, if any. */
  private committing: Promise<void> | undefined;

  constructor(private readonly ctx: ProtocolContext<S>) {}

  async start(): Promise<void> {
    const open = async () => {
      const producer = this.ctx.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
      await producer.connect();
      return producer;
    };
    this.producer = await open();
    this.send = coalesce(async (topicMessages: TopicMessages[]) => {
      try {
        await sendChecked(this.producer!, this.ctx.partitions, mergeByTopic(topicMessages), { onMended: (m) => this.ctx.logger.warn('kafkajs left partitions of a send unwritten or wrote them twice; the unwritten ones were sent again', m) });
      } catch (err) {
        if (producerIsBroken(err) && !this.ctx.stopping()) {
          // The batches fail and start over from their committed offsets; they go out again
          // through a new producer (a record the broker had may be sent twice: at least once).
          this.ctx.logger.warn('the producer cannot go on (a broker failed over mid-request); opening a new one', { error: errorMessage(err) });
          const broken = this.producer!;
          this.producer = await open();
          void broken.disconnect().catch(() => undefined);
        }
        throw err;
      }
      return topicMessages.map(() => undefined);
    }, 10_000);
    this.timer = setInterval(() => void this.commitProcessed(), this.ctx.commitIntervalMs);
    this.timer.unref();
  }

  async openTask(): Promise<undefined> {
    return undefined;
  }

  /**
   * The next batch need not wait for this one's acknowledgement: its state is used at once; the
   * positions and the state to flush move on only when the outputs are acknowledged (in order),
   * so a flush never stores state whose outputs could still be lost.
   */
  async commit(task: Task<S>, outcome: StepOutcome<S>, done: () => void): Promise<void> {
    const sent = outcome.out.size > 0 ? this.send!(topicMessagesOf(outcome.out)) : undefined;
    applyStaged(task.state, outcome.staged);
    task.acked = task.acked
      .then(() => sent)
      .then(() => {
        if (this.ctx.changelog) for (const [key, value] of outcome.staged) task.unflushed.set(key, value);
        done();
      })
      .catch((err: unknown) => this.ctx.failed(task, err));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.committing;
    await this.commitProcessed(true);
    await this.producer?.disconnect().catch(() => undefined);
  }

  private async commitProcessed(last = false): Promise<void> {
    if (this.committing || (!last && this.ctx.stopping())) return;
    this.committing = this.flushAndCommit(this.ctx.tasks()).finally(() => (this.committing = undefined));
    await this.committing;
  }

  /** Every task's state changes to the changelog, then every task's processed positions, in one request each. */
  private async flushAndCommit(pending: ReadonlyArray<Promise<Task<S>>>): Promise<void> {
    const tasks = (await Promise.all(pending.map((t) => t.catch(() => undefined)))).filter((t): t is Task<S> => t !== undefined && !t.closed && t.dirty);
    if (tasks.length === 0) return;
    const offsets = tasks.flatMap((task) => [...task.positions].map(([topic, offset]) => ({ topic, partition: task.partition, offset: offset.toString() })));
    // Positions and changes are taken together, so the state stored is never behind the offsets committed.
    const changes = tasks.map((task) => ({ task, changes: new Map(task.unflushed) }));
    for (const task of tasks) {
      task.dirty = false;
      task.unflushed.clear();
    }
    try {
      const messages: Message[] = changes.flatMap(({ task, changes }) => changelogMessages(task.partition, changes));
      if (this.ctx.changelog && messages.length > 0) await this.send!([{ topic: this.ctx.changelog, messages }]);
      await this.ctx.consumer.commitOffsets(offsets);
    } catch (err) {
      for (const { task, changes: taken } of changes) {
        task.dirty = true;
        for (const [key, value] of taken) if (!task.unflushed.has(key)) task.unflushed.set(key, value);
      }
      this.ctx.logger.warn('state flush or offset commit failed; retried at the next interval', { error: errorMessage(err) });
    }
  }
}
