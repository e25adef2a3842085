import type { MessageKind } from '../schemas/kinds.ts';

export type TopicId = 'frames' | 'emotion-scores' | 'emotion-changes' | 'listens' | 'recommendations' | 'dead-letter' | 'dead-letter-frames' | 'passthrough';

/** A topic as data. `name` is the full name with its version suffix and the deployment's prefix. */
export interface TopicSpec {
  readonly id: TopicId | 'changelog';
  readonly name: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  /** retention.ms; -1 keeps forever. */
  readonly retentionMs: number;
  /**
   * segment.ms: the broker deletes (or compacts) whole closed segments only, so a record can
   * outlive its retention by up to this long. Kept at most a day (the broker's default is 7 d),
   * and no longer than the retention, so that personal data goes on time.
   */
  readonly segmentMs: number;
  readonly cleanupPolicy: 'delete' | 'compact' | 'compact,delete';
  /**
   * message.timestamp.type. `LogAppendTime` on the topics the stages write: a record's timestamp
   * is when the broker stored it, the moment a reader can have it, whatever the writer's clock
   * (the latency benchmark times scores by it). `CreateTime` where the writer's time is the
   * meaning: frames carry their capture time, listens the player's.
   */
  readonly timestampType: 'CreateTime' | 'LogAppendTime';
  /** What the record key holds. */
  readonly key: 'userId';
  /** The Avro message kind of the values; `state` for a changelog of processor state (JSON). */
  readonly valueKind: MessageKind | 'state';
  readonly description: string;
}

/**
 * How a processor commits a batch. `exactly-once`: outputs, state and input offsets in one Kafka
 * transaction. `at-least-once`: outputs acknowledged, then offsets committed every interval; a
 * crash repeats the records since the last commit, so the consumers of its outputs must drop
 * duplicates.
 */
export type Guarantee = 'exactly-once' | 'at-least-once';
export const GUARANTEES = ['exactly-once', 'at-least-once'] as const satisfies readonly Guarantee[];

/** A processor as data: what it reads, what it writes, whether it keeps per-key state, and how it commits. */
export interface ProcessorSpec {
  readonly name: string;
  readonly inputs: readonly TopicId[];
  readonly outputs: readonly TopicId[];
  /** Per-key state kept in a compacted changelog topic, written with the outputs. */
  readonly stateful: boolean;
  /** The default; `--guarantee` overrides it per deployment. */
  readonly guarantee: Guarantee;
  /** Part of the changelog's name: bump it when the state's shape or its parameters change. */
  readonly stateVersion?: string;
  readonly description: string;
}

/**
 * A client that is not a stream processor (it commits nothing), as data: what it writes and reads.
 * Its consumer groups begin with `<prefix><name>-`.
 */
export interface ClientSpec {
  readonly name: string;
  readonly writes: readonly TopicId[];
  readonly reads: readonly TopicId[];
  readonly description: string;
}

export interface Topology {
  readonly prefix: string;
  readonly topics: readonly TopicSpec[];
  readonly processors: readonly ProcessorSpec[];
  readonly clients: readonly ClientSpec[];
}

export interface TopologyOptions {
  /** Prepended to every topic name; tests use a random one. @defaultValue "emotionmuse." */
  readonly prefix?: string;
  /** Partitions of every user-keyed topic (they are co-partitioned). @defaultValue 6 */
  readonly partitions?: number;
  /** @defaultValue 1 (single local broker) */
  readonly replicationFactor?: number;
  /**
   * State version of each stateful processor's default parameters (part of its changelog's name),
   * as its core derives it; the processors' wiring supplies it (processors/index.ts). A processor
   * whose parameters differ writes to a changelog of its own version. @defaultValue v1
   */
  readonly stateVersions?: Readonly<Record<string, string>>;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Frames (and the dead letters that carry them) are personal data: kept one hour. */
const FRAME_RETENTION_MS = 1 * HOUR;

/**
 * The whole topic layout and processor graph of EmotionMuse, in one place.
 *
 * @example
 * const t = buildTopology({ prefix: 'emotionmuse.' });
 * topicName(t, 'frames'); // "emotionmuse.frames.v1"
 */
export function buildTopology(options: TopologyOptions = {}): Topology {
  const prefix = options.prefix ?? 'emotionmuse.';
  const partitions = options.partitions ?? 6;
  const replicationFactor = options.replicationFactor ?? 1;
  const topic = (id: TopicId, version: number, rest: Omit<TopicSpec, 'id' | 'name' | 'replicationFactor' | 'key' | 'segmentMs'> ): TopicSpec => ({
    id, name: `${prefix}${id}.v${version}`, replicationFactor, key: 'userId', segmentMs: Math.min(rest.retentionMs, DAY), ...rest,
  });
  return {
    prefix,
    topics: [
      topic('frames', 1, { timestampType: 'CreateTime', partitions, retentionMs: FRAME_RETENTION_MS, cleanupPolicy: 'delete', valueKind: 'frame', description: 'Camera frames from edge clients. Short retention: raw faces are personal data.' }),
      topic('emotion-scores', 1, { timestampType: 'LogAppendTime', partitions, retentionMs: 1 * DAY, cleanupPolicy: 'delete', valueKind: 'emotion-score', description: 'Per-frame 7-class emotion probabilities.' }),
      topic('emotion-changes', 1, { timestampType: 'LogAppendTime', partitions, retentionMs: 7 * DAY, cleanupPolicy: 'delete', valueKind: 'emotion-change', description: 'Smoothed emotion label changes (hysteresis output).' }),
      topic('listens', 1, { timestampType: 'CreateTime', partitions, retentionMs: 7 * DAY, cleanupPolicy: 'delete', valueKind: 'listen', description: 'Plays reported by players.' }),
      topic('recommendations', 1, { timestampType: 'LogAppendTime', partitions, retentionMs: 7 * DAY, cleanupPolicy: 'delete', valueKind: 'recommendation', description: 'Ranked track lists per user.' }),
      topic('dead-letter', 1, { timestampType: 'LogAppendTime', partitions: 3, retentionMs: 14 * DAY, cleanupPolicy: 'delete', valueKind: 'dead-letter', description: 'Records a stage could not process, with source coordinates and error code (frames excepted: dead-letter-frames).' }),
      topic('dead-letter-frames', 1, { timestampType: 'LogAppendTime', partitions: 3, retentionMs: FRAME_RETENTION_MS, cleanupPolicy: 'delete', valueKind: 'dead-letter', description: 'Frames a stage could not process: they may hold faces, so they are kept no longer than the frames topic keeps them.' }),
      topic('passthrough', 1, { timestampType: 'LogAppendTime', partitions, retentionMs: 1 * HOUR, cleanupPolicy: 'delete', valueKind: 'frame', description: 'Output of the pass-through processor (validated frames); used to exercise the runtime.' }),
    ],
    processors: [
      { name: 'classifier', inputs: ['frames'], outputs: ['emotion-scores', 'dead-letter-frames'], stateful: false, guarantee: 'at-least-once', description: 'Stage 1: face detection, crop, grey, resize, (CLAHE), emotion CNN on ONNX Runtime; per-frame 7-class probabilities.' },
      { name: 'smoother', inputs: ['emotion-scores'], outputs: ['emotion-changes', 'dead-letter'], stateful: true, stateVersion: options.stateVersions?.smoother, guarantee: 'at-least-once', description: 'Stage 2 (temporal): a forward filter over the seven classes (sticky transitions, time-based), a change when a new label\'s posterior reaches 0.98 (--scheme paper: the paper\'s T=10 windows and H=5); per-user state in a changelog.' },
      { name: 'recommender', inputs: ['emotion-changes', 'listens'], outputs: ['recommendations', 'dead-letter'], stateful: false, guarantee: 'at-least-once', description: 'Stages 3 and 4: per-user state in Redis, Bi-LSTM scoring (ONNX) of the whole catalogue, emotion-compatibility reranking, top-K list per user.' },
      { name: 'passthrough', inputs: ['frames'], outputs: ['passthrough', 'dead-letter-frames'], stateful: true, stateVersion: options.stateVersions?.passthrough ?? 'v1', guarantee: 'exactly-once', description: 'Validates frames and forwards them, counting frames per user in changelogged state (exercises the runtime).' },
    ],
    clients: [
      { name: 'gateway', writes: ['frames', 'listens'], reads: ['emotion-scores', 'emotion-changes', 'recommendations'], description: 'WebSocket and HTTP front door: frames and listens in, each user\'s own events out.' },
      { name: 'edge', writes: ['frames'], reads: [], description: 'Edge clients publishing straight to Kafka (emotionmuse publish, replay).' },
    ],
  };
}

export function topicSpec(topology: Topology, id: TopicId): TopicSpec {
  const spec = topology.topics.find((t) => t.id === id);
  if (!spec) throw new Error(`topology has no topic "${id}"`);
  return spec;
}

export function topicName(topology: Topology, id: TopicId): string {
  return topicSpec(topology, id).name;
}

/** The compacted changelog topic of a stateful processor, co-partitioned with its inputs. */
export function changelogTopic(topology: Topology, processor: ProcessorSpec, stateVersion = processor.stateVersion ?? 'v1'): TopicSpec {
  const input = topicSpec(topology, processor.inputs[0]!);
  return {
    id: 'changelog',
    name: `${topology.prefix}${processor.name}.state-${stateVersion}.changelog`,
    partitions: input.partitions,
    replicationFactor: input.replicationFactor,
    retentionMs: -1,
    // a closed segment is compacted within a day: a forgotten user's old values go within two
    segmentMs: DAY,
    cleanupPolicy: 'compact',
    timestampType: 'CreateTime',
    key: 'userId',
    valueKind: 'state',
    description: `State changelog of ${processor.name} (compacted; written in the processing transaction under exactly once, before each offset commit under at least once).`,
  };
}

/** Every topic the deployment needs: the declared ones and the changelogs of stateful processors. */
export function allTopics(topology: Topology): TopicSpec[] {
  return [...topology.topics, ...topology.processors.filter((p) => p.stateful).map((p) => changelogTopic(topology, p))];
}

export function processorSpec(topology: Topology, name: string): ProcessorSpec {
  const spec = topology.processors.find((p) => p.name === name);
  if (!spec) throw new Error(`topology has no processor "${name}"`);
  return spec;
}

/** Checks the rules the runtime relies on: unique names, and co-partitioned inputs of every processor. */
export function validateTopology(topology: Topology): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  for (const t of topology.topics) {
    if (names.has(t.name)) problems.push(`duplicate topic name ${t.name}`);
    names.add(t.name);
    if (t.partitions < 1) problems.push(`${t.name}: partitions must be >= 1`);
  }
  for (const p of topology.processors) {
    const counts = new Set(p.inputs.map((id) => topicSpec(topology, id).partitions));
    if (counts.size > 1) problems.push(`${p.name}: inputs ${p.inputs.join(', ')} are not co-partitioned`);
  }
  return problems;
}
