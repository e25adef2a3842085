import kafkajs, { type KafkaMessage } from 'kafkajs';
import type { MessageKind } from '../schemas/kinds.ts';
import { SchemaRegistry } from '../schemas/registry.ts';
import { processorSpec, topicSpec, type ProcessorSpec, type TopicId, type Topology } from '../topology/topology.ts';
import { applyStaged, prepareBatch, processBatch, type BatchIo } from './batch-step.ts';
import { KeyState, stageIdleEvictions } from './key-state.ts';
import { batchAttempts, failureCode } from './failure-policy.ts';
import type { Chunk } from './inbox.ts';
import type { ProcessorCore } from './processor.ts';
import { deadLetterMessage, decodeRecord, encodeOutput, inputsOf, type Input } from './records.ts';

/** A record stored in one of the driver's topics. */
interface Stored {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: number;
  /** Order of arrival over every topic: a core with two inputs reads them in this order. */
  readonly seq: number;
}

/** A record read back from a topic, decoded with the topic's schema. */
export interface DriverRecord<V = unknown> {
  readonly key: string;
  readonly value: V;
  readonly partition: number;
  readonly offset: number;
}

export interface DriverOptions {
  readonly topology: Topology;
  /** The cores to run, by processor name in the topology. */
  readonly cores: Readonly<Record<string, ProcessorCore<any, any>>>;
  readonly registry?: SchemaRegistry;
  /** Most records in one batch. @defaultValue 500 */
  readonly maxBatchRecords?: number;
  /** Attempts of a batch that fails with a retriable error before `run` throws. @defaultValue 5 */
  readonly maxAttempts?: number;
  /** Called before a failed batch is tried again (a test may bring a service back here). */
  readonly onRetry?: (stage: string, attempt: number, err: unknown) => void | Promise<void>;
  /** Input records larger than this are dead-lettered. @defaultValue 4 MiB */
  readonly maxRecordBytes?: number;
  /** Keys whose state has not changed for this long are deleted with the next batch of their partition (--state-idle-ms). @defaultValue 0 (never) */
  readonly stateIdleMs?: number;
  /** The clock of the state's idle times. @defaultValue Date.now */
  readonly clock?: () => number;
}

interface Running {
  readonly spec: ProcessorSpec;
  readonly core: ProcessorCore<unknown>;
  readonly inputs: readonly Input[];
  readonly io: BatchIo;
  /** Key state per partition. */
  readonly state: Map<number, KeyState<unknown>>;
  /** Next offset to read, per topic name and partition. */
  readonly positions: Map<string, number>;
}

const partitioner = kafkajs.Partitioners.DefaultPartitioner();

/**
 * Runs processor cores on the runtime's own batch step (runtime/batch-step.ts) with no broker:
 * records piped into a topic are decoded, prepared, processed and committed batch by batch, and
 * what a core writes lands in in-memory topics that the cores reading them take in turn. Records
 * are partitioned as kafkajs's default partitioner would; each partition keeps its own state.
 * Every batch commits atomically (as under exactly-once). A retriable failure retries the batch
 * (`onRetry` is told) as often as its code allows (runtime/failure-policy.ts) and `maxAttempts`;
 * a rejected record is dead-lettered; a core that writes to a topic its topology does not
 * declare fails the run.
 *
 * @example
 * const driver = new TopologyTestDriver({ topology, cores: { passthrough: createPassthroughCore() } });
 * driver.pipe('frames', 'u1', frame);
 * await driver.run();
 * driver.read('passthrough'); // [{ key: 'u1', value: frame, partition, offset }]
 */
export class TopologyTestDriver {
  readonly registry: SchemaRegistry;
  /** Batches tried again after a retriable failure, per stage. */
  readonly retries = new Map<string, number>();
  private readonly topics = new Map<string, Stored[]>();
  private readonly running: Running[];
  private readonly violations: string[] = [];
  private seq = 0;
  private clock = 0;

  constructor(private readonly o: DriverOptions) {
    this.registry = o.registry ?? SchemaRegistry.load();
    this.running = Object.entries(o.cores).map(([name, core]) => {
      const spec = processorSpec(o.topology, name);
      const inputs = inputsOf(o.topology, spec);
      const io: BatchIo = {
        decode: (input, partition, m) => decodeRecord(this.registry, input, partition, m, o.maxRecordBytes ?? 4 * 1024 * 1024),
        encode: (out) => {
          if (!spec.outputs.includes(out.to)) this.violations.push(`${name} wrote to ${out.to}, which its topology does not declare (${spec.outputs.join(', ')})`);
          return encodeOutput(o.topology, this.registry, spec, out);
        },
        deadLetter: (input, partition, m, code, error) => deadLetterMessage(this.registry, core.name, input, partition, m, code, error, 256 * 1024).message,
      };
      return { spec, core, inputs, io, state: new Map(), positions: new Map() };
    });
  }

  /** Encodes `value` with the topic's schema and appends it; `timestamp` defaults to a clock that ticks 1 ms a record. */
  pipe(topic: TopicId, key: string, value: unknown, timestamp?: number): void {
    this.pipeRaw(topic, key, this.registry.encode(this.kindOf(topic), value as never), timestamp);
  }

  /** Appends raw bytes (a corrupt or oversized record; null: a tombstone). */
  pipeRaw(topic: TopicId, key: string | null, value: Buffer | null, timestamp?: number): void {
    this.append(topicSpec(this.o.topology, topic).name, key === null ? null : Buffer.from(key), value, timestamp ?? ++this.clock);
  }

  /** Runs every core until none has anything left to read. */
  async run(): Promise<void> {
    for (let progress = true; progress; ) {
      progress = false;
      for (const r of this.running) while (await this.step(r)) progress = true;
    }
    if (this.violations.length > 0) throw new Error(`topology violated: ${this.violations.join('; ')}`);
  }

  /** Every record of a topic, decoded. */
  read<V = unknown>(topic: TopicId): Array<DriverRecord<V>> {
    const kind = this.kindOf(topic);
    return (this.topics.get(topicSpec(this.o.topology, topic).name) ?? []).map((s) => ({
      key: s.key?.toString() ?? '', value: (s.value === null ? null : this.registry.decode(kind, s.value)) as V, partition: s.partition, offset: s.offset,
    }));
  }

  /** A core's state, every partition's keys together. */
  state<S = unknown>(stage: string): Map<string, S> {
    const r = this.running.find((x) => x.spec.name === stage);
    if (!r) throw new Error(`no core "${stage}" in this driver`);
    const all = new Map<string, S>();
    for (const keys of r.state.values()) for (const [k, v] of keys) all.set(k, v as S);
    return all;
  }

  private kindOf(topic: TopicId): MessageKind {
    const kind = topicSpec(this.o.topology, topic).valueKind;
    if (kind === 'state') throw new Error(`${topic} is not a message topic`);
    return kind;
  }

  private append(name: string, key: Buffer | null, value: Buffer | null, timestamp: number): void {
    const log = this.topics.get(name) ?? [];
    this.topics.set(name, log);
    const partitions = this.o.topology.topics.find((t) => t.name === name)?.partitions ?? 1;
    const partition = partitioner({ topic: name, partitionMetadata: Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] })), message: { key, value } });
    log.push({ key, value, partition, offset: log.filter((s) => s.partition === partition).length, timestamp, seq: ++this.seq });
  }

  /** One batch of one partition of a core, if it has records waiting; false when none has. */
  private async step(r: Running): Promise<boolean> {
    const waiting = r.inputs.flatMap((input) => (this.topics.get(input.name) ?? []).filter((s) => s.offset >= (r.positions.get(`${input.name}/${s.partition}`) ?? 0)).map((s) => ({ input, s })));
    if (waiting.length === 0) return false;
    waiting.sort((a, b) => a.s.seq - b.s.seq);
    const partition = waiting[0]!.s.partition;
    const batch: Chunk[] = [];
    for (const { input, s } of waiting.filter((w) => w.s.partition === partition).slice(0, this.o.maxBatchRecords ?? 500)) {
      const m: KafkaMessage = { key: s.key, value: s.value, offset: String(s.offset), timestamp: String(s.timestamp), attributes: 0, headers: {} };
      const tail = batch[batch.length - 1];
      if (tail?.input === input) tail.messages.push(m);
      else batch.push({ input, messages: [m], last: BigInt(s.offset), fetchedAt: 0 });
    }
    const state = r.state.get(partition) ?? new KeyState<unknown>(this.o.clock);
    r.state.set(partition, state);
    for (let attempt = 1; ; attempt++) {
      try {
        const prepared = await prepareBatch(r.core, r.io, partition, batch, new AbortController().signal);
        const outcome = processBatch(r.core, r.io, partition, state, batch, prepared);
        stageIdleEvictions(state, outcome.staged, this.o.stateIdleMs ?? 0);
        for (const [topic, messages] of outcome.out) for (const m of messages) this.append(topic, m.key == null ? null : Buffer.from(m.key), m.value == null ? null : Buffer.from(m.value), ++this.clock);
        applyStaged(state, outcome.staged);
        for (const [topic, next] of outcome.next) r.positions.set(`${topic}/${partition}`, Number(next));
        return true;
      } catch (err) {
        if (attempt >= Math.min(this.o.maxAttempts ?? 5, batchAttempts(failureCode(err), 0))) throw err;
        this.retries.set(r.spec.name, (this.retries.get(r.spec.name) ?? 0) + 1);
        await this.o.onRetry?.(r.spec.name, attempt, err);
      }
    }
  }
}
