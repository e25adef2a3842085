/**
 * Gateway benchmark: N simulated WebSocket clients (Node, in this process), each a user sending
 * 48x48 grey face crops at 10 frames/s through one `emotionmuse gateway` process and the whole
 * pipeline (classifier, smoother, recommender as their own processes, on the local broker and
 * Redis). Each user's faces change expression every 60 frames. For each number of clients: the
 * frames acked per second, capture -> score as the client sees it (its own score event back over
 * its socket, so both of the gateway's directions are in it), capture -> ack, the gateway's CPU
 * and memory, and the CPU of the rest. It names the most clients one gateway holds with capture
 * -> score p99 within 50 ms and every frame acked, and the gateway's CPU per 1,000 frames/s.
 *
 *   npm run bench:gateway [-- --clients 25,50,100,150 --seconds 20 --warmup-seconds 10 --fps 10 --out file.md]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { mintDevelopmentToken } from '../auth/tokens.ts';
import { StreamClient } from '../gateway/client.ts';
import { parseArgv } from '../runtime/config.ts';
import { createKafka } from '../runtime/kafka.ts';
import { applyTopology } from '../topology/apply.ts';
import { buildTopology } from '../topology/topology.ts';
import { FER_PUBLIC_TEST } from '../sessions/faces.ts';
import { LOAD_CLASSES, loadServices, paceUsers, SEGMENT_FRAMES } from './load.ts';
import { checkFlags, machine, percentile, table } from './machine.ts';
import { freePort, machineBusy, procStats } from './proc-stats.ts';
import { STATE_VERSIONS } from '../processors/index.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { flags } = parseArgv(process.argv.slice(2));
const USAGE = `npm run bench:gateway [-- options]: simulated WebSocket clients through one gateway and the whole pipeline

  --clients 25,50,100,150  clients (users) per step, each sending 48x48 crops
  --fps 10                 frames per second of each client
  --seconds 20             measured length of each step
  --warmup-seconds 10      unreported warm-up first, at the first step's clients
  --partitions 6           partitions of every topic
  --gateway-env VAR=v,...  settings for the gateway, e.g. EM_GATEWAY_LINGER_MS=2
  --gateway-node-args a,b  node arguments for the gateway process, e.g. --cpu-prof,--cpu-prof-dir=/tmp/prof
  --out file.md            where the report goes (default: bench/results/gateway.md for the default
                           steps, .cache/bench/gateway-last.md otherwise)
`;
const KNOWN = ['help', 'clients', 'fps', 'seconds', 'warmup-seconds', 'partitions', 'gateway-node-args', 'gateway-env', 'out'];
checkFlags(flags, KNOWN, USAGE);
const steps = (flags.get('clients') ?? '25,50,100,150').split(',').map(Number);
const fps = Number(flags.get('fps') ?? 10);
const seconds = Number(flags.get('seconds') ?? 20);
const warmupSeconds = Number(flags.get('warmup-seconds') ?? 10);
const partitions = Number(flags.get('partitions') ?? 6);
const SCORE_BUDGET_MS = 50;
const CLASSES = LOAD_CLASSES;
const { brokers, redisUrl, prefix } = loadServices();
const admin = createKafka({ brokers, clientId: 'emotionmuse-bench' }).admin();
await admin.connect();
await applyTopology(admin, buildTopology({ prefix, partitions, stateVersions: STATE_VERSIONS }));
await admin.disconnect();

// A secret for this run only; the clients' tokens are signed with it.
const secret = randomBytes(32).toString('hex');
const gatewayPort = await freePort();
const ports = { classifier: await freePort(), smoother: await freePort(), recommender: await freePort() };
const procs: Record<string, ChildProcess> = {};
process.on('exit', () => Object.values(procs).forEach((p) => p.kill('SIGKILL')));
process.on('SIGINT', () => process.exit(130));
const env = { ...process.env, EM_KAFKA_BROKERS: brokers.join(','), EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: String(partitions), EM_REDIS_URL: redisUrl, EM_REDIS_PREFIX: `${prefix}r:`, EM_LOG_LEVEL: 'warn', EM_JWT_SECRET: secret };
for (const [stage, port] of Object.entries(ports)) {
  procs[stage] = spawn(process.execPath, [path.join(ROOT, 'bin/emotionmuse.js'), 'run', stage], { env: { ...env, EM_HTTP_PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit'] });
}
procs.gateway = spawn(process.execPath, [...(flags.get('gateway-node-args') ?? '').split(',').filter(Boolean), path.join(ROOT, 'bin/emotionmuse.js'), 'gateway'], { env: { ...env, ...Object.fromEntries((flags.get('gateway-env') ?? '').split(',').filter(Boolean).map((e) => e.split('=') as [string, string])), EM_GATEWAY_PORT: String(gatewayPort), EM_GATEWAY_HOST: '127.0.0.1', EM_GATEWAY_WEB: 'false' }, stdio: ['ignore', 'ignore', 'inherit'] });
process.stderr.write('waiting for the processors and the gateway to be ready\n');
for (const [name, port] of [...Object.entries(ports), ['gateway', gatewayPort] as const]) {
  for (let i = 0; i < 900 && !(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false)); i++) {
    if (procs[name]!.exitCode !== null) throw new Error(`the ${name} exited with ${procs[name]!.exitCode} before it was ready`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const crops = new Map<string, Uint8Array[]>();
for (const cls of CLASSES) {
  const dir = path.join(FER_PUBLIC_TEST, cls);
  crops.set(cls, await Promise.all(readdirSync(dir).slice(0, 20).map(async (f) => new Uint8Array(await sharp(path.join(dir, f)).greyscale().resize(48, 48).raw().toBuffer()))));
}

interface Sim {
  readonly client: StreamClient;
  readonly index: number;
  seq: number;
  sent: number;
}
const base = `http://127.0.0.1:${gatewayPort}`;
const sims: Sim[] = [];
const seen = { scoreMs: [] as number[], scoredMs: [] as number[], ackMs: [] as number[], scores: 0, errors: 0, throttles: 0 };
let measuring = false;
const sentAt = new Map<string, number>();

async function addClients(n: number): Promise<void> {
  while (sims.length < n) {
    const index = sims.length;
    const userId = `bench-u${index}`;
    const token = await mintDevelopmentToken({ secret }, userId, 3600);
    const client = await StreamClient.connect(base, {
      token,
      sessionId: `bench-${index}`,
      tokenInHeader: true,
      onMessage: (m) => {
        const now = Date.now();
        if (m.type === 'score') {
          seen.scores++;
          if (measuring) {
            seen.scoreMs.push(now - m.captureTimeMs);
            seen.scoredMs.push(m.processedTimeMs - m.captureTimeMs);
          }
        } else if (m.type === 'ack') {
          const t = sentAt.get(`${index}:${m.seq}`);
          if (t !== undefined && measuring) seen.ackMs.push(now - t);
        } else if (m.type === 'error') seen.errors++;
        else if (m.type === 'throttle') seen.throttles++;
      },
    });
    sims.push({ client, index, seq: client.welcome.lastSeq, sent: 0 });
  }
}

/** Sends every client's frames at `fps`, each client at its own phase, for `durationS`. */
async function drive(durationS: number): Promise<void> {
  await paceUsers(sims, fps, durationS, (index, seq) => {
    const s = sims[index]!;
    const cls = CLASSES[(Math.floor(seq / SEGMENT_FRAMES) + s.index) % CLASSES.length]!;
    const list = crops.get(cls)!;
    const captureTimeMs = Date.now();
    if (seq % 50 === 0) sentAt.clear();
    sentAt.set(`${s.index}:${seq}`, captureTimeMs);
    s.client.send({ kind: 'GRAY8', seq, captureTimeMs, width: 48, height: 48, faceBox: null, data: list[seq % list.length]! });
    s.sent++;
  });
}

const cpuOf = (name: string) => procStats(procs[name]!.pid!);
// The local broker, when the launcher started it, shares the two cores: it is measured too.
const brokerPidFile = path.join(ROOT, '.data', 'kafka', 'kafka.pid');
const brokerPid = existsSync(brokerPidFile) ? Number(readFileSync(brokerPidFile, 'utf8').trim()) : undefined;
const brokerCpu = () => (brokerPid ? procStats(brokerPid).cpuSeconds : NaN);
process.stderr.write(`warm-up: ${steps[0]} clients for ${warmupSeconds} s\n`);
await addClients(steps[0]!);
await drive(warmupSeconds);

interface Row {
  clients: number;
  offered: number;
  acked: number;
  scorePs: number;
  scoreP50: number;
  scoreP95: number;
  scoreP99: number;
  scoredP99: number;
  ackP99: number;
  gatewayCpu: number;
  gatewayRss: number;
  stagesCpu: number;
  brokerCpu: number;
  clientsCpu: number;
  machineBusy: number;
  errors: number;
  throttles: number;
}
const rows: Row[] = [];
for (const n of steps) {
  await addClients(n);
  await drive(2);
  process.stderr.write(`step: ${n} clients at ${fps} fps for ${seconds} s\n`);
  seen.scoreMs = [];
  seen.scoredMs = [];
  seen.ackMs = [];
  seen.errors = 0;
  seen.throttles = 0;
  const ackedBefore = sims.reduce((a, s) => a + s.client.acked, 0);
  const scoresBefore = seen.scores;
  const cpu0 = Object.fromEntries(Object.keys(procs).map((k) => [k, cpuOf(k).cpuSeconds]));
  const self0 = process.cpuUsage();
  const broker0 = brokerCpu();
  const m0 = machineBusy();
  const t0 = performance.now();
  measuring = true;
  await drive(seconds);
  const elapsed = (performance.now() - t0) / 1000;
  const m1 = machineBusy();
  const cpu = Object.fromEntries(Object.keys(procs).map((k) => [k, (cpuOf(k).cpuSeconds - cpu0[k]!) / elapsed]));
  const self = process.cpuUsage(self0);
  const brokerShare = (brokerCpu() - broker0) / elapsed;
  const scoresAtEnd = seen.scores;
  // The step's last frames come back; their latencies count, and so do their acks.
  await new Promise((r) => setTimeout(r, 1500));
  measuring = false;
  const acked = sims.reduce((a, s) => a + s.client.acked, 0) - ackedBefore;
  const q = (v: number[], p: number) => (v.length ? percentile(v, p) : NaN);
  rows.push({
    clients: n,
    offered: n * fps,
    acked: acked / elapsed,
    scorePs: (scoresAtEnd - scoresBefore) / elapsed,
    scoreP50: q(seen.scoreMs, 0.5),
    scoreP95: q(seen.scoreMs, 0.95),
    scoreP99: q(seen.scoreMs, 0.99),
    scoredP99: q(seen.scoredMs, 0.99),
    ackP99: q(seen.ackMs, 0.99),
    gatewayCpu: cpu.gateway!,
    gatewayRss: cpuOf('gateway').rssMiB,
    stagesCpu: cpu.classifier! + cpu.smoother! + cpu.recommender!,
    brokerCpu: brokerShare,
    clientsCpu: (self.user + self.system) / 1e6 / elapsed,
    machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total),
    errors: seen.errors,
    throttles: seen.throttles,
  });
  process.stderr.write(`  acked ${rows.at(-1)!.acked.toFixed(0)}/s, capture -> score p99 ${rows.at(-1)!.scoreP99.toFixed(0)} ms\n`);
}
for (const s of sims) await s.client.close();
for (const p of Object.values(procs)) p.kill('SIGTERM');
// (a profiled gateway writes its profile on exit)
await new Promise((r) => setTimeout(r, flags.has('gateway-node-args') ? 3000 : 0));

const within = rows.filter((r) => r.scoreP99 <= SCORE_BUDGET_MS && r.acked >= r.offered * 0.97 && r.errors === 0);
const best = within.at(-1);
const perK = rows.map((r) => (r.gatewayCpu / (r.acked / 1000)) * 100);
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const report = `# Gateway benchmark (\`npm run bench:gateway\`)

${new Date().toISOString().slice(0, 10)}, ${machine()}. One gateway process, the classifier, smoother and recommender as
their own processes, the local single-node broker and Redis, and this load generator (its simulated
clients in one Node process) all share the machine; CPU is in % of one core (the machine has two). Each client is a user sending 48x48 grey crops
at ${fps} frames/s over its own WebSocket; capture -> score is measured at the client, from the
frame's capture time to its score event arriving back over the same socket.

${table(
  ['clients', 'offered /s', 'acked /s', 'scores back /s', 'capture -> score p50', 'p95', 'p99', 'of which capture -> classifier done p99', 'capture -> ack p99', 'gateway CPU', 'gateway RSS', 'stages CPU', 'broker CPU', 'clients CPU', 'machine busy', 'errors'],
  rows.map((r) => [String(r.clients), String(r.offered), f0(r.acked), f0(r.scorePs), `${f0(r.scoreP50)} ms`, `${f0(r.scoreP95)} ms`, `${f0(r.scoreP99)} ms`, `${f0(r.scoredP99)} ms`, `${f0(r.ackP99)} ms`, `${(r.gatewayCpu * 100).toFixed(0)}% of a core`, `${f0(r.gatewayRss)} MiB`, `${(r.stagesCpu * 100).toFixed(0)}%`, `${(r.brokerCpu * 100).toFixed(0)}%`, `${(r.clientsCpu * 100).toFixed(0)}%`, `${(r.machineBusy * 100).toFixed(0)}%`, String(r.errors)]),
)}

- **Most clients one gateway holds within capture -> score p99 ${SCORE_BUDGET_MS} ms, every frame acked:** ${best ? `${best.clients} (${best.offered} frames/s)` : 'none of the steps'}.
- **Gateway CPU per 1,000 frames/s:** ${perK.map((p, i) => `${p.toFixed(0)}% of a core at ${rows[i]!.clients} clients`).join(', ')}.
- Throttles (rate limit or backpressure) seen by the clients: ${rows.map((r) => r.throttles).join(', ')} per step.
`;
const defaults = !flags.has('clients') && !flags.has('fps') && !flags.has('seconds');
const out = flags.get('out') ?? (defaults ? path.join(ROOT, 'bench/results/gateway.md') : path.join(ROOT, '.cache/bench/gateway-last.md'));
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, report);
process.stdout.write(`${report}\n(written to ${path.relative(ROOT, out)})\n`);
process.exit(0);
