import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Latency buckets in seconds that resolve single milliseconds at the low end. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5];
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

type MetricKind = 'counter' | 'gauge' | 'histogram';
interface MetricSpec {
  readonly kind: MetricKind;
  readonly name: string;
  readonly help: string;
  readonly labels: readonly string[];
  readonly buckets?: readonly number[];
}

/**
 * Label values, each written once: the code that counts, the dashboards (observability/
 * dashboards.ts), the alert and recording rules, the latency table and the metrics' help texts
 * take them from here, and a unit test checks that none uses another.
 */
export const LABELS = {
  /** emotionmuse_stage_step_seconds: the runtime's own steps, then the stages'. */
  step: ['fetch', 'queue', 'commit', 'decode', 'detect', 'preprocess', 'infer', 'smooth', 'score', 'rerank', 'redis', 'record'],
  /** emotionmuse_records_skipped_total: records deliberately not processed. */
  skipReason: ['already-committed', 'late-or-duplicate', 'repeated-change'],
  /** emotionmuse_recommendations_total. */
  trigger: ['EMOTION_CHANGE', 'LISTEN', 'REQUEST'],
  /** emotionmuse_end_to_end_seconds. */
  path: ['score', 'change', 'list'],
  /** emotionmuse_frames_without_face_total: who found no face (the classifier's detector, or the edge client's). */
  faceSource: ['server', 'edge'],
  /** emotionmuse_state_resets_total: why a user's smoothing state started over. */
  resetReason: ['new-session', 'gap'],
} as const;

export type StepName = (typeof LABELS.step)[number];
export type SkipReason = (typeof LABELS.skipReason)[number];
export type ResetReason = (typeof LABELS.resetReason)[number];

/**
 * The one table of metrics. Code registers from it and the dashboards are written against these
 * names. No label ever carries a user id.
 */
export const METRICS = {
  recordsIn: { kind: 'counter', name: 'emotionmuse_records_in_total', help: 'Records consumed, by stage and source topic.', labels: ['stage', 'topic'] },
  recordsOut: { kind: 'counter', name: 'emotionmuse_records_out_total', help: 'Records produced, by stage and destination topic.', labels: ['stage', 'topic'] },
  deadLetters: { kind: 'counter', name: 'emotionmuse_dead_letters_total', help: 'Records sent to the dead-letter topic, by stage and error code.', labels: ['stage', 'code'] },
  skipped: { kind: 'counter', name: 'emotionmuse_records_skipped_total', help: `Records deliberately not processed, by stage and reason (${LABELS.skipReason.join(', ')}).`, labels: ['stage', 'reason'] },
  facelessFrames: { kind: 'counter', name: 'emotionmuse_frames_without_face_total', help: `Frames processed in which no face was found (scored as faceless, not skipped), by stage and who looked (${LABELS.faceSource.join(', ')}).`, labels: ['stage', 'source'] },
  stateResets: { kind: 'counter', name: 'emotionmuse_state_resets_total', help: `Users whose state started over (the record itself is processed), by stage and reason (${LABELS.resetReason.join(', ')}).`, labels: ['stage', 'reason'] },
  stateKeys: { kind: 'gauge', name: 'emotionmuse_state_keys', help: 'Keys (users) a stateful stage holds in memory on this instance, over its tasks.', labels: ['stage'] },
  stateEvictions: { kind: 'counter', name: 'emotionmuse_state_evictions_total', help: 'Keys a stateful stage forgot after --state-idle-ms without a change (a changelog tombstone each).', labels: ['stage'] },
  batchSize: { kind: 'histogram', name: 'emotionmuse_batch_size', help: 'Records per processed batch (one transaction).', labels: ['stage'], buckets: BATCH_BUCKETS },
  transactionSeconds: { kind: 'histogram', name: 'emotionmuse_transaction_seconds', help: 'Time to process one batch and commit it (its transaction under exactly once, the acknowledgement of its outputs under at least once).', labels: ['stage'], buckets: LATENCY_BUCKETS },
  stepSeconds: { kind: 'histogram', name: 'emotionmuse_stage_step_seconds', help: `Per-step latency, by stage and step (${LABELS.step.join(', ')}): the runtime's fetch (a record's timestamp to its hand-over to its partition's task), queue (hand-over to the start of its batch) and commit (batch processed to outputs committed or acknowledged), and each stage's own steps.`, labels: ['stage', 'step'], buckets: LATENCY_BUCKETS },
  endToEnd: { kind: 'histogram', name: 'emotionmuse_end_to_end_seconds', help: 'From a frame\'s capture time to: its emotion score (path="score"), the emotion change of its window (path="change"), the recommendation list that change caused (path="list").', labels: ['path'], buckets: [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10] },
  modelInfo: { kind: 'gauge', name: 'emotionmuse_model_info', help: 'The model a processor serves: always 1, labelled by model name, version and execution provider.', labels: ['stage', 'model', 'version', 'provider'] },
  consumerLag: { kind: 'gauge', name: 'emotionmuse_consumer_lag', help: 'Records between the last processed offset and the high watermark, per topic and partition.', labels: ['stage', 'topic', 'partition'] },
  assignedPartitions: { kind: 'gauge', name: 'emotionmuse_assigned_partitions', help: 'Input partitions currently assigned to this instance.', labels: ['stage'] },
  pausedPartitions: { kind: 'gauge', name: 'emotionmuse_paused_partitions', help: 'Input partitions paused for backpressure.', labels: ['stage'] },
  partitionsStalled: { kind: 'gauge', name: 'emotionmuse_partitions_stalled', help: 'Input partitions whose batches have failed for longer than the stall timeout (/readyz fails while any is).', labels: ['stage'] },
  rebalances: { kind: 'counter', name: 'emotionmuse_rebalances_total', help: 'Consumer-group joins seen by this instance.', labels: ['stage'] },
  transactionsAborted: { kind: 'counter', name: 'emotionmuse_transactions_aborted_total', help: 'Batches that could not be committed (a transaction aborted, or outputs not acknowledged): the task starts over from its committed offsets.', labels: ['stage'] },
  recommendations: { kind: 'counter', name: 'emotionmuse_recommendations_total', help: `Recommendation lists published, by trigger (${LABELS.trigger.join(', ')}).`, labels: ['trigger'] },
  coldStarts: { kind: 'counter', name: 'emotionmuse_cold_starts_total', help: 'Lists made for users with no listening history (emotion-aware popularity).', labels: [] },
  gatewayConnections: { kind: 'gauge', name: 'emotionmuse_gateway_connections', help: 'Open /v1/stream sockets of this gateway instance.', labels: [] },
  gatewayFramesIn: { kind: 'counter', name: 'emotionmuse_gateway_frames_in_total', help: 'Frames a gateway read from its sockets and accepted for Kafka, by kind (GRAY8, SCORES, NONE, JPEG, PNG).', labels: ['kind'] },
  gatewayRejections: { kind: 'counter', name: 'emotionmuse_gateway_rejections_total', help: 'Messages and requests a gateway refused or answered with an error, by reason (BAD_MESSAGE, BAD_FRAME, BAD_SCORES, MESSAGE_TOO_LARGE, OUT_OF_ORDER, DUPLICATE, TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED, FORBIDDEN, UNKNOWN_TRACK, SERVICE_UNAVAILABLE, WRONG_INSTANCE: a client sent to the instance that serves its user, ...).', labels: ['reason'] },
  gatewayThrottles: { kind: 'counter', name: 'emotionmuse_gateway_throttles_total', help: 'Times a gateway stopped reading a socket, by reason (RATE_LIMITED: the user\'s frame rate; BACKPRESSURE: too much in flight to Kafka).', labels: ['reason'] },
  gatewayAckSeconds: { kind: 'histogram', name: 'emotionmuse_gateway_ack_seconds', help: 'From a frame read off a socket to its ack (Kafka stored it), rate-limit waits included.', labels: [] },
  gatewayEventsOut: { kind: 'counter', name: 'emotionmuse_gateway_events_out_total', help: 'Events a gateway forwarded to its users\' sockets, by type (score, change, list).', labels: ['type'] },
  gatewayEventsDropped: { kind: 'counter', name: 'emotionmuse_gateway_events_dropped_total', help: 'Events a gateway did not send, by type and reason (slow-reader: a score while half the socket\'s --socket-buffer-bytes was unsent; slow-reader-closed: an event that would pass the bound, and the socket was closed with 4413).', labels: ['type', 'reason'] },
  gatewayFanoutCrashes: { kind: 'counter', name: 'emotionmuse_gateway_fanout_crashes_total', help: 'Times a gateway\'s fan-out consumer died and was started again (/readyz fails until it is back in its group).', labels: [] },
  stateRestoreSeconds: { kind: 'histogram', name: 'emotionmuse_state_restore_seconds', help: 'Time to restore a partition\'s state from its changelog.', labels: ['stage'], buckets: LATENCY_BUCKETS },
} as const satisfies Record<string, MetricSpec>;

export type MetricId = keyof typeof METRICS;
type Instrument<S extends MetricSpec> = S['kind'] extends 'counter' ? Counter<string> : S['kind'] extends 'gauge' ? Gauge<string> : Histogram<string>;
export type Metrics = { readonly [K in MetricId]: Instrument<(typeof METRICS)[K]> } & { readonly registry: Registry };

const GATEWAY_IDS = ['gatewayConnections', 'gatewayFramesIn', 'gatewayRejections', 'gatewayThrottles', 'gatewayAckSeconds', 'gatewayEventsOut', 'gatewayEventsDropped', 'gatewayFanoutCrashes'] as const satisfies readonly MetricId[];

/** The gateway's instruments, by short name. */
export interface GatewayMetrics {
  readonly registry: Registry;
  readonly connections: Gauge<string>;
  readonly framesIn: Counter<string>;
  readonly rejections: Counter<string>;
  readonly throttles: Counter<string>;
  readonly ackSeconds: Histogram<string>;
  readonly eventsOut: Counter<string>;
  readonly eventsDropped: Counter<string>;
  readonly fanoutCrashes: Counter<string>;
}

/** Registers the gateway's metrics only (a gateway runs no stage). */
export function createGatewayMetrics(registry: Registry = new Registry()): GatewayMetrics {
  const m = createMetrics(registry, GATEWAY_IDS);
  return { registry, connections: m.gatewayConnections, framesIn: m.gatewayFramesIn, rejections: m.gatewayRejections, throttles: m.gatewayThrottles, ackSeconds: m.gatewayAckSeconds, eventsOut: m.gatewayEventsOut, eventsDropped: m.gatewayEventsDropped, fanoutCrashes: m.gatewayFanoutCrashes };
}

/** Registers the metrics of the table (all, or `ids`) on `registry` (idempotent: a second call returns the same instruments). */
export function createMetrics(registry: Registry = new Registry(), ids?: readonly MetricId[]): Metrics {
  const out: Record<string, unknown> = { registry };
  for (const [id, spec] of Object.entries(METRICS) as Array<[MetricId, MetricSpec]>) {
    if (ids && !ids.includes(id)) continue;
    const existing = registry.getSingleMetric(spec.name);
    if (existing) {
      out[id] = existing;
      continue;
    }
    const common = { name: spec.name, help: spec.help, labelNames: [...spec.labels], registers: [registry] };
    out[id] =
      spec.kind === 'counter' ? new Counter(common)
      : spec.kind === 'gauge' ? new Gauge(common)
      : new Histogram({ ...common, buckets: [...(spec.buckets ?? LATENCY_BUCKETS)] });
  }
  return out as Metrics;
}
