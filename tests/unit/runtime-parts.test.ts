import kafkajs, { type Batch, type KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { applyStaged, nextOffsets } from '../../runtime/batch-step.ts';
import { Inbox, type Chunk } from '../../runtime/inbox.ts';
import { brokerUnreachable } from '../../runtime/kafka.ts';
import { mergeByTopic, splitBySize } from '../../runtime/produce.ts';
import { deadLetterMessage, decodeRecord, encodeOutput, inputsOf } from '../../runtime/records.ts';
import { admit, type Task } from '../../runtime/task.ts';
import { SchemaRegistry } from '../../schemas/registry.ts';
import type { DeadLetter, Frame } from '../../schemas/generated/types.ts';
import { buildTopology, processorSpec } from '../../topology/topology.ts';

const registry = SchemaRegistry.load();
const topology = buildTopology({ prefix: 't.', partitions: 2 });
const [frames] = inputsOf(topology, processorSpec(topology, 'passthrough'));
const msg = (offset: number, bytes = 10, key: string | null = 'u'): KafkaMessage => ({ key: key === null ? null : Buffer.from(key), value: Buffer.alloc(bytes), offset: String(offset), timestamp: '0', attributes: 0, headers: {} });
const chunk = (from: number, n: number, bytes = 10, last?: number): Chunk => ({ input: frames!, messages: Array.from({ length: n }, (_, i) => msg(from + i, bytes)), last: BigInt(last ?? from + n - 1), fetchedAt: 0 });
const frame = (user: string): Frame => ({ userId: user, sessionId: 's', seq: 1, captureTimeMs: 1, encoding: 'GRAY8', width: 2, height: 2, data: Buffer.alloc(4), faceBox: null, probabilities: [], edgeModelVersion: '' });

describe('inbox: batches and backpressure', () => {
  it('takes at most maxBatchRecords in arrival order, splitting a chunk, and says when to pause and when to resume', () => {
    const inbox = new Inbox({ maxBatchRecords: 4, maxBacklog: 6, maxBacklogBytes: 1_000_000 });
    expect(inbox.push(chunk(0, 3))).toBe(false);
    expect(inbox.push(chunk(3, 3))).toBe(false);
    expect(inbox.push(chunk(6, 1)), '7 waiting > 6: pause').toBe(true);
    const first = inbox.take();
    expect(first.flatMap((c) => c.messages.map((m) => Number(m.offset)))).toEqual([0, 1, 2, 3]);
    expect(first[1]!.last, 'a split chunk commits past its own last record only').toBe(3n);
    expect(inbox.done(first), '3 waiting is not yet half of 6').toBe(true);
    const second = inbox.take();
    expect(second.flatMap((c) => c.messages.map((m) => Number(m.offset)))).toEqual([4, 5, 6]);
    expect(inbox.length).toBe(0);
  });

  it('pauses on waiting bytes as well as records', () => {
    const inbox = new Inbox({ maxBatchRecords: 100, maxBacklog: 1000, maxBacklogBytes: 1000 });
    expect(inbox.push(chunk(0, 2, 400))).toBe(false);
    expect(inbox.push(chunk(2, 1, 400))).toBe(true);
    const batch = inbox.take();
    expect(inbox.done(batch)).toBe(true);
    inbox.push(chunk(3, 1));
    inbox.clear();
    expect(inbox.take()).toEqual([]);
  });
});

describe('batch step helpers', () => {
  it('commits past trailing transaction markers, and applies staged state (undefined deletes)', () => {
    expect(nextOffsets([chunk(0, 2, 10, 5)])).toEqual(new Map([[frames!.name, 6n]]));
    expect(nextOffsets([chunk(0, 2)])).toEqual(new Map([[frames!.name, 2n]]));
    const state = new Map([['a', 1], ['b', 2]]);
    applyStaged(state, new Map<string, number | undefined>([['a', undefined], ['c', 3]]));
    expect([...state]).toEqual([['b', 2], ['c', 3]]);
  });
});

describe('task: what a fetched batch brings', () => {
  const task = () => ({ positions: new Map([[frames!.name, 5n]]), fetched: new Map([[frames!.name, 5n]]), seeking: new Map<string, bigint>() }) as unknown as Task<unknown>;
  const batch = (offsets: number[], lastOffset: number, fetchedOffset = offsets[0]!) =>
    ({ topic: frames!.name, partition: 0, messages: offsets.map((o) => msg(o)), lastOffset: () => String(lastOffset), fetchedOffset: String(fetchedOffset) }) as unknown as Batch;

  it('hands over only records not yet handed over, counts those a previous owner committed, and moves past markers', () => {
    const t = task();
    const a = admit(t, batch([3, 4, 5, 6], 8))!;
    expect(a.fresh.map((m) => Number(m.offset))).toEqual([5, 6]);
    expect(a.already).toBe(2);
    expect(a.last).toBe(8n);
    expect(t.fetched.get(frames!.name)).toBe(9n);
    expect(admit(t, batch([6], 6))!.fresh, 'a refetch of what was handed over brings nothing').toEqual([]);
  });

  it('drops a batch fetched from beyond the offset a reset sent the consumer back to', () => {
    const t = task();
    t.seeking.set(frames!.name, 5n);
    expect(admit(t, batch([9, 10], 10, 9))).toBeNull();
    expect(admit(t, batch([5, 6], 6, 5))!.fresh.map((m) => Number(m.offset))).toEqual([5, 6]);
    expect(t.seeking.size).toBe(0);
  });
});

describe('records: decoding, outputs and dead letters', () => {
  it('decodes a good record, and names what is wrong with a bad one', () => {
    const good = decodeRecord(registry, frames!, 1, { ...msg(7), value: registry.encode('frame', frame('u')) }, 1024);
    expect(good).toMatchObject({ ok: true, record: { topic: 'frames', topicName: 't.frames.v1', partition: 1, offset: '7', key: 'u' } });
    expect(decodeRecord(registry, frames!, 1, { ...msg(7), value: null }, 1024)).toMatchObject({ ok: false, code: 'INVALID_RECORD' });
    expect(decodeRecord(registry, frames!, 1, msg(7, 2048), 1024)).toMatchObject({ ok: false, code: 'OVERSIZED_RECORD' });
    expect(decodeRecord(registry, frames!, 1, { ...msg(7, 10, 'other'), value: registry.encode('frame', frame('u')) }, 1024)).toMatchObject({ ok: false, code: 'INVALID_RECORD' });
  });

  it('encodes only to a topic the processor declares', () => {
    const spec = processorSpec(topology, 'passthrough');
    expect(encodeOutput(topology, registry, spec, { to: 'passthrough', key: 'u', value: frame('u') }).topic).toBe('t.passthrough.v1');
    expect(() => encodeOutput(topology, registry, spec, { to: 'recommendations', key: 'u', value: {} })).toThrow(expect.objectContaining({ code: 'PROCESSING_FAILED' }));
  });

  it('keeps at most valueMax bytes of a value in a dead letter, with its size and digest, and cuts a huge key', () => {
    const m = { ...msg(3, 5000, 'k'.repeat(5000)) };
    const { message, truncated } = deadLetterMessage(registry, 'classifier', frames!, 0, m, 'OVERSIZED_RECORD', 'too big', 1024);
    expect(truncated).toBe(true);
    const dead = registry.decode('dead-letter', message.value as Buffer) as DeadLetter;
    expect(dead).toMatchObject({ sourceTopic: 't.frames.v1', sourceOffset: 3, stage: 'classifier', errorCode: 'OVERSIZED_RECORD', valueBytes: 5000, valueTruncated: true });
    expect(dead.value!.length).toBe(1024);
    expect(dead.valueSha256).toMatch(/^[0-9a-f]{64}$/);
    expect((message.key as Buffer).length).toBe(1024);
  });
});

describe('produce requests', () => {
  it('merges entries of one topic and splits requests under the byte limit (a larger record alone)', () => {
    const m = (n: number) => ({ key: null, value: Buffer.alloc(n) });
    expect(mergeByTopic([{ topic: 'a', messages: [m(1)] }, { topic: 'b', messages: [m(1)] }, { topic: 'a', messages: [m(2)] }]).map((t) => [t.topic, t.messages.length])).toEqual([['a', 2], ['b', 1]]);
    const parts = splitBySize([{ topic: 'a', messages: [m(400), m(400), m(5000), m(10)] }], 1000);
    expect(parts.map((p) => p.flatMap((t) => t.messages.map((x) => (x.value as Buffer).length)))).toEqual([[400, 400], [5000], [10]]);
  });
});

describe('task manager: a partition whose batches keep failing', () => {
  it('counts as stalled once its first failure is older than the stall timeout, and not after a batch commits', async () => {
    const { TaskManager } = await import('../../runtime/task-manager.ts');
    const { createMetrics } = await import('../../runtime/metrics.ts');
    const { createLogger } = await import('../../runtime/log.ts');
    const metrics = createMetrics();
    // Only the failure bookkeeping runs here: no task starts, so no client is needed.
    const none = undefined as never;
    const tasks = new TaskManager<unknown>({
      kafka: none, admin: none, consumer: none, protocol: none, inputs: [frames!], changelog: undefined, groupId: 'g', stage: 'recommender', metrics, logger: createLogger('error'),
      limits: { maxBatchRecords: 10, maxBacklog: 10, maxBacklogBytes: 1 << 20, stallTimeoutMs: 1000, maxBatchRetries: 0, restoreTimeoutMs: 1000 },
      resume: () => undefined, stopping: () => false, crash: () => undefined,
    });
    const t0 = Date.now();
    tasks.failing(2);
    tasks.failing(2); // the timer runs from the first failure
    expect(tasks.stalled(t0 + 500)).toEqual([]);
    expect(tasks.stalled(t0 + 1500)).toEqual([2]);
    const gauge = async () => (await metrics.partitionsStalled.get()).values.find((v) => v.labels.stage === 'recommender')?.value;
    tasks.succeeded(2);
    expect(tasks.stalled(t0 + 1500)).toEqual([]);
    expect(await gauge()).toBe(0);
  });
});

describe('which start failures wait for the brokers', () => {
  // kafkajs's typings leave out its error classes' constructor arguments
  const protocolError = (type: string, code: number, retriable: boolean) => new (kafkajs.KafkaJSProtocolError as unknown as new (e: object) => Error)({ type, code, retriable, message: type });
  it('waits on refused or closed connections and starting brokers, wrapped or not, and not on refusals', () => {
    const refused = new kafkajs.KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9292');
    expect(brokerUnreachable(refused)).toBe(true);
    // kafkajs's retrier gives up with the last error as its cause
    expect(brokerUnreachable(Object.assign(new kafkajs.KafkaJSError('Number of retries exceeded'), { name: 'KafkaJSNumberOfRetriesExceeded', cause: refused }))).toBe(true);
    expect(brokerUnreachable(protocolError('COORDINATOR_NOT_AVAILABLE', 15, true))).toBe(true);
    expect(brokerUnreachable(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(true);
    expect(brokerUnreachable(protocolError('TOPIC_AUTHORIZATION_FAILED', 29, false))).toBe(false);
    expect(brokerUnreachable(new (kafkajs.KafkaJSSASLAuthenticationError as unknown as new (m: string) => Error)('SASL SCRAM SHA512 authentication failed'))).toBe(false);
    expect(brokerUnreachable(new Error('changelog has 3 partitions, its input 6'))).toBe(false);
  });
});
