import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Admin, Kafka, Message } from 'kafkajs';
import { afterAll, afterEach, beforeAll, expect, inject } from 'vitest';
import { Redis, type RedisOptions } from 'ioredis';
import { loadConfig } from '../../runtime/config.ts';
import { basicAuthHeaders } from '../../runtime/http.ts';
import { createKafka } from '../../runtime/kafka.ts';
import path from 'node:path';
import { kafkaSecurity, metricsAuth, redisSecurity, secretsDir, securityOptions, type Principal } from '../../runtime/security.ts';
import { applyAcls } from '../../topology/acls.ts';
import { freePort } from '../../runtime/net.ts';

export { freePort };
import { applyTopology } from '../../topology/apply.ts';
import { buildTopology, type Topology } from '../../topology/topology.ts';
import { STATE_VERSIONS } from '../../processors/index.ts';

const BIN = fileURLToPath(new URL('../../bin/emotionmuse.js', import.meta.url));

export function brokers(): string[] {
  return inject('kafkaBrokers').split(',');
}

/** Whether this run talks to the secured services (EM_SECURITY=on). */
export function securedRun(): boolean {
  return process.env.EM_SECURITY === 'on';
}

/** The tests' own clients act as the admin principal (a super user); the processes they start use their own. */
export function testSecurity() {
  return loadConfig(securityOptions, { env: process.env, allowUnknownFlags: true });
}

export function testKafka(principal: Principal = 'admin'): Kafka {
  return createKafka({ brokers: brokers(), clientId: 'emotionmuse-test', security: kafkaSecurity(testSecurity(), principal) });
}

/** A Redis connection as the admin ACL user in the secured mode (tests read and clean any key). */
export function testRedis(options: RedisOptions = {}, url = inject('redisUrl')): Redis {
  return new Redis(url, { ...redisSecurity({ ...testSecurity(), redisUrl: url }, 'admin'), ...options });
}

/** The Redis options of the application's ACL user (what the recommender and the gateway connect as). */
export function appRedisOptions(): RedisOptions {
  const url = inject('redisUrl');
  return redisSecurity({ ...testSecurity(), redisUrl: url }, 'emotionmuse');
}

/**
 * The arguments that make a test's own redis-server like the suite's: in the secured mode TLS
 * only, with the local ACL users (infra/local.sh writes the ACL file).
 */
export function redisServerArgs(port: number): string[] {
  if (!securedRun()) return ['--port', String(port)];
  const dir = secretsDir(testSecurity());
  const acl = path.join(path.dirname(dir), 'redis-secure', 'users.acl');
  return ['--port', '0', '--tls-port', String(port), '--tls-cert-file', path.join(dir, 'server.crt'), '--tls-key-file', path.join(dir, 'server.key'), '--tls-ca-cert-file', path.join(dir, 'ca.crt'), '--tls-auth-clients', 'no', '--aclfile', acl];
}

/** The headers that /metrics asks for in the secured mode. */
export function metricsHeaders(): Record<string, string> {
  return basicAuthHeaders(metricsAuth(testSecurity()));
}

/** A Kafka client and a connected admin for the tests of one file (connected before, closed after). */
/** Processors started by the running test (their logs are printed when it fails). */
const startedInTest: Array<{ name: string; p: ProcessorProcess }> = [];

export function useKafka(): { readonly kafka: Kafka; readonly admin: Admin } {
  let kafka: Kafka | undefined;
  let admin: Admin | undefined;
  afterEach((ctx) => {
    // A failed test shows what its processors said (a timeout alone says nothing of why).
    if (ctx.task.result?.state === 'fail' || process.env.EM_TEST_PROCESSOR_LOGS === '1') {
      for (const { name, p } of startedInTest) {
        const exit = p.proc.exitCode !== null || p.proc.signalCode !== null ? `exited ${p.proc.exitCode ?? p.proc.signalCode}` : 'running';
        console.error(`--- ${name} (pid ${p.proc.pid}, port ${p.port}, ${exit}), last lines of its log:\n${p.logs.join('').split('\n').slice(-40).join('\n')}`);
      }
    }
    startedInTest.length = 0;
  });
  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.disconnect();
  });
  return {
    get kafka() {
      return kafka!;
    },
    get admin() {
      return admin!;
    },
  };
}

/** A fresh, random topic prefix per suite, so that runs never collide. */
export function randomPrefix(suite: string): string {
  return `test.${suite}.${randomBytes(4).toString('hex')}.`;
}

export async function createTopology(admin: Admin, prefix: string, partitions = 3): Promise<Topology> {
  const topology = buildTopology({ prefix, partitions, stateVersions: STATE_VERSIONS });
  await applyTopology(admin, topology);
  await applyAcls(admin, topology, { required: securedRun() });
  return topology;
}

export interface ProcessorProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly logs: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `emotionmuse run <name>` as a child process against the test broker. */
export async function startProcessor(name: string, env: Record<string, string>): Promise<ProcessorProcess> {
  const port = await freePort();
  const proc = spawn(process.execPath, [BIN, 'run', name], {
    env: { ...process.env, EM_KAFKA_BROKERS: brokers().join(','), EM_HTTP_PORT: String(port), EM_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  proc.stdout!.on('data', (d: Buffer) => logs.push(d.toString()));
  proc.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const started = { proc, port, logs, exited };
  startedInTest.push({ name, p: started });
  return started;
}

/** Starts `emotionmuse run <name>`, waits until `until()` holds, and kills it with SIGKILL mid-stream. */
export async function killMidStream(name: string, env: Record<string, string>, what: string, until: () => boolean): Promise<void> {
  const p = await startProcessor(name, env);
  await waitFor(what, until, 120_000, 20);
  p.proc.kill('SIGKILL');
  expect((await p.exited).signal).toBe('SIGKILL');
}

/** Whether `group` has committed every record of `topics` (an empty partition has nothing to commit). */
export async function caughtUp(admin: Admin, group: string, topics: readonly string[]): Promise<boolean> {
  for (const topic of topics) {
    const [ends, done] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId: group, topics: [topic] })]);
    for (const e of ends) if (e.offset !== '0' && done[0]!.partitions.find((c) => c.partition === e.partition)?.offset !== e.offset) return false;
  }
  return true;
}

export async function metricsText(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: metricsHeaders() });
  return res.text();
}

/** Sum of a metric's samples in Prometheus text, optionally only those whose labels contain `match`. */
export function metricSum(text: string, name: string, match = ''): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .filter((l) => l.includes(match))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/**
 * Polls `fn` until it gives a value. `running`: processors the wait depends on; one that exits
 * ends the wait at once with its exit code (rather than a timeout that says nothing of why).
 */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000, everyMs = 200, running: readonly ProcessorProcess[] = []): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const gone = running.find((p) => p.proc.exitCode !== null || p.proc.signalCode !== null);
    if (gone) throw new Error(`the processor on port ${gone.port} exited (${gone.proc.exitCode ?? gone.proc.signalCode}) while waiting for ${what}`);
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

export interface Collected {
  topic: string;
  partition: number;
  offset: string;
  key: string;
  value: Buffer | null;
  /** The record's timestamp (its writer's time, or the broker's on a LogAppendTime topic). */
  timestamp: number;
  headers: Record<string, string>;
}

/**
 * A read_committed reader that collects everything on `topics` from the beginning, for as long as
 * it runs. `stop` ends it; `records` holds what it saw, in per-partition order.
 */
export async function collect(kafka: Kafka, topics: string[]): Promise<{ records: Collected[]; stop: () => Promise<void> }> {
  const consumer = kafka.consumer({ groupId: `test-reader-${randomBytes(6).toString('hex')}`, readUncommitted: false, maxWaitTimeInMs: 100 });
  const records: Collected[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]));
      records.push({ topic, partition, offset: message.offset, key: message.key?.toString() ?? '', value: message.value, timestamp: Number(message.timestamp), headers });
    },
  });
  await joined;
  return { records, stop: () => consumer.disconnect() };
}

export async function produce(kafka: Kafka, topic: string, messages: Message[], chunk = 500): Promise<void> {
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += chunk) {
      await producer.send({ topic, messages: messages.slice(i, i + chunk), acks: -1 });
    }
  } finally {
    await producer.disconnect();
  }
}
