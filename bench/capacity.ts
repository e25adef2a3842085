/**
 * Capacity benchmark: what one user costs each part of the deployment, measured on this machine,
 * and what 10,000, 100,000 and 1,000,000 users need from it (bench/capacity-model.ts).
 *
 * Simulated users (WebSocket clients in this process) send 10 frames a second through one
 * gateway to the classifier, smoother and recommender, each its own process, on the local broker
 * and Redis. Each user's faces change expression every 60 frames. Three measured steps, each after
 * a warm-up:
 *   crop    48x48 grey face crops (the classifier runs the CNN);
 *   scores  the device's own probabilities (SCORES frames; the classifier only checks them);
 *   scale   crops again, with a second classifier in the same consumer group: the two split the
 *           partitions and the frames.
 * For each: CPU seconds of every process per record and per user, bytes through the broker's
 * client port in each direction (the kernel's counters of its sockets), bytes appended to the
 * logs per topic, Redis commands, CPU and memory. An idle window first gives each process's cost
 * with no users, which the model charges per pod rather than per user.
 *
 *   npm run bench:capacity [-- --help]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { mintDevelopmentToken } from '../auth/tokens.ts';
import { StreamClient } from '../gateway/client.ts';
import type { StreamFrame } from '../gateway/protocol.ts';
import { readHistogram, seriesLabels, sumSeries } from '../observability/histogram.ts';
import { ClassifierEngine } from '../processors/classifier/engine.ts';
import { STATE_VERSIONS } from '../processors/index.ts';
import { parseArgv } from '../runtime/config.ts';
import { createKafka } from '../runtime/kafka.ts';
import { METRICS } from '../runtime/metrics.ts';
import { openRedis } from '../state/redis.ts';
import { FER_PUBLIC_TEST } from '../sessions/faces.ts';
import { applyTopology } from '../topology/apply.ts';
import { allTopics, buildTopology, topicName } from '../topology/topology.ts';
import { resizeGrey } from '../vision/image.ts';
import { APP_COMPONENTS, COMPONENTS, DEFAULT_ASSUMPTIONS, plan, type Assumptions, type Component, type PerUser } from './capacity-model.ts';
import { drainLag, LOAD_CLASSES, loadServices, paceUsers, pipelineLag, SEGMENT_FRAMES } from './load.ts';
import { checkFlags, machine, table } from './machine.ts';
import { freePort, procStats } from './proc-stats.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { flags } = parseArgv(process.argv.slice(2));
const USAGE = `npm run bench:capacity [-- options]: what a user costs each part of the pipeline, measured here,
and the pods, partitions, brokers and Redis shards for 10,000 to 1,000,000 users

Starts the local Kafka and Redis if they are not running (infra/local.sh), then the gateway and the
three stages as processes of their own, and drives simulated WebSocket users from this process.
Steps: an idle window, then crop, scores and scale (two classifiers), each after a warm-up.

  --users 30,100           simulated users of each mode's steps (the model uses the last)
  --fps 10                 frames per second of each user
  --seconds 30             measured length of each step
  --warmup-seconds 15      unreported warm-up before each step
  --idle-seconds 10        the idle window (no users)
  --partitions 6           partitions of every topic of this run
  --targets 10000,100000,1000000   user counts the model sizes
  --cores-per-machine 16   cores of an app node and of a broker (model)
  --utilization 0.6        share of a core a pod or broker is planned to use (model)
  --replication-factor 3   replicas of each partition (model)
  --redis-shard-gib 8      memory of one Redis master (model)
  --out file.md            where the report goes (default: bench/results/capacity-<date>.md for a
                           run with the default steps, .cache/bench/capacity-last.md otherwise)
`;
const KNOWN = ['help', 'users', 'fps', 'seconds', 'warmup-seconds', 'idle-seconds', 'partitions', 'targets', 'cores-per-machine', 'utilization', 'replication-factor', 'redis-shard-gib', 'out'];
checkFlags(flags, KNOWN, USAGE);
function numberFlag(name: string, fallback: number, check: (n: number) => boolean = (n) => n > 0): number {
  const raw = flags.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || !check(n)) {
    process.stderr.write(`--${name}: "${raw}" is not a valid value\n\n${USAGE}`);
    process.exit(2);
  }
  return n;
}
const userSteps = (flags.get('users') ?? '30,100').split(',').map(Number);
if (userSteps.length === 0 || userSteps.some((n) => !Number.isInteger(n) || n <= 0)) {
  process.stderr.write(`--users: "${flags.get('users')}" is not a list of user counts\n\n${USAGE}`);
  process.exit(2);
}
const fps = numberFlag('fps', 10);
const seconds = numberFlag('seconds', 30);
const warmupSeconds = numberFlag('warmup-seconds', 15, (n) => n >= 0);
const idleSeconds = numberFlag('idle-seconds', 10);
const partitions = numberFlag('partitions', 6, (n) => Number.isInteger(n) && n >= 2);
const targets = (flags.get('targets') ?? '10000,100000,1000000').split(',').map(Number);
if (targets.some((t) => !Number.isInteger(t) || t <= 0)) {
  process.stderr.write(`--targets: "${flags.get('targets')}" is not a list of user counts\n`);
  process.exit(2);
}

const { brokers, redisUrl, prefix } = loadServices();
const kafkaPort = Number(brokers[0]!.split(':').pop());
const topology = buildTopology({ prefix, partitions, stateVersions: STATE_VERSIONS });
const admin = createKafka({ brokers, clientId: 'emotionmuse-bench' }).admin();
await admin.connect();
await applyTopology(admin, topology);

// The broker and Redis are the local ones (infra/local.sh): their processes and the broker's
// logs are measured directly.
const kafkaDir = path.join(process.env.EM_DATA_DIR ?? path.join(ROOT, '.data'), 'kafka');
const brokerPid = existsSync(path.join(kafkaDir, 'kafka.pid')) ? Number(readFileSync(path.join(kafkaDir, 'kafka.pid'), 'utf8').trim()) : undefined;
if (!brokerPid || !existsSync(path.join(kafkaDir, 'logs'))) {
  process.stderr.write(`bench:capacity measures the broker started by infra/local.sh (its pid and logs under ${kafkaDir}); none is there\n`);
  process.exit(1);
}
const redis = openRedis(redisUrl);
await redis.connect();
const redisPrefix = `${prefix}r:`;
const redisInfo = async (): Promise<Record<string, string>> => Object.fromEntries((await redis.info('all')).split('\r\n').filter((l) => l.includes(':') && !l.startsWith('#')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
const redisPid = Number((await redisInfo()).process_id);

const secret = randomBytes(32).toString('hex');
const gatewayPort = await freePort();
const env = { ...process.env, EM_KAFKA_BROKERS: brokers.join(','), EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: String(partitions), EM_REDIS_URL: redisUrl, EM_REDIS_PREFIX: redisPrefix, EM_LOG_LEVEL: 'warn', EM_JWT_SECRET: secret };
const procs: Record<string, ChildProcess> = {};
const ports: Record<string, number> = {};
process.on('exit', () => Object.values(procs).forEach((p) => p.kill('SIGKILL')));
process.on('SIGINT', () => process.exit(130));

async function start(name: string, args: string[], extraEnv: Record<string, string> = {}): Promise<void> {
  const port = name === 'gateway' ? gatewayPort : await freePort();
  ports[name] = port;
  procs[name] = spawn(process.execPath, [path.join(ROOT, 'bin/emotionmuse.js'), ...args], {
    env: { ...env, ...extraEnv, ...(name === 'gateway' ? { EM_GATEWAY_PORT: String(port), EM_GATEWAY_HOST: '127.0.0.1', EM_GATEWAY_WEB: 'false' } : { EM_HTTP_PORT: String(port) }) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; !(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false)); i++) {
    if (procs[name]!.exitCode !== null) throw new Error(`the ${name} exited with ${procs[name]!.exitCode} before it was ready (its log is above)`);
    if (i >= 900) throw new Error(`the ${name} was not ready on port ${port} within 90 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
process.stderr.write('starting the stages and the gateway\n');
for (const stage of ['classifier', 'smoother', 'recommender']) await start(stage, ['run', stage]);
await start('gateway', ['gateway']);
const metricsOf = (name: string) => fetch(`http://127.0.0.1:${ports[name]}/metrics`).then((r) => r.text());
/** The emotion model the classifier serves, as its info metric names it. */
const servedModel = seriesLabels(await metricsOf('classifier'), METRICS.modelInfo.name, { stage: 'classifier' })[0];

// Faces: FER-2013 PublicTest crops of four expressions, and the packaged CNN's probabilities for
// each (what a device that runs the model itself would send).
const engine = await ClassifierEngine.create({ providers: ['cpu'], threads: 1, emotionModel: 'int8' });
const faces = new Map<string, Array<{ crop: Uint8Array; probabilities: number[] }>>();
for (const cls of LOAD_CLASSES) {
  const dir = path.join(FER_PUBLIC_TEST, cls);
  const crops = await Promise.all(readdirSync(dir).slice(0, 20).map(async (f) => new Uint8Array(await sharp(path.join(dir, f)).greyscale().resize(48, 48).raw().toBuffer())));
  const scores = await engine.infer(crops.map((c) => resizeGrey({ data: c, width: 48, height: 48 }, engine.inputSide, engine.inputSide)));
  faces.set(cls, crops.map((crop, i) => ({ crop, probabilities: [...scores[i]!] })));
}
const edgeModel = engine.modelVersion;

type Mode = 'crop' | 'scores';
interface Sim {
  readonly client: StreamClient;
  readonly index: number;
  seq: number;
}
const errors: string[] = [];
async function connectUsers(step: string, n: number): Promise<Sim[]> {
  const sims: Sim[] = [];
  for (let index = 0; index < n; index++) {
    const token = await mintDevelopmentToken({ secret }, `cap-${step}-${index}`, 3600);
    const client = await StreamClient.connect(`http://127.0.0.1:${gatewayPort}`, {
      token,
      sessionId: `cap-${step}-${index}`,
      tokenInHeader: true,
      onMessage: (m) => {
        if (m.type === 'error') errors.push(`${step} user ${index}: ${m.code} ${m.message}`);
      },
    });
    sims.push({ client, index, seq: client.welcome.lastSeq });
  }
  return sims;
}

/** Sends every user's frames at `fps`, each user at its own phase, for `durationS`. */
async function drive(sims: Sim[], mode: Mode, durationS: number): Promise<void> {
  await paceUsers(sims, fps, durationS, (index, seq) => {
    const list = faces.get(LOAD_CLASSES[(Math.floor(seq / SEGMENT_FRAMES) + index) % LOAD_CLASSES.length]!)!;
    const face = list[(seq * 7 + index) % list.length]!;
    const frame: StreamFrame = mode === 'crop'
      ? { kind: 'GRAY8', seq, captureTimeMs: Date.now(), width: 48, height: 48, faceBox: null, data: face.crop }
      : { kind: 'SCORES', seq, captureTimeMs: Date.now(), width: 0, height: 0, faceBox: null, data: new Uint8Array(0), probabilities: face.probabilities, modelVersion: edgeModel };
    sims[index]!.client.send(frame);
  });
}

/** Sent and received bytes of the broker's client connections so far, by the kernel's counters of its sockets. */
function brokerSocketBytes(): { sent: number; received: number } {
  const r = spawnSync('ss', ['-tinH', 'state', 'established', `( sport = :${kafkaPort} )`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ss failed: ${r.stderr}`);
  let sent = 0;
  let received = 0;
  for (const m of r.stdout.matchAll(/bytes_sent:(\d+)/g)) sent += Number(m[1]);
  for (const m of r.stdout.matchAll(/bytes_received:(\d+)/g)) received += Number(m[1]);
  return { sent, received };
}

/** Bytes in the log segments of this run's partitions, by topic (the broker preallocates only indexes). */
function logBytes(): Map<string, number> {
  const out = new Map<string, number>();
  const logs = path.join(kafkaDir, 'logs');
  for (const dir of readdirSync(logs)) {
    if (!dir.startsWith(prefix) && !dir.startsWith('__')) continue;
    const topic = dir.slice(0, dir.lastIndexOf('-'));
    let bytes = 0;
    for (const f of readdirSync(path.join(logs, dir))) if (f.endsWith('.log')) bytes += statSync(path.join(logs, dir, f)).size;
    out.set(topic, (out.get(topic) ?? 0) + bytes);
  }
  return out;
}

/** This run's Redis keys and their memory, by MEMORY USAGE. */
async function redisMemory(): Promise<{ keys: number; bytes: number }> {
  let cursor = '0';
  let keys = 0;
  let bytes = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 500);
    cursor = next;
    for (const k of batch) {
      keys++;
      bytes += Number((await redis.memory('USAGE', k)) ?? 0);
    }
  } while (cursor !== '0');
  return { keys, bytes };
}

interface Snapshot {
  readonly at: number;
  readonly cpu: Record<string, number>;
  readonly socket: { sent: number; received: number };
  readonly logs: Map<string, number>;
  readonly redisCalls: number;
  readonly recordsIn: Record<string, number>;
  /** Batches each stage process took, and the records in them. */
  readonly batches: Record<string, { count: number; records: number }>;
  readonly acked: number;
}
const STAGE_INPUT: Record<string, string> = { classifier: 'frames', smoother: 'emotion-scores', recommender: 'emotion-changes' };
async function snapshot(sims: Sim[]): Promise<Snapshot> {
  const info = await redisInfo();
  const self = process.cpuUsage();
  const recordsIn: Record<string, number> = {};
  const batches: Record<string, { count: number; records: number }> = {};
  for (const name of Object.keys(procs)) {
    const stage = name.replace(/-\d+$/, '');
    if (!STAGE_INPUT[stage]) continue;
    const text = await metricsOf(name);
    recordsIn[name] = sumSeries(text, METRICS.recordsIn.name, { stage, topic: topicName(topology, STAGE_INPUT[stage] as 'frames') });
    const h = readHistogram(text, METRICS.batchSize.name, { stage });
    batches[name] = { count: h.count, records: h.sum };
  }
  return {
    at: performance.now(),
    cpu: { ...Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, procStats(p.pid!).cpuSeconds])), broker: procStats(brokerPid!).cpuSeconds, redis: procStats(redisPid).cpuSeconds, load: (self.user + self.system) / 1e6 },
    socket: brokerSocketBytes(),
    logs: logBytes(),
    redisCalls: Object.entries(info).filter(([k]) => k.startsWith('cmdstat_')).reduce((s, [, v]) => s + Number(/calls=(\d+)/.exec(v)?.[1] ?? 0), 0),
    recordsIn,
    batches,
    acked: sims.reduce((s, x) => s + x.client.acked, 0),
  };
}

interface Window {
  readonly seconds: number;
  /** CPU seconds per second, by process (and `broker`, `redis`, `load`). */
  readonly cores: Record<string, number>;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly appended: Map<string, number>;
  readonly redisOps: number;
  readonly records: Record<string, number>;
  /** Mean records per batch, by stage process. */
  readonly batchSize: Record<string, number>;
  readonly acked: number;
}
function windowOf(a: Snapshot, b: Snapshot): Window {
  const s = (b.at - a.at) / 1000;
  const appended = new Map<string, number>();
  for (const [t, v] of b.logs) appended.set(t, (v - (a.logs.get(t) ?? 0)) / s);
  return {
    seconds: s,
    cores: Object.fromEntries(Object.keys(b.cpu).map((k) => [k, (b.cpu[k]! - (a.cpu[k] ?? b.cpu[k]!)) / s])),
    bytesIn: (b.socket.received - a.socket.received) / s,
    bytesOut: (b.socket.sent - a.socket.sent) / s,
    appended,
    redisOps: (b.redisCalls - a.redisCalls) / s,
    records: Object.fromEntries(Object.keys(b.recordsIn).map((k) => [k, b.recordsIn[k]! - (a.recordsIn[k] ?? 0)])),
    batchSize: Object.fromEntries(Object.keys(b.batches).map((k) => [k, (b.batches[k]!.records - (a.batches[k]?.records ?? 0)) / Math.max(1, b.batches[k]!.count - (a.batches[k]?.count ?? 0))])),
    acked: b.acked - a.acked,
  };
}

/** Waits until the stages have caught up with everything sent. */
async function settle(): Promise<void> {
  if ((await drainLag(() => pipelineLag(admin, topology, prefix))) === undefined) process.stderr.write('  (the stages did not catch up within 120 s)\n');
}

// Idle: every process with no users, the cost a pod pays whatever its load.
process.stderr.write(`idle window: ${idleSeconds} s\n`);
await new Promise((r) => setTimeout(r, 2000));
const idle = windowOf(await snapshot([]), await (async () => {
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  return snapshot([]);
})());

interface Step {
  readonly name: string;
  readonly mode: Mode;
  readonly users: number;
  readonly window: Window;
  /** MEMORY USAGE of the Redis keys the step added (its users' state and remembered outputs). */
  readonly redis: { keys: number; bytes: number };
  /** Records the recommender took in per user per second (its input: emotion changes). */
  readonly changesPerUser: number;
}
const steps: Step[] = [];
let memoryBefore = await redisMemory();
async function measure(name: string, mode: Mode, users: number): Promise<Step> {
  const sims = await connectUsers(name, users);
  process.stderr.write(`${name}: ${users} users at ${fps} frames/s, ${warmupSeconds} s warm-up, ${seconds} s measured\n`);
  await drive(sims, mode, warmupSeconds);
  const a = await snapshot(sims);
  await drive(sims, mode, seconds);
  const b = await snapshot(sims);
  const window = windowOf(a, b);
  await settle();
  for (const s of sims) await s.client.close();
  await new Promise((r) => setTimeout(r, 1500)); // the gateway's last session flush
  const memory = await redisMemory();
  const redisStep = { keys: memory.keys - memoryBefore.keys, bytes: memory.bytes - memoryBefore.bytes };
  memoryBefore = memory;
  const step: Step = { name, mode, users, window, redis: redisStep, changesPerUser: (window.records.recommender ?? 0) / window.seconds / users };
  process.stderr.write(`  ${(window.acked / window.seconds).toFixed(0)} frames/s acked; CPU: ${Object.entries(window.cores).map(([k, v]) => `${k} ${(v * 100).toFixed(0)}%`).join(', ')}\n`);
  steps.push(step);
  return step;
}

const MODES = ['crop', 'scores'] as const;
for (const mode of MODES) for (const users of userSteps) await measure(`${mode}-${users}`, mode, users);
const topUsers = userSteps[userSteps.length - 1]!;
const last = (mode: Mode) => steps.find((s) => s.mode === mode && s.users === topUsers)!;
process.stderr.write('starting a second classifier in the same group\n');
await start('classifier-2', ['run', 'classifier']);
const assigned = async (name: string) => sumSeries(await metricsOf(name), METRICS.assignedPartitions.name, { stage: 'classifier' });
for (let i = 0; (await assigned('classifier')) + (await assigned('classifier-2')) !== partitions || (await assigned('classifier-2')) === 0; i++) {
  if (i > 600) throw new Error('the two classifiers did not share the partitions within 60 s');
  await new Promise((r) => setTimeout(r, 100));
}
const split = { first: await assigned('classifier'), second: await assigned('classifier-2') };
const scale = await measure('scale', 'crop', topUsers);

for (const p of Object.values(procs)) p.kill('SIGTERM');
await admin.deleteTopics({ topics: allTopics(topology).map((t) => t.name), timeout: 30_000 }).catch((err: unknown) => process.stderr.write(`could not delete the run's topics: ${String(err)}\n`));
await admin.deleteGroups(['classifier', 'smoother', 'recommender'].map((s) => `${prefix}${s}`)).catch(() => undefined);
await admin.disconnect();
await redis.quit();

/**
 * Bytes of one remembered output in Redis (a recommender input's offset and the list it made, kept
 * an hour so that a retried batch gives the same list): 183, measured by MEMORY USAGE in
 * tests/integration/redis-cluster.test.ts (bench/results/redis-cluster-memory-2026-12-07.md).
 */
const OUTPUT_BYTES = 183;
const sumOf = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0);
/**
 * What a user costs, from a step: what the step added to the idle window, over its users. Redis
 * memory at steady state: the step's keys, plus an hour of remembered outputs at its change rate
 * less those the step already holds.
 */
function perUser(s: Step): PerUser {
  const w = s.window;
  const over = (x: number, idleX: number) => Math.max(0, x - idleX) / s.users;
  const hourOfOutputs = s.changesPerUser * Math.max(0, 3600 - s.window.seconds - warmupSeconds);
  return {
    cores: Object.fromEntries(COMPONENTS.map((c) => [c, over(w.cores[c] ?? 0, idle.cores[c] ?? 0)])) as Record<Component, number>,
    brokerBytesIn: over(w.bytesIn, idle.bytesIn),
    brokerBytesOut: over(w.bytesOut, idle.bytesOut),
    appendedBytes: over(sumOf(w.appended), sumOf(idle.appended)),
    redisOps: over(w.redisOps, idle.redisOps),
    redisBytes: s.redis.bytes / s.users + hourOfOutputs * OUTPUT_BYTES,
    idleCores: Object.fromEntries(COMPONENTS.map((c) => [c, idle.cores[c] ?? 0])) as Record<Component, number>,
  };
}
const measured: Record<Mode, PerUser> = { crop: perUser(last('crop')), scores: perUser(last('scores')) };

const assumptions: Assumptions = {
  ...DEFAULT_ASSUMPTIONS,
  coresPerMachine: numberFlag('cores-per-machine', DEFAULT_ASSUMPTIONS.coresPerMachine, Number.isInteger),
  utilization: numberFlag('utilization', DEFAULT_ASSUMPTIONS.utilization, (n) => n > 0 && n <= 1),
  replicationFactor: numberFlag('replication-factor', DEFAULT_ASSUMPTIONS.replicationFactor, Number.isInteger),
  redisShardBytes: numberFlag('redis-shard-gib', 8) * 2 ** 30,
  partitionedTopics: allTopics(topology).filter((t) => t.partitions === partitions).length,
};

// The report.
const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '-');
const pct = (x: number) => `${f(x * 100, 1)}%`;
const bytes = (x: number) => (x >= 1e9 ? `${f(x / 1e9, 1)} GB` : x >= 1e6 ? `${f(x / 1e6, 1)} MB` : x >= 1e3 ? `${f(x / 1e3, 1)} kB` : `${f(x)} B`);
/** Milliseconds of one core per record: what `cores` (less `idleCores`) spent over `records` in the window. */
const msPer = (w: Window, name: string, records: number, idleCores = 0) => (records > 0 ? f((Math.max(0, (w.cores[name] ?? 0) - idleCores) * w.seconds * 1000) / records, 3) : '-');

const costRows = steps.filter((s) => s !== scale).map((s) => {
  const w = s.window;
  const idleOf = (c: string) => idle.cores[c] ?? 0;
  return [
    s.mode, String(s.users), f(w.acked / w.seconds),
    msPer(w, 'gateway', w.acked, idleOf('gateway')),
    `${msPer(w, 'classifier', w.records.classifier ?? 0, idleOf('classifier'))} (${f(w.batchSize.classifier ?? NaN, 1)})`,
    `${msPer(w, 'smoother', w.records.smoother ?? 0, idleOf('smoother'))} (${f(w.batchSize.smoother ?? NaN, 1)})`,
    `${msPer(w, 'recommender', w.records.recommender ?? 0, idleOf('recommender'))} (${w.records.recommender ?? 0})`,
    msPer(w, 'broker', w.acked, idleOf('broker')),
    msPer(w, 'redis', w.acked, idleOf('redis')),
    msPer(w, 'load', w.acked),
  ];
});
const userRows = steps.filter((s) => s !== scale).map((s) => {
  const u = perUser(s);
  return [
    s.mode, String(s.users),
    ...COMPONENTS.map((c) => f(u.cores[c] * 1000, 2)),
    bytes(u.brokerBytesIn), bytes(u.brokerBytesOut), bytes(u.appendedBytes), f(u.redisOps, 1),
    `${bytes(s.redis.bytes / s.users)} / ${bytes(u.redisBytes)}`, f(s.changesPerUser * 60, 1),
  ];
});
const topics = [...new Set(MODES.flatMap((m) => [...last(m).window.appended.keys()]))].filter((t) => MODES.some((m) => (last(m).window.appended.get(t) ?? 0) > (idle.appended.get(t) ?? 0))).sort();
const topicRows = topics.map((t) => [
  t.startsWith(prefix) ? t.slice(prefix.length) : t,
  ...MODES.map((m) => bytes(Math.max(0, (last(m).window.appended.get(t) ?? 0) - (idle.appended.get(t) ?? 0)) / topUsers)),
]);

const planRows = MODES.flatMap((mode) => targets.map((users) => {
  const p = plan(users, fps, measured[mode], assumptions);
  return [
    mode, f(users), f(p.framesPerSecond),
    APP_COMPONENTS.map((c) => f(p.pods[c])).join(' / '),
    f(p.appCores), f(p.appMachines), `${f(p.partitions)} (${f(p.partitionsNeeded)})`,
    `${f(p.brokers)} (${p.brokersBy})`, `${bytes(p.brokerBytesIn)}/s / ${bytes(p.brokerBytesOut)}/s`,
    `${f(p.redisShards)} (${p.redisShardsBy})`, `${f(p.redisOps / 1000, 0)}k ops/s, ${bytes(p.redisBytes)}`,
  ];
}));

const scaleRecords = (name: string) => scale.window.records[name] ?? 0;
const bothRecords = scaleRecords('classifier') + scaleRecords('classifier-2');
const one = last('crop').window;
const idleClassifier = idle.cores.classifier ?? 0;
const scaleRows = [
  ['one classifier (crop step)', String(partitions), '100%', msPer(one, 'classifier', one.records.classifier ?? 0, idleClassifier), f(one.batchSize.classifier ?? NaN, 1)],
  ...(['classifier', 'classifier-2'] as const).map((name, i) => [
    `two classifiers: ${i === 0 ? 'first' : 'second'}`, String(i === 0 ? split.first : split.second), pct(scaleRecords(name) / Math.max(1, bothRecords)),
    msPer(scale.window, name, scaleRecords(name), idleClassifier), f(scale.window.batchSize[name] ?? NaN, 1),
  ]),
];
const cpuPerFrame = (w: Window, names: string[]) => names.reduce((x, n) => x + Math.max(0, (w.cores[n] ?? 0) - idleClassifier), 0) * w.seconds / Math.max(1, names.reduce((x, n) => x + (w.records[n] ?? 0), 0));
const oneMs = cpuPerFrame(one, ['classifier']) * 1000;
const twoMs = cpuPerFrame(scale.window, ['classifier', 'classifier-2']) * 1000;
const scaleNote = [
  `Each instance took the frames of its partitions: ${pct(scaleRecords('classifier') / Math.max(1, bothRecords))} and ${pct(scaleRecords('classifier-2') / Math.max(1, bothRecords))} for ${split.first} and ${split.second} of ${partitions} partitions.`,
  `Together they spent ${f(twoMs, 3)} ms of CPU a frame, against ${f(oneMs, 3)} ms for one instance (${twoMs >= oneMs ? '+' : ''}${f(((twoMs - oneMs) / oneMs) * 100, 0)}%).`,
  ...(twoMs > oneMs * 1.1 && (scale.window.batchSize.classifier ?? 0) < (one.batchSize.classifier ?? 0)
    ? ['At the same load, two instances make smaller batches (the mean batch column), and a batch\'s fixed costs (a transaction, a model call) spread over fewer frames; a fleet sized by the model runs each pod near its planned share of a core, where batches are larger.']
    : []),
].join(' ');
const perUserCores = (s: Step) => COMPONENTS.reduce((x, c) => x + perUser(s).cores[c], 0);
const firstSteps = MODES.map((m) => steps.find((s) => s.mode === m && s.users === userSteps[0])!);
const costsFell = userSteps.length > 1 && MODES.every((m, i) => perUserCores(last(m)) < perUserCores(firstSteps[i]!));
const date = new Date().toISOString().slice(0, 10);
const a = assumptions;
const report = `# Capacity benchmark (\`npm run bench:capacity\`)

${date}, ${machine()}. One gateway, the classifier, the smoother and the recommender, each its own
process, the local single-node broker (replication factor 1) and Redis, and this load generator
share the machine. The classifier serves ${servedModel ? `${servedModel.version} on ${servedModel.provider}` : 'an unknown model'}. Each simulated user is a WebSocket sending ${fps} frames/s whose face changes
expression every ${SEGMENT_FRAMES} frames, and asks for score events (as the web client does); ${userSteps.join(' and ')} users per
mode; ${partitions} partitions per topic; ${f(seconds)} s measured per step after ${f(warmupSeconds)} s of warm-up. Errors seen by
the users: ${errors.length}${errors.length ? ` (first: ${errors[0]})` : ''}.

## Measured

**CPU per record** (ms of one core, what the step added to the idle window): the gateway and the
broker per frame, each stage per record it took in (classifier: frames; smoother: scores;
recommender: emotion changes) with its mean batch in brackets (the recommender: its records),
Redis per frame, this load generator per frame.

${table(['mode', 'users', 'frames/s acked', 'gateway', 'classifier (batch)', 'smoother (batch)', 'recommender (changes)', 'broker', 'redis', 'load generator'], costRows)}

**Per user** at ${fps} frames/s: cores (thousandths of a core); bytes per second through the broker's
client port (the kernel's byte counters of its sockets: frames, scores, changes, lists, changelogs,
transaction markers, offset commits, fetch responses to every consumer), and appended to its logs;
Redis commands and memory (MEMORY USAGE of the step's keys after it, and at steady state: plus an
hour of remembered outputs, ${OUTPUT_BYTES} B each, at the step's rate of emotion changes).

${table(['mode', 'users', ...COMPONENTS.map((c) => `${c} mcores`), 'broker in', 'broker out', 'appended', 'Redis ops/s', 'Redis memory: after the step / steady', 'changes per minute'], userRows)}

Bytes appended to the logs per user per second, by topic (${topUsers} users):

${table(['topic', ...MODES], topicRows)}

Idle (no users), share of a core: ${[...APP_COMPONENTS, 'broker', 'redis'].map((c) => `${c} ${pct(idle.cores[c] ?? 0)}`).join(', ')}.
The model charges this to every pod and broker, not to users.

## Two instances of a stage split its work (consumer group)

A second classifier joined the first one's group, and ${topUsers} users sent crops again:

${table(['classifier', 'partitions', 'share of the frames', 'ms of CPU a frame', 'mean batch'], scaleRows)}

${scaleNote}

## The model

For each component, pods = ceil(users x cores per user / (${a.podCores} core x ${a.utilization} - the pod's idle share)).
Partitions: at least the largest pod count of any stage (one consumer per partition), and enough
that no partition takes more than ${bytes(a.partitionBytes)}/s; rounded up to a count with many divisors (6, 12,
24, 36, 48, 60, 120, 180, 240, 360, 720, 1440, 2520, ...). Brokers of ${a.coresPerMachine} cores at replication factor
${a.replicationFactor}: the most of CPU (measured broker CPU per user x ${a.replicationFactor}, at ${a.utilization} of each broker's
cores), network (${bytes(a.brokerNetworkBytes)}/s each way per broker, replication traffic included), partition
replicas (${a.partitionReplicasPerBroker} per broker, ${a.partitionedTopics} topics at the count) and ${a.minBrokers}. Redis masters: the most of
CPU (measured Redis CPU per user, at ${a.redisUtilization} of its one thread), memory (${bytes(a.redisShardBytes)} each)
and ${a.minRedisShards}. App machines: the pods' cores over ${a.coresPerMachine}-core nodes. Costs per user: the ${topUsers}-user steps.

${table(['mode', 'users', 'frames/s', 'pods: gateway / classifier / smoother / recommender', 'app cores', `app machines (${a.coresPerMachine} cores)`, 'partitions (needed)', 'brokers (bound by)', 'broker traffic in / out', 'Redis masters (bound by)', 'Redis load'], planRows)}

What it assumes:
- Every user sends ${fps} frames/s and changes emotion as often as the simulated ones did (about
  ${f(last('crop').changesPerUser * 60, 1)} times a minute): an upper bound for the recommender and Redis.
- Pods and brokers on cores like this VM's; one Node process runs its JavaScript on one core.
- The broker's CPU grows with the replication factor (followers append every record again): an
  upper bound, as consumers' fetches are served by leaders only.
- Costs per user stay what they were at ${topUsers} users.${costsFell ? ` They fell from ${userSteps[0]} to ${topUsers} users in both modes
  (fixed costs per request spread over more records), so the counts lean high.` : ''}

\`npm run bench:capacity${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\`
`;

const defaults = !['users', 'fps', 'seconds', 'warmup-seconds', 'idle-seconds', 'partitions'].some((k) => flags.has(k));
const out = flags.get('out') ?? (defaults ? path.join(ROOT, `bench/results/capacity-${date}.md`) : path.join(ROOT, '.cache/bench/capacity-last.md'));
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, report);
writeFileSync(out.replace(/\.md$/, '.json'), JSON.stringify({ date, machine: machine(), fps, idle, measured, split, assumptions, steps }, (_k, v) => (v instanceof Map ? Object.fromEntries(v) : v), 2));
process.stdout.write(`${report}\n(written to ${path.relative(ROOT, out)} and its .json)\n`);
process.exit(0);
