import { LABELS, METRICS, type StepName } from '../runtime/metrics.ts';

/** A step selector's value (one step, or an alternation), of steps the metrics table names. */
const steps = (...names: StepName[]): string => names.join('|');

interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly targets: ReadonlyArray<{ expr: string; legend: string }>;
  readonly kind?: 'timeseries' | 'stat' | 'table';
}

const m = METRICS;
const quantiles = (metric: string, by: string, label: string, selector = '') =>
  [0.5, 0.95, 0.99].map((x) => ({ expr: `histogram_quantile(${x}, sum by (le, ${by}) (rate(${metric}_bucket${selector}[1m])))`, legend: `${label} p${Math.round(x * 100)}` }));

/** The provisioned dashboards, built from the metric names of runtime/metrics.ts. */
export const DASHBOARDS: Record<string, { uid: string; title: string; panels: Panel[] }> = {
  'pipeline-overview': {
    uid: 'emotionmuse-pipeline',
    title: 'EmotionMuse: pipeline overview',
    panels: [
      { title: 'Records in per stage', unit: 'ops', targets: [{ expr: `sum by (stage) (rate(${m.recordsIn.name}[1m]))`, legend: '{{stage}}' }] },
      { title: 'Records out per stage and topic', unit: 'ops', targets: [{ expr: `sum by (stage, topic) (rate(${m.recordsOut.name}[1m]))`, legend: '{{stage}} -> {{topic}}' }] },
      { title: `Step latency p50 / p95 / p99 (${LABELS.step.join(', ')})`, unit: 's', targets: quantiles(m.stepSeconds.name, 'stage, step', '{{stage}} {{step}}') },
      { title: 'End-to-end latency from capture (score, change, list)', unit: 's', targets: quantiles(m.endToEnd.name, 'path', '{{path}}') },
      { title: 'Transaction latency per stage', unit: 's', targets: quantiles(m.transactionSeconds.name, 'stage', '{{stage}}') },
      { title: 'Consumer lag per topic and partition', unit: 'short', targets: [{ expr: `sum by (stage, topic, partition) (${m.consumerLag.name})`, legend: '{{stage}} {{topic}}[{{partition}}]' }] },
      { title: 'Dead letters by stage and code', unit: 'ops', targets: [{ expr: `sum by (stage, code) (rate(${m.deadLetters.name}[5m]))`, legend: '{{stage}} {{code}}' }] },
      { title: 'Stalled partitions (batches failing for longer than the stall timeout)', unit: 'short', targets: [{ expr: `max by (stage) (${m.partitionsStalled.name})`, legend: '{{stage}}' }] },
      { title: `Skipped records by reason (${LABELS.skipReason.join(', ')})`, unit: 'ops', targets: [{ expr: `sum by (stage, reason) (rate(${m.skipped.name}[5m]))`, legend: '{{stage}} {{reason}}' }] },
      { title: `State resets by reason (${LABELS.resetReason.join(', ')})`, unit: 'ops', targets: [{ expr: `sum by (stage, reason) (rate(${m.stateResets.name}[5m]))`, legend: '{{stage}} {{reason}}' }] },
      { title: 'Processors up', unit: 'short', kind: 'stat', targets: [{ expr: 'sum by (processor) (up{job="emotionmuse"})', legend: '{{processor}}' }] },
    ],
  },
  model: {
    uid: 'emotionmuse-model',
    title: 'EmotionMuse: models',
    panels: [
      { title: 'Batch sizes (records per transaction)', unit: 'short', targets: quantiles(m.batchSize.name, 'stage', '{{stage}}') },
      { title: 'Inference time per batch (classifier)', unit: 's', targets: quantiles(m.stepSeconds.name, 'step', '{{step}}', `{stage="classifier",step=~"${steps('infer', 'detect')}"}`) },
      { title: `Frames without a face, by who looked (${LABELS.faceSource.join(', ')})`, unit: 'ops', targets: [{ expr: `sum by (source) (rate(${m.facelessFrames.name}{stage="classifier"}[5m]))`, legend: '{{source}}' }] },
      { title: 'Model and execution provider', unit: 'short', kind: 'table', targets: [{ expr: `max by (stage, model, version, provider) (${m.modelInfo.name})`, legend: '{{stage}} {{model}} {{version}} {{provider}}' }] },
    ],
  },
  gateway: {
    uid: 'emotionmuse-gateway',
    title: 'EmotionMuse: gateway',
    panels: [
      { title: 'Open WebSocket connections per instance', unit: 'short', targets: [{ expr: `sum by (instance) (${m.gatewayConnections.name})`, legend: '{{instance}}' }] },
      { title: 'Frames in by kind (GRAY8 crop, SCORES, NONE, JPEG)', unit: 'ops', targets: [{ expr: `sum by (kind) (rate(${m.gatewayFramesIn.name}[1m]))`, legend: '{{kind}}' }] },
      { title: 'Rejections by reason (malformed messages, bad tokens, unknown tracks, ...)', unit: 'ops', targets: [{ expr: `sum by (reason) (rate(${m.gatewayRejections.name}[5m]))`, legend: '{{reason}}' }] },
      { title: 'Sockets slowed by reason (rate limit, backpressure)', unit: 'ops', targets: [{ expr: `sum by (reason) (rate(${m.gatewayThrottles.name}[5m]))`, legend: '{{reason}}' }] },
      { title: 'Frame read -> ack (stored in Kafka) p50 / p95 / p99', unit: 's', targets: quantiles(m.gatewayAckSeconds.name, 'instance', 'ack {{instance}}') },
      { title: 'Events forwarded to users by type (score, change, list)', unit: 'ops', targets: [{ expr: `sum by (type) (rate(${m.gatewayEventsOut.name}[1m]))`, legend: '{{type}}' }] },
    ],
  },
  recommender: {
    uid: 'emotionmuse-recommender',
    title: 'EmotionMuse: recommender',
    panels: [
      { title: 'Redis operation latency', unit: 's', targets: quantiles(m.stepSeconds.name, 'step', 'redis', `{stage="recommender",step="${steps('redis')}"}`) },
      { title: 'Scoring and reranking latency', unit: 's', targets: quantiles(m.stepSeconds.name, 'step', '{{step}}', `{stage="recommender",step=~"${steps('score', 'rerank', 'record')}"}`) },
      { title: 'Lists published by trigger', unit: 'ops', targets: [{ expr: `sum by (trigger) (rate(${m.recommendations.name}[5m]))`, legend: '{{trigger}}' }] },
      { title: 'Cold starts', unit: 'ops', targets: [{ expr: `sum (rate(${m.coldStarts.name}[5m]))`, legend: 'cold starts' }] },
    ],
  },
};

export function dashboardJson(key: string): string {
  const d = DASHBOARDS[key]!;
  const panels = d.panels.map((p, i) => ({
    id: i + 1,
    type: p.kind ?? 'timeseries',
    title: p.title,
    datasource: { type: 'prometheus', uid: 'prometheus' },
    gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
    fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
    targets: p.targets.map((t, k) => ({ refId: String.fromCharCode(65 + k), expr: t.expr, legendFormat: t.legend, ...(p.kind === 'table' ? { format: 'table', instant: true } : {}) })),
  }));
  return `${JSON.stringify({ uid: d.uid, title: d.title, tags: ['emotionmuse'], schemaVersion: 39, version: 1, refresh: '5s', time: { from: 'now-15m', to: 'now' }, panels }, null, 2)}\n`;
}

/** Every panel query of every dashboard. */
export function dashboardExpressions(): Array<{ dashboard: string; panel: string; expr: string }> {
  return Object.entries(DASHBOARDS).flatMap(([key, d]) => d.panels.flatMap((p) => p.targets.map((t) => ({ dashboard: key, panel: p.title, expr: t.expr }))));
}
