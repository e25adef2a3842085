import { configHelp, loadConfig, opt } from '../runtime/config.ts';
import { basicAuthHeaders } from '../runtime/http.ts';
import { LABELS, METRICS, type StepName } from '../runtime/metrics.ts';
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
type Port = 'classifierPort' | 'smootherPort' | 'recommenderPort';
const step = (label: string, port: Port, stage: string, name: StepName) => ({ label, port, metric: METRICS.stepSeconds.name, where: { stage, step: name } });
const total = (label: string, port: Port, path: (typeof LABELS.path)[number]) => ({ label, port, metric: METRICS.endToEnd.name, where: { path } });
const ROWS = [
  step('decode', 'classifierPort', 'classifier', 'decode'),
  step('face detection', 'classifierPort', 'classifier', 'detect'),
  step('preprocess (crop, grey, resize)', 'classifierPort', 'classifier', 'preprocess'),
  step('CNN inference (per batch)', 'classifierPort', 'classifier', 'infer'),
  step('smoothing and valence-arousal', 'smootherPort', 'smoother', 'smooth'),
  step('Redis (per operation)', 'recommenderPort', 'recommender', 'redis'),
  step('scoring (Bi-LSTM, emotion embedding, top-100)', 'recommenderPort', 'recommender', 'score'),
  step('reranking', 'recommenderPort', 'recommender', 'rerank'),
  step('classifier: Kafka, producer to processor', 'classifierPort', 'classifier', 'fetch'),
  step('classifier: waiting to go to the model', 'classifierPort', 'classifier', 'queue'),
  step('classifier: produce and commit', 'classifierPort', 'classifier', 'commit'),
  total('total: capture -> emotion score', 'classifierPort', 'score'),
  total('total: capture -> emotion change', 'smootherPort', 'change'),
  total('total: capture -> recommendation list', 'recommenderPort', 'list'),
];

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
