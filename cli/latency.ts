import { configHelp, loadConfig, opt } from '../runtime/config.ts';
import { basicAuthHeaders } from '../runtime/http.ts';
import { METRICS } from '../runtime/metrics.ts';
import { metricsAuth, securityOptions } from '../runtime/security.ts';
import { PROCESSORS } from '../processors/index.ts';
import { quantile, readHistogram } from '../observability/histogram.ts';
import type { Command } from './command.ts';

const latencyOptions = {
  host: opt.string('EM_METRICS_HOST', 'host', '127.0.0.1', 'Where the processors serve /metrics'),
  classifierPort: opt.int('EM_CLASSIFIER_PORT', 'classifier-port', PROCESSORS.classifier!.port, 'The classifier\'s HTTP port'),
  smootherPort: opt.int('EM_SMOOTHER_PORT', 'smoother-port', PROCESSORS.smoother!.port, 'The smoother\'s HTTP port'),
  recommenderPort: opt.int('EM_RECOMMENDER_PORT', 'recommender-port', PROCESSORS.recommender!.port, 'The recommender\'s HTTP port'),
  json: opt.bool('EM_JSON', 'json', false, 'Print JSON'),
  ...securityOptions,
};

/** The rows of the paper's Section VI-E breakdown, each from one histogram of one processor. */
const ROWS = [
  { label: 'decode', port: 'classifierPort', metric: METRICS.stepSeconds.name, where: { stage: 'classifier', step: 'decode' } },
  { label: 'face detection', port: 'classifierPort', metric: METRICS.stepSeconds.name, where: { stage: 'classifier', step: 'detect' } },
  { label: 'preprocess (crop, grey, resize)', port: 'classifierPort', metric: METRICS.stepSeconds.name, where: { stage: 'classifier', step: 'preprocess' } },
  { label: 'CNN inference (per batch)', port: 'classifierPort', metric: METRICS.stepSeconds.name, where: { stage: 'classifier', step: 'infer' } },
  { label: 'smoothing and valence-arousal', port: 'smootherPort', metric: METRICS.stepSeconds.name, where: { stage: 'smoother', step: 'smooth' } },
  { label: 'Redis (per operation)', port: 'recommenderPort', metric: METRICS.stepSeconds.name, where: { stage: 'recommender', step: 'redis' } },
  { label: 'scoring (Bi-LSTM, emotion embedding, top-100)', port: 'recommenderPort', metric: METRICS.stepSeconds.name, where: { stage: 'recommender', step: 'score' } },
  { label: 'reranking', port: 'recommenderPort', metric: METRICS.stepSeconds.name, where: { stage: 'recommender', step: 'rerank' } },
  { label: 'classifier: Kafka, producer to processor', port: 'classifierPort', metric: METRICS.stepSeconds.name, where: { stage: 'classifier', step: 'fetch' } },
  { label: 'classifier: waiting to go to the model', port: 'classifierPort', metric: METRICS.stepSeconds.name, where: { stage: 'classifier', step: 'queue' } },
  { label: 'classifier: produce and commit', port: 'classifierPort', metric: METRICS.stepSeconds.name, where: { stage: 'classifier', step: 'commit' } },
  { label: 'total: capture -> emotion score',  port: 'classifierPort', metric: METRICS.endToEnd.name, where: { path: 'score' } },
  { label: 'total: capture -> emotion change', port: 'smootherPort', metric: METRICS.endToEnd.name, where: { path: 'change' } },
  { label: 'total: capture -> recommendation list', port: 'recommenderPort', metric: METRICS.endToEnd.name, where: { path: 'list' } },
] as const;

export const latencyCommand: Command = {
  summary: 'print the per-stage p50/p95/p99 latency of the running pipeline',
  help: `usage: emotionmuse latency [options]

Reads /metrics of the running classifier, smoother and recommender and prints p50, p95 and p99
of each step since the processes started (as the paper's Section VI-E breaks its 94 ms down),
and the end-to-end latency from a frame's capture to its score, its emotion change and the list
that change caused.

options:
${configHelp(latencyOptions)}`,
  async run(argv) {
    const c = loadConfig(latencyOptions, { argv });
    const texts = new Map<number, string>();
    const headers = basicAuthHeaders(metricsAuth(c));
    for (const port of [c.classifierPort, c.smootherPort, c.recommenderPort]) {
      texts.set(port, await fetch(`http://${c.host}:${port}/metrics`, { headers }).then((r) => r.text(), () => ''));
    }
    const rows = ROWS.map((r) => {
      const port = c[r.port];
      const h = readHistogram(texts.get(port) ?? '', r.metric, r.where);
      return { step: r.label, count: h.count, p50: quantile(h, 0.5) * 1000, p95: quantile(h, 0.95) * 1000, p99: quantile(h, 0.99) * 1000, reachable: (texts.get(port) ?? '') !== '' };
    });
    if (c.json) {
      console.log(JSON.stringify(rows, null, 2));
      return 0;
    }
    const fmt = (v: number) => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : '-').padStart(10);
    console.log(`${'step'.padEnd(48)} ${'count'.padStart(7)} ${'p50'.padStart(10)} ${'p95'.padStart(10)} ${'p99'.padStart(10)}`);
    for (const r of rows) console.log(`${r.step.padEnd(48)} ${String(r.count).padStart(7)} ${fmt(r.p50)} ${fmt(r.p95)} ${fmt(r.p99)}${r.reachable ? '' : '   (processor not reachable)'}`);
    return rows.some((r) => r.reachable) ? 0 : 1;
  },
};
