import { createHash } from 'node:crypto';
import kafkajs, { type Admin, type KafkaMessage, type Message } from 'kafkajs';
import type { MessageKind } from '../schemas/kinds.ts';
import type { SchemaRegistry } from '../schemas/registry.ts';
import { errorMessage, EmotionMuseError, type ErrorCode } from '../schemas/errors.ts';
import { checkRecord } from '../schemas/validate.ts';
import { topicSpec, type ProcessorSpec, type TopicId, type Topology } from '../topology/topology.ts';
import type { BatchIo } from './batch-step.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { InputRecord, OutputRecord } from './processor.ts';

/**
 * Records in and out of a processor: decoding and checking an input record, encoding an output
 * with its topic's schema (only to a topic the processor's spec declares), and the dead letter of
 * a record that cannot be processed. No broker is involved here.
 */

/** An input topic, and where its dead letters go (frames' to a topic that keeps them no longer than frames). */
export interface Input {
  readonly id: TopicId;
  readonly name: string;
  readonly kind: MessageKind;
  readonly deadLetters: string;
}

/** The processor's input topics, from the topology. */
export function inputsOf(topology: Topology, spec: ProcessorSpec): Input[] {
  return spec.inputs.map((id) => {
    const t = topicSpec(topology, id);
    if (t.valueKind === 'state') throw new Error(`input ${id} is not a message topic`);
    return { id, name: t.name, kind: t.valueKind, deadLetters: topicSpec(topology, t.valueKind === 'frame' ? 'dead-letter-frames' : 'dead-letter').name };
  });
}

export type Decoded = { ok: true; record: InputRecord } | { ok: false; code: ErrorCode; error: string };

/**
 * Decodes and checks one input record. Every topic is keyed by user id: the key is the record's
 * identity (the gateway sets it from the caller's token), so a record that names a user must have
 * that user as its key.
 */
export function decodeRecord(registry: SchemaRegistry, input: Input, partition: number, m: KafkaMessage, maxRecordBytes: number): Decoded {
  if (m.value === null) return { ok: false, code: 'INVALID_RECORD', error: 'record has no value (tombstone)' };
  if (m.value.length > maxRecordBytes) return { ok: false, code: 'OVERSIZED_RECORD', error: `record of ${m.value.length} bytes exceeds the limit of ${maxRecordBytes}` };
  try {
    const value = registry.decode(input.kind, m.value);
    const problem = checkRecord(input.kind, value);
    if (problem) return { ok: false, code: 'INVALID_RECORD', error: problem };
    const userId = (value as { userId?: unknown }).userId;
    if (typeof userId === 'string') {
      if (m.key === null || m.key.length === 0) return { ok: false, code: 'INVALID_RECORD', error: `record of user "${userId.slice(0, 64)}" has no key` };
      if (m.key.toString() !== userId) return { ok: false, code: 'INVALID_RECORD', error: `record key "${m.key.toString().slice(0, 64)}" is not the record's user "${userId.slice(0, 64)}"` };
    }
    return { ok: true, record: { topic: input.id, topicName: input.name, partition, offset: m.offset, key: m.key?.toString() ?? '', value, timestamp: Number(m.timestamp), ...(m.headers && Object.keys(m.headers).length > 0 ? { headers: m.headers } : {}) } };
  } catch (err) {
    return { ok: false, code: err instanceof EmotionMuseError ? err.code : 'MALFORMED_AVRO', error: errorMessage(err) };
  }
}

/** Encodes an output for the topic it names; a topic the processor's spec does not declare is a programming error. */
export function encodeOutput(topology: Topology, registry: SchemaRegistry, spec: ProcessorSpec, out: OutputRecord): { topic: string; message: Message } {
  if (!spec.outputs.includes(out.to)) throw new EmotionMuseError('PROCESSING_FAILED', `${spec.name} may not write to ${out.to}: its topology declares ${spec.outputs.join(', ') || 'no outputs'}`);
  const t = topicSpec(topology, out.to);
  if (t.valueKind === 'state') throw new Error(`cannot produce to ${out.to}`);
  return { topic: t.name, message: { key: out.key, value: registry.encode(t.valueKind, out.value as never) } };
}

/**
 * The dead letter of an input record: where it came from, the error, and at most `valueMax` bytes
 * of its value (the rest summed up by its size and SHA-256). A key is an id of a few hundred bytes
 * at most; a larger one is cut like a value.
 */
export function deadLetterMessage(registry: SchemaRegistry, stage: string, input: Input, partition: number, m: KafkaMessage, code: ErrorCode, error: string, valueMax: number): { message: Message; truncated: boolean } {
  const value = m.value ?? null;
  const truncated = value !== null && value.length > valueMax;
  const key = m.key && m.key.length > 1024 ? m.key.subarray(0, 1024) : m.key;
  const dead = {
    sourceTopic: input.name,
    sourcePartition: partition,
    sourceOffset: Number(m.offset),
    key: key ?? null,
    value: truncated ? value.subarray(0, valueMax) : value,
    stage,
    errorCode: code,
    errorMessage: error.slice(0, 2000),
    failedTimeMs: Date.now(),
    valueBytes: value?.length ?? -1,
    valueTruncated: truncated,
    valueSha256: value ? createHash('sha256').update(value).digest('hex') : '',
  };
  return { message: { key, value: registry.encode('dead-letter', dead) }, truncated };
}

/**
 * Reads max.message.bytes of the inputs and the dead-letter topics, and returns how much of a
 * value a dead letter may keep: at most `configured`, and under the dead-letter topic's limit (a
 * dead letter that cannot be written would fail its batch for ever).
 */
export async function deadLetterValueLimit(admin: Admin, inputs: readonly Input[], configured: number, maxRecordBytes: number, logger: Logger): Promise<number> {
  const deadLetterTopics = [...new Set(inputs.map((i) => i.deadLetters))];
  const names = [...inputs.map((i) => i.name), ...deadLetterTopics];
  const limits = new Map<string, number>();
  try {
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: names.map((name) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name, configNames: ['max.message.bytes'] })),
    });
    for (const r of described.resources) {
      const v = r.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue;
      if (v) limits.set(r.resourceName, Number(v));
    }
  } catch (err) {
    logger.warn('could not read the topics\' max.message.bytes; dead letters keep the configured limit', { error: errorMessage(err) });
  }
  const known = deadLetterTopics.map((t) => limits.get(t)).filter((n): n is number => n !== undefined);
  // Room for the rest of the dead letter (key, topic, message) and the batch's own overhead.
  const max = known.length > 0 ? Math.max(1024, Math.min(configured, Math.min(...known) - 64 * 1024)) : configured;
  logger.info('record size limits', { topics: Object.fromEntries(limits), maxRecordBytes, deadLetterValueMax: max });
  return max;
}

/** The runtime's encoders for a batch step: dead letters counted, logged (coordinates, code and sizes; never the value) and cut to `valueMax()`. */
export function recordIo(registry: SchemaRegistry, topology: Topology, spec: ProcessorSpec, stage: string, maxRecordBytes: number, valueMax: () => number, metrics: Metrics, logger: Logger): BatchIo {
  return {
    decode: (input, partition, m) => decodeRecord(registry, input, partition, m, maxRecordBytes),
    encode: (out) => encodeOutput(topology, registry, spec, out),
    deadLetter: (input, partition, m, code, error) => {
      metrics.deadLetters.inc({ stage, code });
      const { message, truncated } = deadLetterMessage(registry, stage, input, partition, m, code, error, valueMax());
      logger.warn('record dead-lettered', { topic: input.name, partition, offset: m.offset, code, error, ...(truncated ? { valueBytes: m.value?.length, truncatedTo: valueMax() } : {}) });
      return message;
    },
  };
}
