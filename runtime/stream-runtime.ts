import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage, Message, Producer } from 'kafkajs';
import { SchemaRegistry } from '../schemas/registry.ts';
import type { MessageKind } from '../schemas/kinds.ts';
import { changelogTopic, topicSpec, type ProcessorSpec, type TopicId, type TopicSpec, type Topology } from '../topology/topology.ts';
import { waitForLeaders } from '../topology/apply.ts';
import { errorMessage, EmotionMuseError, type ErrorCode } from './errors.ts';
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
  /** Most input records in one transaction. @defaultValue 500 */
  readonly maxBatchRecords?: number;
  /** @defaultValue 1 */
  readonly partitionsConsumedConcurrently?: number;
  /** @defaultValue 10000 */
  readonly sessionTimeoutMs?: number;
  /** Pause consumption while core.backlog() exceeds this. @defaultValue 1000 */
  readonly maxBacklog?: number;
  /** Input records larger than this are dead-lettered with OVERSIZED_RECORD. @defaultValue 4 MiB */
  readonly maxRecordBytes?: number;
}

/** One task per input partition number: its transactional producer, key state and input positions. */
interface Task<S> {
  readonly partition: number;
  readonly producer: Producer;
  readonly state: Map<string, S>;
  /** Next input offset to process, per input topic name. */
  readonly positions: Map<string, bigint>;
  queue: Promise<void>;
}

type Decoded = { ok: true; record: InputRecord } | { ok: false; message: KafkaMessage; code: ErrorCode; error: string };

/**
 * The thin Kafka adapter under every processor: consumes in batches, calls the core, produces its
 * outputs, state changes and dead letters, and commits the input offsets, all in one Kafka
 * transaction per batch (read-process-write exactly once; downstream readers use read_committed).
 *
 * Each input partition number is a task with its own transactional id (`<group>.task-<n>`), as in
 * Kafka Streams' first exactly-once mode: whoever takes over a partition initialises that id,
 * which fences the previous owner and completes or aborts its open transaction before the new
 * owner reads the committed offsets and restores the task's state from the changelog.
 */
export class StreamRuntime<S> {
  private readonly o: RuntimeOptions<S> & Required<Pick<RuntimeOptions<S>, 'maxBatchRecords' | 'partitionsConsumedConcurrently' | 'sessionTimeoutMs' | 'maxBacklog' | 'maxRecordBytes'>>;
  private readonly inputs: ReadonlyArray<{ id: TopicId; name: string; kind: MessageKind }>;
  private readonly changelog: string | undefined;
  private readonly changelogSpec: TopicSpec | undefined;
  private readonly consumer: Consumer;
  private readonly admin: Admin;
  private readonly tasks = new Map<number, Promise<Task<S>>>();
  private assigned = new Set<number>();
  private joined = false;
  private stopping = false;
  private readonly abort = new AbortController();
  private readonly stage: string;
  private crashed: ((err: Error) => void) | undefined;

  constructor(options: RuntimeOptions<S>) {
    this.o = {
      maxBatchRecords: 500,
      partitionsConsumedConcurrently: 1,
      sessionTimeoutMs: 10_000,
      maxBacklog: 1000,
      maxRecordBytes: 4 * 1024 * 1024,
      ...options,
    };
    this.stage = options.core.name;
    this.inputs = options.spec.inputs.map((id) => {
      const spec = topicSpec(options.topology, id);
      if (spec.valueKind === 'state') throw new Error(`input ${id} is not a message topic`);
      return { id, name: spec.name, kind: spec.valueKind };
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
      maxWaitTimeInMs: 100,
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
    await this.admin.connect();
    await this.ensureChangelog();
    await consumer.connect();
    for (const input of this.inputs) await consumer.subscribe({ topic: input.name, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.o.partitionsConsumedConcurrently,
      eachBatch: (payload) => this.onBatch(payload),
    });
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

  readiness(): { ready: boolean; reason?: string } {
    if (this.stopping) return { ready: false, reason: 'stopping' };
    if (!this.joined) return { ready: false, reason: 'not yet in the consumer group' };
    return this.o.core.ready?.() ?? { ready: true };
  }

  /** Finishes the batch in flight (or abandons it to be aborted), commits, leaves the group, closes producers. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.abort.abort();
    await this.consumer.stop().catch(() => undefined);
    await this.consumer.disconnect().catch(() => undefined);
    const tasks = [...this.tasks.values()];
    this.tasks.clear();
    await Promise.all(tasks.map(async (t) => (await t.catch(() => undefined))?.producer.disconnect().catch(() => undefined)));
    await this.admin.disconnect().catch(() => undefined);
    await this.o.core.close?.();
  }

  private get metrics(): Metrics {
    return this.o.metrics;
  }

  private onAssignment(next: Set<number>): void {
    for (const partition of this.assigned) {
      if (!next.has(partition)) void this.dropTask(partition, 'revoked');
    }
    this.assigned = next;
    this.metrics.assignedPartitions.set({ stage: this.stage }, next.size * this.inputs.length);
    for (const partition of next) void this.task(partition).catch(() => undefined);
    this.o.logger.info('partitions assigned', { partitions: [...next].sort((a, b) => a - b) });
  }

  private async dropTask(partition: number, why: string): Promise<void> {
    const pending = this.tasks.get(partition);
    if (!pending) return;
    this.tasks.delete(partition);
    const task = await pending.catch(() => undefined);
    if (!task) return;
    await task.queue.catch(() => undefined);
    await task.producer.disconnect().catch(() => undefined);
    this.o.logger.info('task closed', { partition, why });
  }

  private task(partition: number): Promise<Task<S>> {
    let pending = this.tasks.get(partition);
    if (!pending) {
      pending = this.initTask(partition);
      pending.catch((err: unknown) => {
        this.o.logger.warn('task init failed', { partition, error: errorMessage(err) });
        if (this.tasks.get(partition) === pending) this.tasks.delete(partition);
      });
      this.tasks.set(partition, pending);
    }
    return pending;
  }

  private async initTask(partition: number): Promise<Task<S>> {
    const producer = this.o.kafka.producer({
      transactionalId: `${this.o.groupId}.task-${partition}`,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: 30_000,
      allowAutoTopicCreation: false,
      // Right after a commit the coordinator answers CONCURRENT_TRANSACTIONS until its markers are
      // written (a few ms): retry quickly, as the Java client does, instead of kafkajs's 300 ms.
      retry: { initialRetryTime: 5, maxRetryTime: 500, multiplier: 2, retries: 20 },
    });
    await producer.connect();
    // Initialising the transactional id fences a previous owner and settles its open transaction,
    // so the committed offsets and the changelog read below are final.
    const fence = await producer.transaction();
    await fence.abort();

    const state = this.changelog ? await this.restoreState(partition) : new Map<string, S>();
    const committed = await this.admin.fetchOffsets({ groupId: this.o.groupId, topics: this.inputs.map((i) => i.name) });
    const positions = new Map<string, bigint>();
    for (const t of committed) {
      const offset = t.partitions.find((p) => p.partition === partition)?.offset ?? '-1';
      positions.set(t.topic, BigInt(offset) < 0n ? 0n : BigInt(offset));
    }
    this.o.logger.info('task ready', { partition, keys: state.size, positions: Object.fromEntries([...positions].map(([k, v]) => [k, v.toString()])) });
    return { partition, producer, state, positions, queue: Promise.resolve() };
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
      const timeout = setTimeout(() => finish(), 120_000);
      await done;
      clearTimeout(timeout);
    } finally {
      await consumer.stop().catch(() => undefined);
      await consumer.disconnect().catch(() => undefined);
      await this.admin.deleteGroups([groupId]).catch(() => undefined);
    }
    this.metrics.stateRestoreSeconds.observe({ stage: this.stage }, (performance.now() - started) / 1000);
    return state;
  }

  private async onBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale, pause } = payload;
    if (this.stopping || !isRunning()) return;
    const backlog = this.o.core.backlog?.() ?? 0;
    if (backlog > this.o.maxBacklog) {
      const resume = pause();
      this.metrics.pausedPartitions.inc({ stage: this.stage });
      const wait = setInterval(() => {
        if ((this.o.core.backlog?.() ?? 0) <= this.o.maxBacklog / 2 || this.stopping) {
          clearInterval(wait);
          this.metrics.pausedPartitions.dec({ stage: this.stage });
          resume();
        }
      }, 20);
      return;
    }
    const task = await this.task(batch.partition);
    const run = task.queue.then(async () => {
      const input = this.inputs.find((i) => i.name === batch.topic)!;
      const position = task.positions.get(batch.topic) ?? 0n;
      const fresh = batch.messages.filter((m) => BigInt(m.offset) >= position);
      const already = batch.messages.length - fresh.length;
      if (already > 0) {
        this.metrics.skipped.inc({ stage: this.stage, reason: 'already-committed' }, already);
        this.o.logger.info('skipped records already committed by a previous owner', { topic: batch.topic, partition: batch.partition, count: already });
      }
      for (let i = 0; i < fresh.length; i += this.o.maxBatchRecords) {
        if (this.stopping || !isRunning() || isStale() || this.tasks.get(batch.partition) === undefined) return;
        const chunk = fresh.slice(i, i + this.o.maxBatchRecords);
        // The batch's last offset can lie past its last record (transaction markers, aborted
        // records): committing past them leaves no phantom lag behind.
        const lastOfBatch = i + this.o.maxBatchRecords >= fresh.length ? BigInt(batch.lastOffset()) : undefined;
        await this.processChunk(task, input, batch.partition, chunk, lastOfBatch);
        resolveOffset(chunk[chunk.length - 1]!.offset);
        this.metrics.consumerLag.set(
          { stage: this.stage, topic: batch.topic, partition: String(batch.partition) },
          Math.max(0, Number(BigInt(batch.highWatermark) - (task.positions.get(batch.topic) ?? 0n))),
        );
        await heartbeat().catch(() => undefined);
      }
      if (fresh.length === 0 && batch.messages.length > 0) resolveOffset(batch.messages[batch.messages.length - 1]!.offset);
    });
    task.queue = run.catch(() => undefined);
    await run;
  }

  private decode(input: { id: TopicId; name: string; kind: MessageKind }, partition: number, m: KafkaMessage): Decoded {
    if (m.value === null) return { ok: false, message: m, code: 'INVALID_RECORD', error: 'record has no value (tombstone)' };
    if (m.value.length > this.o.maxRecordBytes) {
      return { ok: false, message: m, code: 'OVERSIZED_RECORD', error: `record of ${m.value.length} bytes exceeds the limit of ${this.o.maxRecordBytes}` };
    }
    try {
      const value = this.o.registry.decode(input.kind, m.value);
      return {
        ok: true,
        record: { topic: input.id, topicName: input.name, partition, offset: m.offset, key: m.key?.toString() ?? '', value, timestamp: Number(m.timestamp) },
      };
    } catch (err) {
      const code = err instanceof EmotionMuseError ? err.code : 'MALFORMED_AVRO';
      return { ok: false, message: m, code, error: errorMessage(err) };
    }
  }

  private deadLetter(input: { name: string }, partition: number, m: KafkaMessage, code: ErrorCode, error: string): Message {
    this.metrics.deadLetters.inc({ stage: this.stage, code });
    this.o.logger.warn('record dead-lettered', { topic: input.name, partition, offset: m.offset, code, error });
    return {
      key: m.key,
      value: this.o.registry.encode('dead-letter', {
        sourceTopic: input.name,
        sourcePartition: partition,
        sourceOffset: Number(m.offset),
        key: m.key ?? null,
        value: m.value ?? null,
        stage: this.stage,
        errorCode: code,
        errorMessage: error.slice(0, 2000),
        failedTimeMs: Date.now(),
      }),
    };
  }

  private encodeOutput(out: OutputRecord): { topic: string; message: Message } {
    const spec = topicSpec(this.o.topology, out.to);
    if (spec.valueKind === 'state') throw new Error(`cannot produce to ${out.to}`);
    return { topic: spec.name, message: { key: out.key, value: this.o.registry.encode(spec.valueKind, out.value as never) } };
  }

  private async processChunk(task: Task<S>, input: { id: TopicId; name: string; kind: MessageKind }, partition: number, chunk: KafkaMessage[], lastOfBatch?: bigint): Promise<void> {
    const started = performance.now();
    const { metrics, stage } = this;
    metrics.recordsIn.inc({ stage, topic: input.name }, chunk.length);
    metrics.batchSize.observe({ stage }, chunk.length);

    const decoded = chunk.map((m) => this.decode(input, partition, m));
    const good = decoded.flatMap((d) => (d.ok ? [d.record] : []));
    const prepared = this.o.core.prepare && good.length > 0 ? await this.o.core.prepare(good, this.abort.signal) : undefined;

    const staged = new Map<string, S | undefined>();
    const out = new Map<string, Message[]>();
    const push = (topic: string, message: Message) => {
      const list = out.get(topic) ?? [];
      list.push(message);
      out.set(topic, list);
    };
    const deadLetterTopic = topicSpec(this.o.topology, 'dead-letter').name;
    let g = 0;
    for (const d of decoded) {
      if (!d.ok) {
        push(deadLetterTopic, this.deadLetter(input, partition, d.message, d.code, d.error));
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
        const source = chunk.find((m) => m.offset === record.offset)!;
        push(deadLetterTopic, this.deadLetter(input, partition, source, decision.code, decision.message));
      }
    }
    if (this.changelog) {
      for (const [key, value] of staged) {
        push(this.changelog, { key, partition: task.partition, value: value === undefined ? null : JSON.stringify(value) });
      }
    }

    const lastRecord = BigInt(chunk[chunk.length - 1]!.offset);
    const last = lastOfBatch !== undefined && lastOfBatch > lastRecord ? lastOfBatch : lastRecord;
    const txn = await task.producer.transaction();
    try {
      const topicMessages = [...out].map(([topic, messages]) => ({ topic, messages }));
      if (topicMessages.length > 0) await txn.sendBatch({ topicMessages, acks: -1 });
      await txn.sendOffsets({
        consumerGroupId: this.o.groupId,
        topics: [{ topic: input.name, partitions: [{ partition, offset: (last + 1n).toString() }] }],
      });
      await txn.commit();
    } catch (err) {
      metrics.transactionsAborted.inc({ stage });
      this.o.logger.warn('transaction failed; the batch will be retried from the committed offsets', { topic: input.name, partition, error: errorMessage(err) });
      await txn.abort().catch(() => undefined);
      void this.dropTask(task.partition, 'transaction failed');
      throw err;
    }
    for (const [key, value] of staged) {
      if (value === undefined) task.state.delete(key);
      else task.state.set(key, value);
    }
    task.positions.set(input.name, last + 1n);
    for (const [topic, messages] of out) {
      if (topic !== this.changelog) metrics.recordsOut.inc({ stage, topic }, messages.length);
    }
    metrics.transactionSeconds.observe({ stage }, (performance.now() - started) / 1000);
  }
}
