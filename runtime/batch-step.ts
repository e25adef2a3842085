import type { KafkaMessage, Message } from 'kafkajs';
import { EmotionMuseError, type ErrorCode } from '../schemas/errors.ts';
import { decideFailure } from './failure-policy.ts';
import type { Chunk } from './inbox.ts';
import type { Decoded, Input } from './records.ts';
import type { InputRecord, OutputRecord, ProcessorCore } from './processor.ts';

/**
 * One batch through a core, with no broker: decode every record, run the core's `prepare` on the
 * good ones, then `process` each in order against the state staged so far. The result is what a
 * commit protocol writes: outputs and dead letters per topic, the state changes, and the next
 * input offset per topic. The stream runtime and the in-memory test driver both run batches here.
 */

/** How a batch step turns records into Kafka messages (the runtime's encoders, or the driver's). */
export interface BatchIo {
  decode(input: Input, partition: number, message: KafkaMessage): Decoded;
  encode(out: OutputRecord): { topic: string; message: Message };
  deadLetter(input: Input, partition: number, message: KafkaMessage, code: ErrorCode, error: string): Message;
}

/** A batch decoded and through the core's `prepare`, ready for `process` in order. */
export interface Prepared {
  readonly started: number;
  readonly decoded: ReadonlyArray<{ input: Input; message: KafkaMessage; d: Decoded }>;
  readonly prepared: ReadonlyArray<unknown> | undefined;
}

export interface StepOutcome<S> {
  /** The state of every key the batch touched (undefined: deleted). */
  readonly staged: Map<string, S | undefined>;
  /** Outputs and dead letters, per topic name, in order. */
  readonly out: Map<string, Message[]>;
  /** Next input offset per input topic name once this batch is done. */
  readonly next: Map<string, bigint>;
}

/** Decodes a batch and runs the core's `prepare` on its good records. */
export async function prepareBatch(core: ProcessorCore<unknown>, io: BatchIo, partition: number, batch: readonly Chunk[], signal: AbortSignal): Promise<Prepared> {
  const started = performance.now();
  const decoded: Array<{ input: Input; message: KafkaMessage; d: Decoded }> = [];
  for (const chunk of batch) for (const message of chunk.messages) decoded.push({ input: chunk.input, message, d: io.decode(chunk.input, partition, message) });
  const good: InputRecord[] = decoded.flatMap(({ d }) => (d.ok ? [d.record] : []));
  const prepared = core.prepare && good.length > 0 ? await core.prepare(good, signal) : undefined;
  return { started, decoded, prepared };
}

/**
 * Runs `process` on each record of a prepared batch. A record the core rejects is dead-lettered
 * (the failure policy decides); a retriable error throws, and the whole batch is tried again.
 */
export function processBatch<S>(core: ProcessorCore<S>, io: BatchIo, partition: number, state: ReadonlyMap<string, S>, batch: readonly Chunk[], prepared: Prepared): StepOutcome<S> {
  const staged = new Map<string, S | undefined>();
  const out = new Map<string, Message[]>();
  const push = (topic: string, message: Message) => {
    const list = out.get(topic);
    if (list) list.push(message);
    else out.set(topic, [message]);
  };
  let g = 0;
  for (const { input, message, d } of prepared.decoded) {
    if (!d.ok) {
      push(input.deadLetters, io.deadLetter(input, partition, message, d.code, d.error));
      continue;
    }
    const record = d.record;
    const prep = prepared.prepared?.[g++];
    try {
      if (prep instanceof Error) throw prep;
      const current = staged.has(record.key) ? staged.get(record.key) : state.get(record.key);
      const result = core.process(current, record, prep);
      const encoded = result.outputs.map((o) => io.encode(o));
      staged.set(record.key, result.state);
      for (const e of encoded) push(e.topic, e.message);
    } catch (err) {
      const decision = decideFailure(err);
      if (decision.action === 'retry') throw new EmotionMuseError(decision.code, `retrying batch of ${input.name}[${partition}]: ${decision.message}`, { retriable: true, cause: err });
      push(input.deadLetters, io.deadLetter(input, partition, message, decision.code, decision.message));
    }
  }
  return { staged, out, next: nextOffsets(batch) };
}

/** Next offset per input topic once the batch is done: past its last record, or past trailing transaction markers. */
export function nextOffsets(batch: readonly Chunk[]): Map<string, bigint> {
  const next = new Map<string, bigint>();
  for (const chunk of batch) {
    const lastRecord = BigInt(chunk.messages[chunk.messages.length - 1]!.offset);
    next.set(chunk.input.name, (chunk.last > lastRecord ? chunk.last : lastRecord) + 1n);
  }
  return next;
}

/** Applies a batch's staged state to the task's state. */
export function applyStaged<S>(state: Map<string, S>, staged: ReadonlyMap<string, S | undefined>): void {
  for (const [key, value] of staged) {
    if (value === undefined) state.delete(key);
    else state.set(key, value);
  }
}
