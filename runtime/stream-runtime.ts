import { createHash, randomUUID } from 'node:crypto';
import kafkajs, { type Admin, type Consumer, type EachBatchPayload, type Kafka, type KafkaMessage, type Message, type Producer, type TopicMessages } from 'kafkajs';
import { SchemaRegistry } from '../schemas/registry.ts';
import type { MessageKind } from '../schemas/kinds.ts';
import { changelogTopic, topicSpec, type Guarantee, type ProcessorSpec, type TopicId, type TopicSpec, type Topology } from '../topology/topology.ts';
import { waitForLeaders } from '../topology/apply.ts';
import { producerIsBroken } from './kafka.ts';
import { coalesce } from './coalesce.ts';
import { errorMessage, EmotionMuseError, type ErrorCode } from '../schemas/errors.ts';
import { checkRecord } from '../schemas/validate.ts';
import { decideFailure } from './failure-policy.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { InputRecord, OutputRecord, ProcessorCore } from './processor.ts';

export interface RuntimeOptions<S> {
  readonly kafka: Kafka;
  readonly topology: Topology;
  readonly spec: ProcessorSpec;
  readonly core: ProcessorCore<S>;
  readonly registry: SchemaRegistry;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Consumer group; also the prefix of the per-task transactional ids. */
  readonly groupId: string;
  /** Overrides the processor's guarantee in the topology. @defaultValue spec.guarantee */
  readonly guarantee?: Guarantee;
  /** Most input records in one batch (one transaction under exactly-once). @defaultValue 500 */
  readonly maxBatchRecords?: number;
  /** At-least-once: how often the processed offsets are committed. @defaultValue 100 */
  readonly commitIntervalMs?: number;
  /** @defaultValue 10000 */
  readonly sessionTimeoutMs?: number;
  /** The broker answers a fetch once this many bytes wait (or fetchMaxWaitMs has passed). @defaultValue 1 */
  readonly fetchMinBytes?: number;
  /** @defaultValue 100 */
  readonly fetchMaxWaitMs?: number;
  /** Pause a partition while this many of its records wait (fetched, not yet processed). @defaultValue 1000 */
  readonly maxBacklog?: number;
  /** Pause a partition while its fetched, waiting records hold more value bytes than this. @defaultValue 4 MiB */
  readonly maxBacklogBytes?: number;
  /**
   * Input records larger than this are dead-lettered with OVERSIZED_RECORD. A topic's
   * max.message.bytes bounds a compressed batch, not a record in it, so a record can be larger
   * than the topic's limit. @defaultValue 4 MiB
   */
  readonly maxRecordBytes?: number;
  /**
   * A dead letter keeps at most this much of the value (the rest is summed up by its size and
   * SHA-256), and less when the dead-letter topic's max.message.bytes, read at start, needs it.
   * @defaultValue 256 KiB
   */
  readonly maxDeadLetterValueBytes?: number;
  /** A partition whose batches have failed for this long is stalled: /readyz fails and the gauge says so. @defaultValue 30000 */
  readonly stallTimeoutMs?: number;
  /** Failed attempts of one batch before the processor stops (0: retry for ever, with backoff). @defaultValue 0 */
  readonly maxBatchRetries?: number;
  /** A changelog restore that has not reached the end after this long fails (and is retried). @defaultValue 120000 */
  readonly restoreTimeoutMs?: number;
}

/** An input topic, and where its dead letters go (frames' to a topic that keeps them no longer than frames). */
type Input = { readonly id: TopicId; readonly name: string; readonly kind: MessageKind; readonly deadLetters: string };

/** Fetched records of one input topic waiting for the task's worker. */
interface Chunk {
  readonly input: Input;
  messages: KafkaMessage[];
  /** The offset to commit past once the whole chunk is processed (past trailing transaction markers). */
  readonly last: bigint;
  /** When the fetch loop handed it over (performance.now()). */
  readonly fetchedAt: number;
}

/**
 * One task per input partition number: its producer, key state, input positions, and the records
 * fetched for it. Its worker processes the inbox one batch at a time, in order.
 */
interface Task<S> {
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
  readonly inbox: Chunk[];
  /** Batches taken from the inbox whose `prepare` already runs (cores with prepareAhead), oldest first. */
  readonly ahead: Ahead[];
  waiting: number;
  /** Value bytes of the waiting records: a partition of full camera frames pauses on these first. */
  waitingBytes: number;
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

type Decoded = { ok: true; record: InputRecord } | { ok: false; message: KafkaMessage; code: ErrorCode; error: string };

/** A batch decoded and through the core's `prepare`, ready for `process` in order. */
interface Prepared {
  readonly started: number;
  readonly decoded: ReadonlyArray<{ input: Input; message: KafkaMessage; d: Decoded }>;
  readonly prepared: ReadonlyArray<unknown> | undefined;
}

/** A batch taken ahead of its turn, and its preparation (a rejection is handled, and thrown again in its turn). */
interface Ahead {
  readonly batch: Chunk[];
  readonly ready: Promise<Prepared>;
}

/** A failure of the producing or committing step: the task is reset from its committed offsets. */
class CommitFailed extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The thin Kafka adapter under every processor. kafkajs's fetch loop only hands records to
 * per-partition tasks; each task's worker takes whatever has arrived (up to maxBatchRecords),
 * calls the core, and produces the outputs, state changes and dead letters while the next records
 * are already being fetched. How a batch is committed is the processor's guarantee:
 *
 * - `exactly-once`: outputs, state changes and the input offsets in one Kafka transaction per
 *   batch (downstream readers use read_committed). Each input partition number is a task with its
 *   own transactional id (`<group>.task-<n>`), as in Kafka Streams' first exactly-once mode:
 *   whoever takes over a partition initialises that id, which fences the previous owner and
 *   settles its open transaction before the new owner reads the committed offsets and restores the
 *   task's state from the changelog.
 * - `at-least-once`: one idempotent producer per process writes the outputs of every task (the
 *   sends of tasks that finish together in one request). Every commitIntervalMs the state changes
 *   since the last time go to the changelog and then the processed offsets are committed, so the
 *   stored state is never behind the committed offsets. After a crash the records since the last
 *   commit are processed again: a stateful core must drop those its state has seen (the smoother
 *   and the pass-through drop a sequence number they have seen), and the consumers of the outputs
 *   see the repeats of the records the state had not seen. Nothing is lost, and no transaction
 *   sits between a record and its output.
 */
export class StreamRuntime<S> {
  private readonly o: RuntimeOptions<S> & Required<Pick<RuntimeOptions<S>, 'maxBatchRecords' | 'commitIntervalMs' | 'sessionTimeoutMs' | 'maxBacklog' | 'maxBacklogBytes' | 'maxRecordBytes' | 'maxDeadLetterValueBytes' | 'stallTimeoutMs' | 'maxBatchRetries' | 'restoreTimeoutMs'>>;
  readonly guarantee: Guarantee;
  private readonly inputs: readonly Input[];
  private readonly changelog: string | undefined;
  private readonly changelogSpec: TopicSpec | undefined;
  private readonly consumer: Consumer;
  private readonly admin: Admin;
  private readonly tasks = new Map<number, Promise<Task<S>>>();
  private assigned = new Set<number>();
  private joined = false;
  private running = false;
  private stopping = false;
  private committer: NodeJS.Timeout | undefined;
  /** At-least-once: the flush and commit in progress, if any. */
  private committing: Promise<void> | undefined;
  /** At-least-once: the process's idempotent producer, and its sends merged across tasks. */
  private producer: Producer | undefined;
  private send: ((topicMessages: readonly TopicMessages[]) => Promise<void[]>) | undefined;
  private readonly abort = new AbortController();
  private readonly stage: string;
  private crashed: ((err: Error) => void) | undefined;
  /** Set at start from the dead-letter topic's limit. */
  private deadLetterValueMax: number;
  /** Per partition: failed attempts since its last committed batch, and when the first failed. */
  private readonly failures = new Map<number, { count: number; since: number }>();
  /** Partitions whose task has restored its state and found its offsets. */
  private readonly initialized = new Set<number>();

  constructor(options: RuntimeOptions<S>) {
    this.o = {
      maxBatchRecords: 500,
      commitIntervalMs: 100,
      sessionTimeoutMs: 10_000,
      maxBacklog: 1000,
      maxBacklogBytes: 4 * 1024 * 1024,
      maxRecordBytes: 4 * 1024 * 1024,
      maxDeadLetterValueBytes: 256 * 1024,
      stallTimeoutMs: 30_000,
      maxBatchRetries: 0,
      restoreTimeoutMs: 120_000,
      ...options,
    };
    this.deadLetterValueMax = this.o.maxDeadLetterValueBytes;
    this.guarantee = options.guarantee ?? options.spec.guarantee;
    this.stage = options.core.name;
    this.inputs = options.spec.inputs.map((id) => {
      const spec = topicSpec(options.topology, id);
      if (spec.valueKind === 'state') throw new Error(`input ${id} is not a message topic`);
      return { id, name: spec.name, kind: spec.valueKind, deadLetters: topicSpec(options.topology, spec.valueKind === 'frame' ? 'dead-letter-frames' : 'dead-letter').name };
    });
    this.changelogSpec = options.spec.stateful ? changelogTopic(options.topology, options.spec, options.core.stateVersion) : undefined;
    this.changelog = this.changelogSpec?.name;
    this.admin = options.kafka.admin();
    this.consumer = options.kafka.consumer({
      groupId: options.groupId,
      readUncommitted: false,
      sessionTimeout: this.o.sessionTimeoutMs,
      heartbeatInterval: Math.max(500, Math.floor(this.o.sessionTimeoutMs / 5)),
      rebalanceTimeout: Math.max(this.o.sessionTimeoutMs, 20_000),
      allowAutoTopicCreation: false,
      minBytes: options.fetchMinBytes ?? 1,
      maxWaitTimeInMs: options.fetchMaxWaitMs ?? 100,
      // kafkajs restarts a crashed consumer by itself; never once this runtime is stopping.
      retry: { restartOnFailure: async () => !this.stopping },
    });
  }

  /** Joins the group and starts processing; resolves once the consumer runs. `onCrash` is called if it stops for good. */
  async start(onCrash?: (err: Error) => void): Promise<void> {
    this.crashed = onCrash;
    const { consumer, metrics } = this;
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      this.joined = true;
      metrics.rebalances.inc({ stage: this.stage });
      const assignment = e.payload.memberAssignment as Record<string, number[]>;
      const next = new Set<number>();
      for (const input of this.inputs) for (const p of assignment[input.name] ?? []) next.add(p);
      this.onAssignment(next);
    });
    consumer.on(consumer.events.CRASH, (e) => {
      const err = e.payload.error;
      this.o.logger.error('consumer crashed', { error: errorMessage(err), restart: e.payload.restart });
      if (!e.payload.restart && !this.stopping) this.crashed?.(err);
    });
    metrics.partitionsStalled.set({ stage: this.stage }, 0);
    await this.admin.connect();
    await this.readLimits();
    await this.ensureChangelog();
    if (this.stopping) return;
    if (this.guarantee === 'at-least-once') {
      const open = async () => {
        const producer = this.o.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
        await producer.connect();
        return producer;
      };
      this.producer = await open();
      this.send = coalesce(async (topicMessages: TopicMessages[]) => {
        try {
          // In requests under the broker's limit: one too large is refused, and the idempotent
          // producer cannot go on after it (its sequence numbers no longer match).
          for (const part of splitBySize(mergeByTopic(topicMessages), REQUEST_BYTES)) await this.producer!.sendBatch({ topicMessages: part, acks: -1 });
        } catch (err) {
          if (producerIsBroken(err) && !this.stopping) {
            // The batches fail and start over from their committed offsets; they go out again
            // through a new producer (a record the broker had may be sent twice: at least once).
            this.o.logger.warn('the producer cannot go on (a broker failed over mid-request); opening a new one', { error: errorMessage(err) });
            const broken = this.producer!;
            this.producer = await open();
            void broken.disconnect().catch(() => undefined);
          }
          throw err;
        }
        return topicMessages.map(() => undefined);
      }, 10_000);
    }
    await consumer.connect();
    for (const input of this.inputs) await consumer.subscribe({ topic: input.name, fromBeginning: true });
    if (this.stopping) return;
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.onBatch(payload),
    });
    this.running = true;
    if (this.guarantee === 'at-least-once') {
      this.committer = setInterval(() => void this.commitProcessed(), this.o.commitIntervalMs);
      this.committer.unref();
    }
    this.o.logger.info('stream runtime started', { guarantee: this.guarantee, maxBatchRecords: this.o.maxBatchRecords });
  }

  /**
   * Reads max.message.bytes of the inputs and the dead-letter topic, keeps dead letters under the
   * latter (a dead letter that cannot be written would fail its batch for ever), and logs them.
   */
  private async readLimits(): Promise<void> {
    const deadLetterTopics = [...new Set(this.inputs.map((i) => i.deadLetters))];
    const names = [...this.inputs.map((i) => i.name), ...deadLetterTopics];
    const limits = new Map<string, number>();
    try {
      const described = await this.admin.describeConfigs({
        includeSynonyms: false,
        resources: names.map((name) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name, configNames: ['max.message.bytes'] })),
      });
      for (const r of described.resources) {
        const v = r.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue;
        if (v) limits.set(r.resourceName, Number(v));
      }
    } catch (err) {
      this.o.logger.warn('could not read the topics\' max.message.bytes; dead letters keep the configured limit', { error: errorMessage(err) });
    }
    const known = deadLetterTopics.map((t) => limits.get(t)).filter((n): n is number => n !== undefined);
    const dl = known.length > 0 ? Math.min(...known) : undefined;
    // Room for the rest of the dead letter (key, topic, message) and the batch's own overhead.
    if (dl !== undefined) this.deadLetterValueMax = Math.max(1024, Math.min(this.o.maxDeadLetterValueBytes, dl - 64 * 1024));
    this.o.logger.info('record size limits', { topics: Object.fromEntries(limits), maxRecordBytes: this.o.maxRecordBytes, deadLetterValueMax: this.deadLetterValueMax });
  }

  /** A core whose parameters changed writes to a changelog of its own: create it if `topics apply` did not. */
  private async ensureChangelog(): Promise<void> {
    const spec = this.changelogSpec;
    if (!spec || (await this.admin.listTopics()).includes(spec.name)) return;
    this.o.logger.info('creating the state changelog', { topic: spec.name });
    await this.admin
      .createTopics({
        waitForLeaders: false,
        topics: [{ topic: spec.name, numPartitions: spec.partitions, replicationFactor: spec.replicationFactor, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
      })
      .catch((err: unknown) => {
        if (!/already exists/i.test(errorMessage(err))) throw err;
      });
    await waitForLeaders(this.admin, [spec.name]);
  }

  /** Partitions whose batches have failed for longer than the stall timeout. */
  stalled(now = Date.now()): number[] {
    return [...this.failures].filter(([, f]) => now - f.since >= this.o.stallTimeoutMs).map(([p]) => p);
  }

  readiness(): { ready: boolean; reason?: string } {
    if (this.stopping) return { ready: false, reason: 'stopping' };
    if (!this.joined) return { ready: false, reason: 'not yet in the consumer group' };
    const waiting = [...this.assigned].filter((p) => !this.initialized.has(p));
    if (waiting.length > 0) return { ready: false, reason: `partition(s) ${waiting.join(', ')} restoring their state or offsets` };
    const stalled = this.stalled();
    if (stalled.length > 0) return { ready: false, reason: `partition(s) ${stalled.join(', ')} have made no progress for ${Math.round(this.o.stallTimeoutMs / 1000)} s or more` };
    return this.o.core.ready?.() ?? { ready: true };
  }

  /**
   * Finishes each task's batch in flight (later fetched records are left to the next owner),
   * commits, leaves the group and closes the producers.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.abort.abort();
    clearInterval(this.committer);
    const tasks = (await Promise.all([...this.tasks.values()].map((t) => t.catch(() => undefined)))).filter((t) => t !== undefined);
    for (const task of tasks) {
      task.inbox.length = 0;
      task.ahead.length = 0;
    }
    await Promise.all(tasks.map((t) => t.worker?.catch(() => undefined)));
    await Promise.all(tasks.map((t) => t.acked));
    await this.commitLast();
    await this.consumer.stop().catch(() => undefined);
    await this.consumer.disconnect().catch(() => undefined);
    this.tasks.clear();
    await Promise.all(tasks.map((t) => t.producer?.disconnect().catch(() => undefined)));
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin.disconnect().catch(() => undefined);
    await this.o.core.close?.();
  }

  private get metrics(): Metrics {
    return this.o.metrics;
  }

  private onAssignment(next: Set<number>): void {
    for (const partition of this.assigned) {
      if (!next.has(partition)) void this.closeTask(partition, 'revoked');
    }
    this.assigned = next;
    this.metrics.assignedPartitions.set({ stage: this.stage }, next.size * this.inputs.length);
    for (const partition of next) void this.task(partition).catch(() => undefined);
    this.o.logger.info('partitions assigned', { partitions: [...next].sort((a, b) => a - b) });
  }

  /**
   * Stops a task after its batch in flight. Under at-least-once its last positions are not
   * committed here: the group has moved on, and the new owner starts from the last commit.
   */
  private async closeTask(partition: number, why: string): Promise<void> {
    const pending = this.tasks.get(partition);
    if (!pending) return;
    this.tasks.delete(partition);
    const task = await pending.catch(() => undefined);
    if (!task) return;
    task.closed = true;
    task.inbox.length = 0;
    task.ahead.length = 0;
    await task.worker?.catch(() => undefined);
    await task.acked;
    if (task.paused) this.resume(task);
    await task.producer?.disconnect().catch(() => undefined);
    this.o.logger.info('task closed', { partition, why });
  }

  /** The partition's task; `resetAfterMs`: a task that starts over after a failed batch, after that long. */
  private task(partition: number, resetAfterMs?: number): Promise<Task<S>> {
    let pending = this.tasks.get(partition);
    if (!pending) {
      pending = resetAfterMs !== undefined ? sleep(resetAfterMs).then(() => this.initTask(partition, true)) : this.initTask(partition, false);
      // (a task starting over after a failed batch stays ready: the stall timeout says when it is not)
      if (resetAfterMs === undefined) this.initialized.delete(partition);
      const started = pending;
      pending.then(() => {
        if (this.tasks.get(partition) === started) this.initialized.add(partition);
      }, () => undefined);
      pending.catch((err: unknown) => {
        if (this.tasks.get(partition) !== pending) return;
        this.tasks.delete(partition);
        if (this.stopping || !this.assigned.has(partition)) return;
        // Start over (with a seek to the committed offsets: records fetched meanwhile were not
        // processed), after a backoff that grows with each failure of this partition.
        const { count, backoffMs } = this.failed(partition);
        this.o.logger.warn('task init failed; trying again', { partition, attempt: count, backoffMs, error: errorMessage(err) });
        void this.task(partition, backoffMs).catch(() => undefined);
      });
      this.tasks.set(partition, pending);
    }
    return pending;
  }

  private async initTask(partition: number, reset: boolean): Promise<Task<S>> {
    let producer: Producer | undefined;
    if (this.guarantee === 'exactly-once') {
      producer = this.o.kafka.producer({
        transactionalId: `${this.o.groupId}.task-${partition}`,
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
      // transaction, so the committed offsets and the changelog read below are final.
      const fence = await producer.transaction();
      await fence.abort();
    }

    let state: Map<string, S>;
    let committed: Awaited<ReturnType<Admin['fetchOffsets']>>;
    try {
      state = this.changelog ? await this.restoreState(partition) : new Map<string, S>();
      committed = await this.admin.fetchOffsets({ groupId: this.o.groupId, topics: this.inputs.map((i) => i.name) });
    } catch (err) {
      await producer?.disconnect().catch(() => undefined);
      throw err;
    }
    const positions = new Map<string, bigint>();
    for (const t of committed) {
      const offset = t.partitions.find((p) => p.partition === partition)?.offset ?? '-1';
      positions.set(t.topic, BigInt(offset) < 0n ? 0n : BigInt(offset));
    }
    const task: Task<S> = {
      partition, producer, state, positions, fetched: new Map(positions), seeking: new Map(), inbox: [], ahead: [], waiting: 0, waitingBytes: 0,
      worker: undefined, paused: false, dirty: false, unflushed: new Map(), acked: Promise.resolve(), closed: false,
    };
    if (reset) {
      // The consumer fetched ahead of what was processed: send it back to the committed offsets,
      // and drop whatever it had already fetched from further on.
      for (const [topic, offset] of positions) {
        task.seeking.set(topic, offset);
        this.consumer.seek({ topic, partition, offset: offset.toString() });
      }
    }
    this.o.logger.info('task ready', { partition, keys: state.size, positions: Object.fromEntries([...positions].map(([k, v]) => [k, v.toString()])) });
    return task;
  }

  /** Reads the task's changelog partition from the start to its end (read_committed) into a map. */
  private async restoreState(partition: number): Promise<Map<string, S>> {
    const topic = this.changelog!;
    const started = performance.now();
    const state = new Map<string, S>();
    const offsets = await this.admin.fetchTopicOffsets(topic);
    const entry = offsets.find((o) => o.partition === partition);
    const end = BigInt(entry?.high ?? '0');
    const low = BigInt(entry?.low ?? '0');
    if (end <= low) return state;

    const groupId = `${this.o.groupId}.restore.${randomUUID()}`;
    const consumer = this.o.kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 50, allowAutoTopicCreation: false });
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const reached = (lastOffset: string) => {
      if (BigInt(lastOffset) + 1n >= end) finish();
    };
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      if (e.payload.topic === topic && e.payload.partition === partition) reached(e.payload.lastOffset);
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          if (batch.partition !== partition) return;
          for (const m of batch.messages) {
            const key = m.key?.toString() ?? '';
            if (m.value === null) state.delete(key);
            else state.set(key, JSON.parse(m.value.toString()) as S);
          }
          reached(batch.lastOffset());
        },
      });
      // A restore that does not reach the end is an error (the task is retried), never partial state.
      let timedOut = false;
      const timeout = setTimeout(() => {
        timedOut = true;
        finish();
      }, this.o.restoreTimeoutMs);
      await done;
      clearTimeout(timeout);
      if (timedOut) throw new EmotionMuseError('SERVICE_UNAVAILABLE', `restoring ${topic}[${partition}] did not reach offset ${end} within ${this.o.restoreTimeoutMs} ms`, { retriable: true });
    } finally {
      await consumer.stop().catch(() => undefined);
      await consumer.disconnect().catch(() => undefined);
      await this.admin.deleteGroups([groupId]).catch(() => undefined);
    }
    this.metrics.stateRestoreSeconds.observe({ stage: this.stage }, (performance.now() - started) / 1000);
    return state;
  }

  /** kafkajs's fetch loop: hands the batch to its task and returns, so that fetching goes on. */
  private async onBatch({ batch, resolveOffset, isRunning }: EachBatchPayload): Promise<void> {
    if (this.stopping || !isRunning()) return;
    const task = await this.task(batch.partition);
    if (task.closed) return;
    const input = this.inputs.find((i) => i.name === batch.topic)!;
    const seek = task.seeking.get(batch.topic);
    if (seek !== undefined) {
      // kafkajs keeps the offset a batch was fetched from, though its types do not say so.
      if (BigInt((batch as unknown as { fetchedOffset: string }).fetchedOffset) > seek) return;
      task.seeking.delete(batch.topic);
    }
    const position = task.positions.get(batch.topic) ?? 0n;
    const from = task.fetched.get(batch.topic) ?? position;
    const fresh = batch.messages.filter((m) => BigInt(m.offset) >= from);
    const already = batch.messages.filter((m) => BigInt(m.offset) < position).length;
    if (already > 0) {
      this.metrics.skipped.inc({ stage: this.stage, reason: 'already-committed' }, already);
      this.o.logger.info('skipped records already committed by a previous owner', { topic: batch.topic, partition: batch.partition, count: already });
    }
    // The batch's last offset can lie past its last record (transaction markers, aborted
    // records): committing past them leaves no phantom lag behind.
    const last = BigInt(batch.lastOffset());
    if (last + 1n > from) task.fetched.set(batch.topic, last + 1n);
    resolveOffset(batch.lastOffset());
    if (fresh.length === 0) return;
    const now = Date.now();
    for (const m of fresh) this.metrics.stepSeconds.observe({ stage: this.stage, step: 'fetch' }, Math.max(0, now - Number(m.timestamp)) / 1000);
    task.inbox.push({ input, messages: fresh, last, fetchedAt: performance.now() });
    task.waiting += fresh.length;
    task.waitingBytes += valueBytes(fresh);
    this.metrics.consumerLag.set({ stage: this.stage, topic: batch.topic, partition: String(batch.partition) }, Math.max(0, Number(BigInt(batch.highWatermark) - position)));
    if ((task.waiting > this.o.maxBacklog || task.waitingBytes > this.o.maxBacklogBytes) && !task.paused) {
      task.paused = true;
      this.consumer.pause(this.inputs.map((i) => ({ topic: i.name, partitions: [task.partition] })));
      this.metrics.pausedPartitions.inc({ stage: this.stage });
    }
    if (task.worker) this.prepareAhead(task);
    else task.worker = this.work(task).finally(() => (task.worker = undefined));
  }

  /**
   * A core whose `prepare` may run ahead (the classifier's inference) starts preparing batches
   * while the one before is still in `prepare`: records that arrive during a model batch join the
   * next one at once instead of waiting for their turn. `process` and the commits stay in order.
   */
  private prepareAhead(task: Task<S>): void {
    const depth = this.o.core.prepareAhead ?? 0;
    while (!task.closed && task.ahead.length < depth && task.inbox.length > 0) {
      const batch = this.take(task);
      const ready = this.prepareBatch(task, batch);
      ready.catch(() => undefined);
      task.ahead.push({ batch, ready });
    }
  }

  private resume(task: Task<S>): void {
    task.paused = false;
    this.metrics.pausedPartitions.dec({ stage: this.stage });
    if (!this.stopping) this.consumer.resume(this.inputs.map((i) => ({ topic: i.name, partitions: [task.partition] })));
  }

  /** The task's worker: batches of whatever waits in the inbox, one after the other, until it is empty. */
  private async work(task: Task<S>): Promise<void> {
    while (!task.closed) {
      this.prepareAhead(task);
      const next = task.ahead.shift() ?? (task.inbox.length > 0 ? { batch: this.take(task), ready: undefined } : undefined);
      if (!next) break;
      this.prepareAhead(task);
      const { batch } = next;
      const count = batch.reduce((n, c) => n + c.messages.length, 0);
      const bytes = batch.reduce((n, c) => n + valueBytes(c.messages), 0);
      try {
        await this.processWithRetry(task, batch, next.ready);
      } catch (err) {
        await this.resetTask(task, err);
        return;
      }
      task.waiting -= count;
      task.waitingBytes -= bytes;
      if (task.paused && task.waiting <= this.o.maxBacklog / 2 && task.waitingBytes <= this.o.maxBacklogBytes / 2) this.resume(task);
    }
  }

  /** Up to maxBatchRecords records from the head of the inbox, across input topics, in arrival order. */
  private take(task: Task<S>): Chunk[] {
    const out: Chunk[] = [];
    let room = this.o.maxBatchRecords;
    while (room > 0 && task.inbox.length > 0) {
      const head = task.inbox[0]!;
      if (head.messages.length <= room) {
        out.push(head);
        task.inbox.shift();
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

  /** A service the core needs being away (a retriable error) retries the same batch with backoff; nothing is committed meanwhile. */
  private async processWithRetry(task: Task<S>, batch: Chunk[], ready?: Promise<Prepared>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.processBatch(task, batch, attempt === 0 ? ready : undefined);
        return;
      } catch (err) {
        if (err instanceof CommitFailed || task.closed || this.stopping) throw err;
        const wait = Math.min(2000, 50 * 2 ** attempt) * (0.8 + 0.4 * Math.random());
        this.o.logger.warn('batch failed with a retriable error; retrying it', { partition: task.partition, attempt: attempt + 1, inMs: Math.round(wait), error: errorMessage(err) });
        await sleep(wait);
      }
    }
  }

  /**
   * After a failed commit (or a fenced producer) the task starts over from what was committed: a
   * new task restores the state and sends the consumer back to the committed offsets.
   */
  /** Counts a failure of the partition (a batch or a task start); the backoff before its next try: 200 ms doubling to 30 s. */
  private failed(partition: number): { count: number; backoffMs: number } {
    const f = this.failures.get(partition) ?? { count: 0, since: Date.now() };
    f.count++;
    this.failures.set(partition, f);
    this.metrics.partitionsStalled.set({ stage: this.stage }, this.stalled().length);
    return { count: f.count, backoffMs: Math.min(30_000, 200 * 2 ** Math.min(f.count - 1, 8)) };
  }

  private async resetTask(task: Task<S>, err: unknown): Promise<void> {
    if (task.closed) return;
    task.closed = true;
    task.inbox.length = 0;
    task.ahead.length = 0;
    if (task.paused) this.resume(task);
    this.metrics.transactionsAborted.inc({ stage: this.stage });
    const partition = task.partition;
    await task.producer?.disconnect().catch(() => undefined);
    const pending = this.tasks.get(partition);
    if (!pending || (await pending.catch(() => undefined)) !== task) return;
    this.tasks.delete(partition);
    if (this.stopping || !this.assigned.has(partition)) return;
    const { count, backoffMs } = this.failed(partition);
    if (this.o.maxBatchRetries > 0 && count > this.o.maxBatchRetries) {
      this.o.logger.error('a batch failed too many times; stopping the processor', { partition, attempts: count, error: errorMessage(err) });
      this.crashed?.(new EmotionMuseError('PROCESSING_FAILED', `partition ${partition}: a batch failed ${count} times: ${errorMessage(err)}`));
      return;
    }
    this.o.logger.warn('batch could not be committed; the task starts over from its committed offsets', { partition, attempt: count, backoffMs, error: errorMessage(err) });
    // In the map at once, so that records fetched meanwhile wait for the reset task (and its seek).
    await this.task(partition, backoffMs).catch(() => undefined);
  }

  private decode(input: Input, partition: number, m: KafkaMessage): Decoded {
    if (m.value === null) return { ok: false, message: m, code: 'INVALID_RECORD', error: 'record has no value (tombstone)' };
    if (m.value.length > this.o.maxRecordBytes) {
      return { ok: false, message: m, code: 'OVERSIZED_RECORD', error: `record of ${m.value.length} bytes exceeds the limit of ${this.o.maxRecordBytes}` };
    }
    try {
      const value = this.o.registry.decode(input.kind, m.value);
      const problem = checkRecord(input.kind, value);
      if (problem) return { ok: false, message: m, code: 'INVALID_RECORD', error: problem };
      // Every topic is keyed by user id: the key is the record's identity (the gateway sets it from
      // the caller's token), so a record must have one, and it must name the record's own user.
      const userId = (value as { userId?: unknown }).userId;
      if (typeof userId === 'string') {
        if (m.key === null || m.key.length === 0) return { ok: false, message: m, code: 'INVALID_RECORD', error: `record of user "${userId.slice(0, 64)}" has no key` };
        if (m.key.toString() !== userId) return { ok: false, message: m, code: 'INVALID_RECORD', error: `record key "${m.key.toString().slice(0, 64)}" is not the record's user "${userId.slice(0, 64)}"` };
      }
      return {
        ok: true,
        record: { topic: input.id, topicName: input.name, partition, offset: m.offset, key: m.key?.toString() ?? '', value, timestamp: Number(m.timestamp) },
      };
    } catch (err) {
      const code = err instanceof EmotionMuseError ? err.code : 'MALFORMED_AVRO';
      return { ok: false, message: m, code, error: errorMessage(err) };
    }
  }

  private deadLetter(input: Input, partition: number, m: KafkaMessage, code: ErrorCode, error: string): Message {
    this.metrics.deadLetters.inc({ stage: this.stage, code });
    const value = m.value ?? null;
    const truncated = value !== null && value.length > this.deadLetterValueMax;
    this.o.logger.warn('record dead-lettered', { topic: input.name, partition, offset: m.offset, code, error, ...(truncated ? { valueBytes: value.length, truncatedTo: this.deadLetterValueMax } : {}) });
    // A key is an id (at most a few hundred bytes); a larger one is cut like a value.
    const key = m.key && m.key.length > 1024 ? m.key.subarray(0, 1024) : m.key;
    return {
      key,
      value: this.o.registry.encode('dead-letter', {
        sourceTopic: input.name,
        sourcePartition: partition,
        sourceOffset: Number(m.offset),
        key: key ?? null,
        value: truncated ? value.subarray(0, this.deadLetterValueMax) : value,
        stage: this.stage,
        errorCode: code,
        errorMessage: error.slice(0, 2000),
        failedTimeMs: Date.now(),
        valueBytes: value?.length ?? -1,
        valueTruncated: truncated,
        valueSha256: value ? createHash('sha256').update(value).digest('hex') : '',
      }),
    };
  }

  private encodeOutput(out: OutputRecord): { topic: string; message: Message } {
    const spec = topicSpec(this.o.topology, out.to);
    if (spec.valueKind === 'state') throw new Error(`cannot produce to ${out.to}`);
    return { topic: spec.name, message: { key: out.key, value: this.o.registry.encode(spec.valueKind, out.value as never) } };
  }

  /** Decodes a batch and runs the core's `prepare` on its good records. */
  private async prepareBatch(task: Task<S>, batch: Chunk[]): Promise<Prepared> {
    const started = performance.now();
    const { metrics, stage } = this;
    metrics.batchSize.observe({ stage }, batch.reduce((n, c) => n + c.messages.length, 0));
    for (const chunk of batch) metrics.stepSeconds.observe({ stage, step: 'queue' }, (started - chunk.fetchedAt) / 1000);
    const decoded: Array<{ input: Input; message: KafkaMessage; d: Decoded }> = [];
    for (const chunk of batch) for (const message of chunk.messages) decoded.push({ input: chunk.input, message, d: this.decode(chunk.input, task.partition, message) });
    const good = decoded.flatMap(({ d }) => (d.ok ? [d.record] : []));
    const prepared = this.o.core.prepare && good.length > 0 ? await this.o.core.prepare(good, this.abort.signal) : undefined;
    return { started, decoded, prepared };
  }

  private async processBatch(task: Task<S>, batch: Chunk[], ready?: Promise<Prepared>): Promise<void> {
    const { metrics, stage } = this;
    const partition = task.partition;
    const { started, decoded, prepared } = await (ready ?? this.prepareBatch(task, batch));

    const staged = new Map<string, S | undefined>();
    const out = new Map<string, Message[]>();
    const push = (topic: string, message: Message) => {
      const list = out.get(topic) ?? [];
      list.push(message);
      out.set(topic, list);
    };
    let g = 0;
    for (const { input, message, d } of decoded) {
      if (!d.ok) {
        push(input.deadLetters, this.deadLetter(input, partition, d.message, d.code, d.error));
        continue;
      }
      const record = d.record;
      const prep = prepared?.[g++];
      try {
        if (prep instanceof Error) throw prep;
        const current = staged.has(record.key) ? staged.get(record.key) : task.state.get(record.key);
        const result = this.o.core.process(current, record, prep);
        const encoded = result.outputs.map((o) => this.encodeOutput(o));
        staged.set(record.key, result.state);
        for (const e of encoded) push(e.topic, e.message);
      } catch (err) {
        const decision = decideFailure(err);
        if (decision.action === 'retry') {
          throw new EmotionMuseError('SERVICE_UNAVAILABLE', `retrying batch of ${input.name}[${partition}]: ${decision.message}`, { retriable: true, cause: err });
        }
        push(input.deadLetters, this.deadLetter(input, partition, message, decision.code, decision.message));
      }
    }

    // Next offset per input topic once this batch is done.
    const next = new Map<string, bigint>();
    for (const chunk of batch) {
      const lastRecord = BigInt(chunk.messages[chunk.messages.length - 1]!.offset);
      next.set(chunk.input.name, (chunk.last > lastRecord ? chunk.last : lastRecord) + 1n);
    }

    const processed = performance.now();
    const done = () => {
      if (this.failures.delete(partition)) metrics.partitionsStalled.set({ stage }, this.stalled().length);
      metrics.stepSeconds.observe({ stage, step: 'commit' }, (performance.now() - processed) / 1000);
      for (const [topic, offset] of next) task.positions.set(topic, offset);
      task.dirty = true;
      for (const [topic, messages] of out) metrics.recordsOut.inc({ stage, topic }, messages.length);
      for (const chunk of batch) metrics.recordsIn.inc({ stage, topic: chunk.input.name }, chunk.messages.length);
      metrics.transactionSeconds.observe({ stage }, (performance.now() - started) / 1000);
    };
    const applyState = () => {
      for (const [key, value] of staged) {
        if (value === undefined) task.state.delete(key);
        else task.state.set(key, value);
      }
    };

    if (this.guarantee === 'exactly-once') {
      try {
        await this.commitTransaction(task, out, this.changelogMessages(partition, staged), next);
      } catch (err) {
        throw new CommitFailed(errorMessage(err), { cause: err });
      }
      applyState();
      done();
      return;
    }
    // At least once: the next batch need not wait for this one's acknowledgement. Its state is
    // used at once; the positions and the state to flush move on only when the outputs are
    // acknowledged (acknowledgements come in order), so a flush never stores state whose outputs
    // could still be lost.
    const sent = out.size > 0 ? this.send!([...out].map(([topic, messages]) => ({ topic, messages }))) : undefined;
    applyState();
    task.acked = task.acked
      .then(() => sent)
      .then(() => {
        if (this.changelog) for (const [key, value] of staged) task.unflushed.set(key, value);
        done();
      })
      .catch((err: unknown) => void this.resetTask(task, err));
  }


  private changelogMessages(partition: number, changes: Map<string, S | undefined>): Message[] {
    if (!this.changelog) return [];
    return [...changes].map(([key, value]) => ({ key, partition, value: value === undefined ? null : JSON.stringify(value) }));
  }

  /** Outputs, dead letters, state changes and input offsets in one transaction. */
  private async commitTransaction(task: Task<S>, out: Map<string, Message[]>, changes: Message[], next: Map<string, bigint>): Promise<void> {
    const txn = await task.producer!.transaction();
    try {
      const topicMessages = [...out].map(([topic, messages]) => ({ topic, messages }));
      if (changes.length > 0) topicMessages.push({ topic: this.changelog!, messages: changes });
      for (const part of splitBySize(topicMessages, REQUEST_BYTES)) await txn.sendBatch({ topicMessages: part, acks: -1 });
      await txn.sendOffsets({
        consumerGroupId: this.o.groupId,
        topics: [...next].map(([topic, offset]) => ({ topic, partitions: [{ partition: task.partition, offset: offset.toString() }] })),
      });
      await txn.commit();
    } catch (err) {
      this.o.logger.warn('transaction failed; the batch will be processed again from the committed offsets', { partition: task.partition, error: errorMessage(err) });
      await txn.abort().catch(() => undefined);
      throw err;
    }
  }

  /**
   * At-least-once: writes every task's state changes to the changelog, then commits the processed
   * positions of every task, in one request each. Positions and changes are taken together, so
   * the state stored is never behind the offsets committed.
   */
  private async commitProcessed(): Promise<void> {
    if (this.guarantee !== 'at-least-once' || !this.running || this.committing) return;
    const tasks = [...this.tasks.values()];
    this.committing = this.flushAndCommit(tasks).finally(() => (this.committing = undefined));
    await this.committing;
  }

  /** At-least-once, on stop: waits for a commit in progress, then commits what came after it. */
  private async commitLast(): Promise<void> {
    await this.committing;
    await this.commitProcessed();
  }

  private async flushAndCommit(pending: ReadonlyArray<Promise<Task<S>>>): Promise<void> {
    const tasks = (await Promise.all(pending.map((t) => t.catch(() => undefined)))).filter((t): t is Task<S> => t !== undefined && !t.closed && t.dirty);
    if (tasks.length === 0) return;
    const offsets = tasks.flatMap((task) => [...task.positions].map(([topic, offset]) => ({ topic, partition: task.partition, offset: offset.toString() })));
    const changes = tasks.map((task) => ({ task, changes: new Map(task.unflushed) }));
    for (const task of tasks) {
      task.dirty = false;
      task.unflushed.clear();
    }
    try {
      const messages = changes.flatMap(({ task, changes }) => this.changelogMessages(task.partition, changes));
      if (messages.length > 0) await this.send!([{ topic: this.changelog!, messages }]);
      await this.consumer.commitOffsets(offsets);
    } catch (err) {
      for (const { task, changes: taken } of changes) {
        task.dirty = true;
        for (const [key, value] of taken) if (!task.unflushed.has(key)) task.unflushed.set(key, value);
      }
      this.o.logger.warn('state flush or offset commit failed; retried at the next interval', { error: errorMessage(err) });
    }
  }
}

/** kafkajs takes one entry per topic in a send (a second one would replace the first). */
function mergeByTopic(topicMessages: readonly TopicMessages[]): TopicMessages[] {
  const byTopic = new Map<string, Message[]>();
  for (const { topic, messages } of topicMessages) {
    const list = byTopic.get(topic);
    if (list) list.push(...messages);
    else byTopic.set(topic, [...messages]);
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

/**
 * Bytes of records per produce request at most: under the broker's default message.max.bytes
 * (1 MiB), which bounds each partition's batch, with room for a dead letter of the largest kept
 * value (256 KiB by default) beside others.
 */
const REQUEST_BYTES = 768 * 1024;

/** Splits topic messages into requests of at most `maxBytes` of keys and values (a larger record goes alone). */
export function splitBySize(topicMessages: readonly TopicMessages[], maxBytes: number): TopicMessages[][] {
  const parts: TopicMessages[][] = [];
  let current = new Map<string, Message[]>();
  let bytes = 0;
  for (const { topic, messages } of topicMessages) {
    for (const m of messages) {
      const size = (m.value ? (m.value as Buffer).length : 0) + (m.key ? (m.key as Buffer).length : 0) + 64;
      if (bytes > 0 && bytes + size > maxBytes) {
        parts.push([...current].map(([t, ms]) => ({ topic: t, messages: ms })));
        current = new Map();
        bytes = 0;
      }
      const list = current.get(topic) ?? [];
      list.push(m);
      current.set(topic, list);
      bytes += size;
    }
  }
  if (bytes > 0) parts.push([...current].map(([t, ms]) => ({ topic: t, messages: ms })));
  return parts;
}

function valueBytes(messages: ReadonlyArray<{ value: Buffer | null }>): number {
  let n = 0;
  for (const m of messages) n += m.value?.length ?? 0;
  return n;
}
