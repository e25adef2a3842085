import { setTimeout as wait } from 'node:timers/promises';
import type { Admin, Consumer, EachBatchPayload } from 'kafkajs';
import { changelogTopic, type Guarantee, type TopicSpec } from '../topology/topology.ts';
import { EmotionMuseError, errorMessage } from '../schemas/errors.ts';
import { batchAttempts, failureCode } from './failure-policy.ts';
import { prepareBatch, processBatch, type BatchIo, type Prepared } from './batch-step.ts';
import { ensureChangelog } from './changelog.ts';
import { stageIdleEvictions } from './key-state.ts';
import { CommitFailed, commitProtocol, type CommitProtocol } from './commit-protocol.ts';
import { PartitionTable } from './checked-send.ts';
import { recordCount, type Chunk } from './inbox.ts';
import { brokerUnreachable, processorConsumer } from './kafka.ts';
import type { Metrics } from './metrics.ts';
import type { ProcessorCore } from './processor.ts';
import { deadLetterValueLimit, inputsOf, recordIo, type Input } from './records.ts';
import type { RuntimeOptions, RuntimeSettings } from './runtime-options.ts';
import { admit, closeTaskWork, type Task } from './task.ts';
import { TaskManager } from './task-manager.ts';

export type { RuntimeOptions, RuntimeSettings } from './runtime-options.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The thin Kafka adapter under every processor. kafkajs's fetch loop only hands records to
 * per-partition tasks (runtime/task-manager.ts); each task's worker takes whatever has arrived (an
 * Inbox, up to maxBatchRecords), runs the batch step (runtime/batch-step.ts: decode, prepare,
 * process, dead letters) and hands the outcome to the commit protocol of the processor's guarantee
 * (runtime/commit-protocol.ts), while the next records are already being fetched.
 */
export class StreamRuntime<S> {
  readonly guarantee: Guarantee;
  private readonly s: RuntimeSettings;
  private readonly inputs: readonly Input[];
  private readonly changelogSpec: TopicSpec | undefined;
  private readonly consumer: Consumer;
  private readonly admin: Admin;
  private readonly protocol: CommitProtocol<S>;
  private readonly tasks: TaskManager<S>;
  private readonly io: BatchIo;
  private joined = false;
  private stopping = false;
  private readonly abort = new AbortController();
  private readonly stage: string;
  private readonly metrics: Metrics;
  private crashed: ((err: Error) => void) | undefined;
  /** Keys in memory per assigned partition, as of its last commit (the state-keys gauge). */
  private readonly stateSizes = new Map<number, number>();
  /** Set at start from the dead-letter topic's limit. */
  private deadLetterValueMax: number;

  constructor(private readonly o: RuntimeOptions<S>) {
    const s = (this.s = o.settings);
    this.guarantee = o.guarantee;
    this.stage = o.core.name;
    this.metrics = o.metrics;
    this.deadLetterValueMax = s.maxDeadLetterValueBytes;
    this.inputs = inputsOf(o.topology, o.spec);
    this.changelogSpec = o.spec.stateful ? changelogTopic(o.topology, o.spec, o.core.stateVersion) : undefined;
    this.admin = o.kafka.admin();
    this.consumer = processorConsumer(o.kafka, o.groupId, s, () => this.stopping);
    const changelog = this.changelogSpec?.name;
    const stopping = () => this.stopping;
    this.protocol = commitProtocol<S>(o.guarantee, {
      kafka: o.kafka, consumer: this.consumer, logger: o.logger, groupId: o.groupId, changelog, commitIntervalMs: s.commitIntervalMs, partitions: new PartitionTable(this.admin),
      tasks: () => this.tasks.all(), failed: (task, err) => void this.tasks.reset(task, err), stopping,
    });
    this.tasks = new TaskManager<S>({
      kafka: o.kafka, admin: this.admin, consumer: this.consumer, protocol: this.protocol, inputs: this.inputs, changelog, groupId: o.groupId,
      stage: this.stage, metrics: o.metrics, logger: o.logger, limits: s, resume: (task) => this.resume(task), stopping, crash: (err) => this.crashed?.(err),
    });
    this.io = recordIo(o.registry, o.topology, o.spec, this.stage, s.maxRecordBytes, () => this.deadLetterValueMax, o.metrics, o.logger);
  }

  /** Joins the group and starts processing; resolves once the consumer runs. `onCrash` is called if it stops for good. */
  async start(onCrash?: (err: Error) => void): Promise<void> {
    this.crashed = onCrash;
    const { consumer, o } = this;
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      this.joined = true;
      o.metrics.rebalances.inc({ stage: this.stage });
      const assignment = e.payload.memberAssignment as Record<string, number[]>;
      const next = new Set<number>();
      for (const input of this.inputs) for (const p of assignment[input.name] ?? []) next.add(p);
      this.tasks.assign(next);
      for (const p of this.stateSizes.keys()) if (!next.has(p)) this.stateSizes.delete(p);
    });
    consumer.on(consumer.events.CRASH, (e) => {
      o.logger.error('consumer crashed', { error: errorMessage(e.payload.error), restart: e.payload.restart });
      if (!e.payload.restart && !this.stopping) this.crashed?.(e.payload.error);
    });
    o.metrics.partitionsStalled.set({ stage: this.stage }, 0);
    o.metrics.skipped.inc({ stage: this.stage, reason: 'already-committed' }, 0);
    const deadline = Date.now() + this.s.startTimeoutMs;
    await this.reachKafka(deadline);
    if (this.stopping) return;
    // Each step waits for brokers that go away while the stage starts (a broker restart, seen in
    // the chaos test), within the same start deadline, rather than exiting.
    this.deadLetterValueMax = await this.whileStarting(deadline, 'reading the inputs\' record size limits', () => deadLetterValueLimit(this.admin, this.inputs, this.s.maxDeadLetterValueBytes, this.s.maxRecordBytes, o.logger));
    const changelog = this.changelogSpec;
    if (changelog) await this.whileStarting(deadline, 'checking the changelog topic', () => ensureChangelog(this.admin, changelog, o.logger));
    if (this.stopping) return;
    await this.whileStarting(deadline, 'opening the producer', () => this.protocol.start());
    await this.whileStarting(deadline, 'connecting the consumer', () => consumer.connect());
    for (const input of this.inputs) await this.whileStarting(deadline, `subscribing to ${input.name}`, () => consumer.subscribe({ topic: input.name, fromBeginning: true }));
    if (this.stopping) return;
    await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (payload) => this.onBatch(payload) });
    o.logger.info('stream runtime started', { guarantee: this.guarantee, maxBatchRecords: this.s.maxBatchRecords });
  }

  /**
   * Connects the admin client, trying again each second for up to startTimeoutMs: a stage started
   * while its broker restarts (or before it is up) waits for it instead of exiting after the
   * client's own few retries.
   */
  private async reachKafka(deadline: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.admin.connect();
        if (attempt > 1) this.o.logger.info('Kafka reached', { attempts: attempt });
        return;
      } catch (err) {
        if (this.stopping || Date.now() >= deadline) throw err;
        this.o.logger.warn('Kafka not reachable yet; trying again', { attempt, error: errorMessage(err), givingUpInS: Math.round((deadline - Date.now()) / 1000) });
        await wait(1000, undefined, { signal: this.abort.signal }).catch(() => undefined);
        if (this.stopping) return;
      }
    }
  }

  /**
   * Runs one step of the start, again each second while it fails because the brokers are away
   * (brokerUnreachable) and the start deadline has not passed; any other error, or one past the
   * deadline, is the start's failure.
   */
  private async whileStarting<T>(deadline: number, what: string, step: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (err) {
        if (this.stopping || Date.now() >= deadline || !brokerUnreachable(err)) throw err;
        this.o.logger.warn(`Kafka went away while ${what}; trying again`, { attempt, error: errorMessage(err), givingUpInS: Math.round((deadline - Date.now()) / 1000) });
        await wait(1000, undefined, { signal: this.abort.signal }).catch(() => undefined);
        if (this.stopping) throw err;
      }
    }
  }

  readiness(): { ready: boolean; reason?: string } {
    if (this.stopping) return { ready: false, reason: 'stopping' };
    if (!this.joined) return { ready: false, reason: 'not yet in the consumer group' };
    const waiting = this.tasks.starting();
    if (waiting.length > 0) return { ready: false, reason: `partition(s) ${waiting.join(', ')} restoring their state or offsets` };
    const stalled = this.tasks.stalled();
    if (stalled.length > 0) return { ready: false, reason: `partition(s) ${stalled.join(', ')} have made no progress for ${Math.round(this.s.stallTimeoutMs / 1000)} s or more` };
    return this.o.core.ready?.() ?? { ready: true };
  }

  /** Finishes each task's batch in flight (later fetched records are left to the next owner), commits, leaves the group, closes the producers. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.abort.abort();
    const tasks = (await Promise.all(this.tasks.all().map((t) => t.catch(() => undefined)))).filter((t) => t !== undefined);
    for (const task of tasks) {
      task.inbox.clear();
      task.ahead.length = 0;
    }
    await Promise.all(tasks.map((t) => t.worker?.catch(() => undefined)));
    await Promise.all(tasks.map((t) => t.acked));
    await this.protocol.stop();
    await this.consumer.stop().catch(() => undefined);
    await this.consumer.disconnect().catch(() => undefined);
    this.tasks.clear();
    await Promise.all(tasks.map((t) => t.producer?.disconnect().catch(() => undefined)));
    await this.admin.disconnect().catch(() => undefined);
    await this.o.core.close?.();
  }

  /** kafkajs's fetch loop: hands the batch to its task and returns, so that fetching goes on. */
  private async onBatch({ batch, resolveOffset, isRunning }: EachBatchPayload): Promise<void> {
    if (this.stopping || !isRunning()) return;
    // A task whose start failed is started again by the task manager (after a backoff, with a
    // seek to the committed offsets), so this batch is left alone. Its error must not escape
    // into kafkajs: kafkajs takes an error it does not know (kafkajs's own TypeError from
    // fetchTopicOffsets on a partition without a leader yet, seen under load) as not retriable
    // and crashes the consumer for good, and the processor exited.
    const task = await this.tasks.task(batch.partition).catch(() => undefined);
    if (!task || task.closed) return;
    const { metrics, stage } = this;
    const input = this.inputs.find((i) => i.name === batch.topic)!;
    const admitted = admit(task, batch);
    if (!admitted) return;
    const { fresh, already, last, position } = admitted;
    if (already > 0) {
      metrics.skipped.inc({ stage, reason: 'already-committed' }, already);
      this.o.logger.info('skipped records already committed by a previous owner', { topic: batch.topic, partition: batch.partition, count: already });
    }
    resolveOffset(batch.lastOffset());
    if (fresh.length === 0) return;
    const now = Date.now();
    for (const m of fresh) metrics.stepSeconds.observe({ stage, step: 'fetch' }, Math.max(0, now - Number(m.timestamp)) / 1000);
    const full = task.inbox.push({ input, messages: fresh, last, fetchedAt: performance.now() });
    metrics.consumerLag.set({ stage, topic: batch.topic, partition: String(batch.partition) }, Math.max(0, Number(BigInt(batch.highWatermark) - position)));
    if (full && !task.paused) {
      task.paused = true;
      this.consumer.pause(this.inputs.map((i) => ({ topic: i.name, partitions: [task.partition] })));
      metrics.pausedPartitions.inc({ stage });
    }
    if (task.worker) this.prepareAhead(task);
    else task.worker = this.work(task).finally(() => (task.worker = undefined));
  }

  private prepare(task: Task<S>, batch: Chunk[]): Promise<Prepared> {
    const { metrics, stage } = this;
    metrics.batchSize.observe({ stage }, recordCount(batch));
    const now = performance.now();
    for (const chunk of batch) metrics.stepSeconds.observe({ stage, step: 'queue' }, (now - chunk.fetchedAt) / 1000);
    return prepareBatch(this.o.core as ProcessorCore<unknown>, this.io, task.partition, batch, this.abort.signal);
  }

  /**
   * A core whose `prepare` may run ahead (the classifier's inference) starts preparing batches
   * while the one before is still in `prepare`: records that arrive during a model batch join the
   * next one at once instead of waiting for their turn. `process` and the commits stay in order.
   */
  private prepareAhead(task: Task<S>): void {
    const depth = this.o.core.prepareAhead ?? 0;
    while (!task.closed && task.ahead.length < depth && task.inbox.length > 0) {
      const batch = task.inbox.take();
      const ready = this.prepare(task, batch);
      ready.catch(() => undefined);
      task.ahead.push({ batch, ready });
    }
  }

  private resume(task: Task<S>): void {
    task.paused = false;
    this.o.metrics.pausedPartitions.dec({ stage: this.stage });
    if (!this.stopping) this.consumer.resume(this.inputs.map((i) => ({ topic: i.name, partitions: [task.partition] })));
  }

  /** The task's worker: batches of whatever waits in the inbox, one after the other, until it is empty. */
  private async work(task: Task<S>): Promise<void> {
    while (!task.closed) {
      this.prepareAhead(task);
      const next = task.ahead.shift() ?? (task.inbox.length > 0 ? { batch: task.inbox.take(), ready: undefined } : undefined);
      if (!next) break;
      this.prepareAhead(task);
      try {
        await this.processWithRetry(task, next.batch, next.ready);
      } catch (err) {
        await this.tasks.reset(task, err);
        return;
      }
      if (task.inbox.done(next.batch) && task.paused) this.resume(task);
    }
  }

  /**
   * A retriable failure (a service the core needs) retries the same batch with backoff, nothing
   * committed meanwhile, and the partition counts as failing (stalled after --stall-timeout-ms);
   * after the attempts its code allows (runtime/failure-policy.ts) the processor stops.
   */
  private async processWithRetry(task: Task<S>, batch: Chunk[], ready?: Promise<Prepared>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.runBatch(task, batch, attempt === 1 && ready ? ready : this.prepare(task, batch));
        return;
      } catch (err) {
        if (err instanceof CommitFailed || task.closed || this.stopping) throw err;
        const code = failureCode(err);
        this.tasks.failing(task.partition);
        if (attempt >= batchAttempts(code, this.s.maxBatchRetries)) {
          this.o.logger.error('a batch failed as often as its error allows; stopping the processor', { partition: task.partition, attempts: attempt, code, error: errorMessage(err) });
          closeTaskWork(task);
          this.crashed?.(new EmotionMuseError('PROCESSING_FAILED', `partition ${task.partition}: a batch failed ${attempt} times with ${code}: ${errorMessage(err)}`, { cause: err }));
          return;
        }
        const wait = Math.min(2000, 50 * 2 ** (attempt - 1)) * (0.8 + 0.4 * Math.random());
        this.o.logger.warn('batch failed with a retriable error; retrying it', { partition: task.partition, attempt, code, inMs: Math.round(wait), error: errorMessage(err) });
        await sleep(wait);
      }
    }
  }

  private async runBatch(task: Task<S>, batch: Chunk[], ready: Promise<Prepared>): Promise<void> {
    const { metrics, stage } = this;
    const prepared = await ready;
    const outcome = processBatch(this.o.core, this.io, task.partition, task.state, batch, prepared);
    // Keys idle past --state-idle-ms leave with this batch (tombstones in the same commit).
    const evicted = this.changelogSpec ? stageIdleEvictions(task.state, outcome.staged, this.s.stateIdleMs) : 0;
    const processed = performance.now();
    await this.protocol.commit(task, outcome, () => {
      this.tasks.succeeded(task.partition);
      metrics.stepSeconds.observe({ stage, step: 'commit' }, (performance.now() - processed) / 1000);
      for (const [topic, offset] of outcome.next) task.positions.set(topic, offset);
      task.dirty = true;
      for (const [topic, messages] of outcome.out) metrics.recordsOut.inc({ stage, topic }, messages.length);
      for (const chunk of batch) metrics.recordsIn.inc({ stage, topic: chunk.input.name }, chunk.messages.length);
      metrics.transactionSeconds.observe({ stage }, (performance.now() - prepared.started) / 1000);
      if (evicted > 0) metrics.stateEvictions.inc({ stage }, evicted);
      if (this.changelogSpec) {
        this.stateSizes.set(task.partition, task.state.size);
        metrics.stateKeys.set({ stage }, [...this.stateSizes.values()].reduce((a, b) => a + b, 0));
      }
    });
  }
}
