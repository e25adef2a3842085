/**
 * End-to-end load benchmark: the three processors on the local broker and Redis, many simulated
 * users publishing edge-cropped grey faces (and, separately, full 640x480 JPEG frames) at
 * increasing rates. For each rate: throughput reached, capture -> score latency (as a
 * read_committed reader sees the score), capture -> change-triggered list (the recommender's
 * histogram), consumer lag at the end, CPU and memory of each process. It finds the highest
 * rate whose p99 stays within 50 ms, and checks that memory does not grow at a steady rate.
 *
 *   npm run bench:e2e [-- --seconds 10 --users 40 --partitions 6 --crop-rates 100,250,500,750 --jpeg-rates 10,20,40]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { parseArgv } from '../runtime/config.ts';
import { createKafka } from '../runtime/kafka.ts';
import { quantile, readHistogram, type Histogram } from '../observability/histogram.ts';
import { METRICS } from '../runtime/metrics.ts';
import { SchemaRegistry } from '../schemas/registry.ts';
import type { Frame } from '../schemas/generated/types.ts';
import { applyTopology } from '../topology/apply.ts';
import { allTopics, buildTopology, topicName } from '../topology/topology.ts';
import { FACE_PHOTOS, FER_PUBLIC_TEST } from '../tests/support/faces.ts';

import { machine, percentile, table } from './machine.ts';
import { freePort, machineBusy, procStats } from './proc-stats.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { flags } = parseArgv(process.argv.slice(2));
const seconds = Number(flags.get('seconds') ?? 10);
const usersCount = Number(flags.get('users') ?? 40);
const rateList = (raw: string) => raw.split(',').filter((r) => r.trim() !== '').map(Number);
const cropRates = rateList(flags.get('crop-rates') ?? '100,250,500,750,1000');
const jpegRates = rateList(flags.get('jpeg-rates') ?? '10,20,40');
const partitions = Number(flags.get('partitions') ?? 6);
const BUDGET_MS = 50;
const brokers = (process.env.EM_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const redisUrl = process.env.EM_REDIS_URL ?? 'redis://127.0.0.1:6379';

spawnSync('bash', [path.join(ROOT, 'infra/local.sh'), 'up', 'kafka', 'redis'], { stdio: 'inherit' });
const prefix = `bench.${randomUUID().slice(0, 8)}.`;
const topology = buildTopology({ prefix, partitions });
const kafka = createKafka({ brokers, clientId: 'emotionmuse-bench' });
const admin = kafka.admin();
await admin.connect();
await applyTopology(admin, topology);
const registry = SchemaRegistry.load();

// The local broker, when the launcher started it, is measured too: it shares the two cores.
const brokerPidFile = path.join(ROOT, '.data', 'kafka', 'kafka.pid');
const brokerPid = existsSync(brokerPidFile) ? Number(readFileSync(brokerPidFile, 'utf8').trim()) : undefined;
const brokerStats = () => (brokerPid ? procStats(brokerPid) : undefined);

const ports = { classifier: await freePort(), smoother: await freePort(), recommender: await freePort() };
const procs: Record<string, ChildProcess> = {};
// Never leave processors behind, whatever ends this script.
process.on('exit', () => Object.values(procs).forEach((p) => p.kill('SIGKILL')));
process.on('SIGINT', () => process.exit(130));
for (const [stage, port] of Object.entries(ports)) {
  procs[stage] = spawn(process.execPath, [path.join(ROOT, 'bin/emotionmuse.js'), 'run', stage], {
    env: { ...process.env, EM_KAFKA_BROKERS: brokers.join(','), EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: String(partitions), EM_REDIS_URL: redisUrl, EM_REDIS_PREFIX: `${prefix}r:`, EM_HTTP_PORT: String(port), EM_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
process.stderr.write('waiting for the processors to be ready\n');
for (const [stage, port] of Object.entries(ports)) {
  for (let i = 0; i < 600 && !(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false)); i++) {
    if (procs[stage]!.exitCode !== null) throw new Error(`the ${stage} exited with ${procs[stage]!.exitCode} before it was ready (see its log above)`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Sources: FER faces as edge crops (GRAY8 48x48), face photos as 640x480 JPEG.
const crops: Array<{ data: Buffer; width: number; height: number }> = [];
for (const cls of ['happy', 'sad', 'neutral', 'angry']) {
  const dir = path.join(FER_PUBLIC_TEST, cls);
  for (const f of readdirSync(dir).slice(0, 25)) {
    const { data, info } = await sharp(path.join(dir, f)).greyscale().raw().toBuffer({ resolveWithObject: true });
    crops.push({ data, width: info.width, height: info.height });
  }
}
const jpegs = await Promise.all(FACE_PHOTOS.map((f) => sharp(f).resize(640, 480, { fit: 'cover' }).jpeg({ quality: 85 }).toBuffer()));

const latencies: number[] = [];
let scored = 0;
let lastScoreAt = 0;
const reader = kafka.consumer({ groupId: `${prefix}bench-reader`, readUncommitted: false, maxWaitTimeInMs: 20 });
await reader.connect();
await reader.subscribe({ topic: topicName(topology, 'emotion-scores'), fromBeginning: false });
const joined = new Promise<void>((resolve) => reader.on(reader.events.GROUP_JOIN, () => resolve()));
await reader.run({
  partitionsConsumedConcurrently: partitions,
  eachBatch: async ({ batch }) => {
    const now = Date.now();
    for (const m of batch.messages) {
      const s = registry.decode('emotion-score', m.value!);
      latencies.push(now - s.captureTimeMs);
      scored++;
      lastScoreAt = now;
    }
  },
});
await joined;
process.stderr.write('processors ready, reader joined; load steps follow\n');

const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
await producer.connect();
const seqs = new Map<string, number>();
const rows: string[][] = [];
const stepResults: Array<{ mode: string; rate: number; p99: number; throughput: number }> = [];
const rssSeries: Record<string, number[]> = {};

async function lag(): Promise<number> {
  let total = 0;
  for (const [stage, topic] of [['classifier', 'frames'], ['smoother', 'emotion-scores'], ['recommender', 'emotion-changes']] as const) {
    const committed = await admin.fetchOffsets({ groupId: `${prefix}${stage}`, topics: [topicName(topology, topic)] });
    const high = await admin.fetchTopicOffsets(topicName(topology, topic));
    for (const p of high) total += Number(p.high) - Math.max(0, Number(committed[0]!.partitions.find((c) => c.partition === p.partition)?.offset ?? 0));
  }
  return total;
}

async function listHistogram() {
  const text = await fetch(`http://127.0.0.1:${ports.recommender}/metrics`).then((r) => r.text());
  return readHistogram(text, METRICS.endToEnd.name, { path: 'list' });
}

/** The classifier's transactions (process + commit of one batch) and batch sizes, cumulative. */
async function classifierBatches() {
  const text = await fetch(`http://127.0.0.1:${ports.classifier}/metrics`).then((r) => r.text());
  return { txn: readHistogram(text, METRICS.transactionSeconds.name, { stage: 'classifier' }), size: readHistogram(text, METRICS.batchSize.name, { stage: 'classifier' }) };
}

const minus = (a: Histogram, b: Histogram): Histogram => ({ buckets: a.buckets.map((x, i) => ({ le: x.le, count: x.count - (b.buckets[i]?.count ?? 0) })), count: a.count - b.count, sum: a.sum - b.sum });

for (const [mode, rates] of [['edge-cropped grey 48x48', cropRates], ['640x480 JPEG', jpegRates]] as const) {
  for (const rate of rates) {
    latencies.length = 0;
    scored = 0;
    const before = Object.fromEntries(Object.entries(procs).map(([s, p]) => [s, procStats(p.pid!)]));
    const brokerBefore = brokerStats();
    const selfBefore = process.cpuUsage();
    const busyBefore = machineBusy();
    const listBefore = await listHistogram();
    const batchesBefore = await classifierBatches();
    const start = Date.now();
    const tick = 20;
    let sent = 0;
    while (Date.now() - start < seconds * 1000) {
      const due = Math.floor(((Date.now() - start) / 1000) * rate);
      const messages = [];
      for (; sent < due; sent++) {
        const user = `bench-${sent % usersCount}`;
        const seq = (seqs.get(user) ?? 0) + 1;
        seqs.set(user, seq);
        const c = crops[(sent * 7 + seq) % crops.length]!;
        const f: Frame = mode === '640x480 JPEG'
          ? { userId: user, sessionId: 's', seq, captureTimeMs: Date.now(), encoding: 'JPEG', width: 640, height: 480, data: jpegs[sent % jpegs.length]!, faceBox: null }
          : { userId: user, sessionId: 's', seq, captureTimeMs: Date.now(), encoding: 'GRAY8', width: c.width, height: c.height, data: c.data, faceBox: null };
        messages.push({ key: user, value: registry.encode('frame', f) });
      }
      if (messages.length > 0) await producer.send({ topic: topicName(topology, 'frames'), messages, acks: -1 });
      await new Promise((r) => setTimeout(r, tick));
    }
    const elapsed = (Date.now() - start) / 1000;
    await new Promise((r) => setTimeout(r, 2000));
    const after = Object.fromEntries(Object.entries(procs).map(([s, p]) => [s, procStats(p.pid!)]));
    const brokerAfter = brokerStats();
    const self = process.cpuUsage(selfBefore);
    const busyAfter = machineBusy();
    for (const s of Object.keys(procs)) (rssSeries[s] ??= []).push(after[s]!.rssMiB);
    const listAfter = await listHistogram();
    const listDelta = minus(listAfter, listBefore);
    const batchesAfter = await classifierBatches();
    const txn = minus(batchesAfter.txn, batchesBefore.txn);
    const size = minus(batchesAfter.size, batchesBefore.size);
    const p50 = percentile(latencies, 0.5);
    const p99 = percentile(latencies, 0.99);
    // Frames scored per second, from the first frame sent to the last score read.
    const throughput = scored / Math.max(0.001, (lastScoreAt - start) / 1000);
    const pct = (seconds: number) => `${((seconds / (elapsed + 2)) * 100).toFixed(0)}%`;
    const cpu = (s: string) => pct(after[s]!.cpuSeconds - before[s]!.cpuSeconds);
    const brokerCpu = brokerBefore && brokerAfter ? pct(brokerAfter.cpuSeconds - brokerBefore.cpuSeconds) : '?';
    const machineCpu = `${(((busyAfter.busy - busyBefore.busy) / Math.max(1, busyAfter.total - busyBefore.total)) * 100).toFixed(0)}%`;
    stepResults.push({ mode, rate, p99, throughput });
    const txnCell = txn.count > 0 ? `${(size.sum / size.count).toFixed(1)} / ${((txn.sum / txn.count) * 1000).toFixed(0)} / ${(quantile(txn, 0.99) * 1000).toFixed(0)}` : '-';
    rows.push([mode, String(rate), (sent / elapsed).toFixed(0), throughput.toFixed(0), p50.toFixed(0), p99.toFixed(0), listDelta.count > 0 ? (quantile(listDelta, 0.99) * 1000).toFixed(0) : '-', txnCell, String(await lag()), `${cpu('classifier')} / ${cpu('smoother')} / ${cpu('recommender')} / ${brokerCpu} / ${pct((self.user + self.system) / 1e6)}`, machineCpu, `${after.classifier!.rssMiB.toFixed(0)} / ${after.smoother!.rssMiB.toFixed(0)} / ${after.recommender!.rssMiB.toFixed(0)}`]);
    process.stderr.write(`  ${mode} at ${rate}/s: ${throughput.toFixed(0)}/s, p99 ${p99.toFixed(0)} ms\n`);
    // Let the pipeline drain before the next step.
    for (let i = 0; i < 100 && (await lag()) > 0; i++) await new Promise((r) => setTimeout(r, 200));
  }
}

await producer.disconnect();
await reader.disconnect();
// A clean stop (each processor commits and leaves its group) before the exit handler's SIGKILL.
await Promise.all(Object.values(procs).map((p) => new Promise((resolve) => {
  if (p.exitCode !== null) return resolve(undefined);
  p.once('exit', resolve);
  p.kill('SIGTERM');
  setTimeout(resolve, 10_000).unref();
})));
// The run's topics and groups go: a broker that keeps every run's partitions slows down.
await admin.deleteTopics({ topics: allTopics(topology).map((t) => t.name), timeout: 30_000 }).catch((err: unknown) => process.stderr.write(`could not delete the run's topics: ${String(err)}\n`));
await admin.deleteGroups([...Object.keys(procs).map((s) => `${prefix}${s}`), `${prefix}bench-reader`]).catch(() => undefined);
await admin.disconnect();

const best = (mode: string) => stepResults.filter((r) => r.mode === mode && r.p99 <= BUDGET_MS && r.throughput >= 0.95 * r.rate).sort((a, b) => b.rate - a.rate)[0];
const header = ['frames', 'offered/s', 'sent/s', 'scored/s', 'capture->score p50 ms', 'p99 ms', 'capture->list p99 ms', 'classifier batch: records / txn mean ms / txn p99 ms', 'lag at end', 'CPU classifier / smoother / recommender / broker / load generator', 'machine busy', 'RSS MiB classifier / smoother / recommender'];
const report = [
  `# End-to-end load benchmark`,
  '',
  `Machine: ${machine()}. ${usersCount} simulated users, ${seconds} s per rate, ${partitions} partitions per topic, local single-node Kafka ${process.env.EM_KAFKA_VERSION ?? '3.9.1'} and Redis on the same machine as the processors and the load generator.`,
  '',
  table(header, rows),
  '',
  ...['edge-cropped grey 48x48', '640x480 JPEG'].map((m) => {
    const b = best(m);
    return `- ${m}: highest rate with capture -> score p99 within ${BUDGET_MS} ms and at least 95% of it scored: ${b ? `${b.rate} frames/s (p99 ${b.p99.toFixed(0)} ms)` : 'none of the rates tried'}.`;
  }),
  `- Resident memory after each step (MiB): ${Object.entries(rssSeries).map(([s, v]) => `${s} ${v.map((x) => x.toFixed(0)).join(' -> ')}`).join('; ')}.`,
  '',
];
console.log(report.join('\n'));
mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(path.join(ROOT, 'bench', 'results', 'e2e.md'), report.join('\n'));
process.exit(0);
