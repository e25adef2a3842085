// A stage started while its broker is unreachable (restarting, or not up yet) waits for it for
// --start-timeout-ms instead of exiting after the Kafka client's own few retries (seen in the chaos
// test: a recommender restarted just before the broker's restart exited 1 and left its input unread).
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer, type Server } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createKafka } from '../../runtime/kafka.ts';
import { applyTopology } from '../../topology/apply.ts';
import { buildTopology } from '../../topology/topology.ts';
import { freePort, randomPrefix, waitFor } from '../support/kafka.ts';

const BIN = path.join(fileURLToPath(new URL('../../', import.meta.url)), 'bin/emotionmuse.js');

interface Stage {
  readonly proc: ChildProcess;
  readonly log: string[];
  readonly httpPort: number;
  readonly exited: Promise<number | null>;
}

const running: Array<Stage | Server> = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    if ('proc' in r) {
      r.proc.kill('SIGKILL');
      await r.exited;
    } else await new Promise((done) => r.close(done));
  }
});

async function startSmoother(brokerPort: number, startTimeoutMs: number): Promise<Stage> {
  const prefix = randomPrefix('start-wait');
  const brokers = inject('kafkaBrokers');
  const admin = createKafka({ brokers: brokers.split(','), clientId: 'start-wait-test' }).admin();
  await admin.connect();
  await applyTopology(admin, buildTopology({ prefix, partitions: 1 }));
  await admin.disconnect();
  const httpPort = await freePort();
  const proc = spawn(process.execPath, [BIN, 'run', 'smoother'], {
    env: { ...process.env, EM_SECURITY: 'off', EM_KAFKA_BROKERS: `127.0.0.1:${brokerPort}`, EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '1', EM_HTTP_PORT: String(httpPort), EM_START_TIMEOUT_MS: String(startTimeoutMs), EM_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  proc.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
  const stage = { proc, log, httpPort, exited: new Promise<number | null>((r) => proc.once('exit', (code) => r(code))) };
  running.push(stage);
  return stage;
}

/** Forwards `port` to the test broker (the broker's metadata then sends the client to it directly). */
async function proxyTo(port: number): Promise<Server> {
  const [host, brokerPort] = inject('kafkaBrokers').split(',')[0]!.split(':') as [string, string];
  const server = createServer((socket) => {
    const upstream = connect(Number(brokerPort), host);
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  running.push(server);
  return server;
}

describe('a stage started before its broker is reachable', () => {
  it('keeps trying, says so, and starts (ready) once the broker answers', async () => {
    const port = await freePort();
    const stage = await startSmoother(port, 90_000);
    await waitFor('a "Kafka not reachable yet" line', () => stage.log.join('').includes('Kafka not reachable yet'), 60_000, 200);
    expect(stage.proc.exitCode).toBeNull();
    await proxyTo(port);
    await waitFor('the smoother ready', async () => (await fetch(`http://127.0.0.1:${stage.httpPort}/readyz`).then((r) => r.status === 200, () => false)), 90_000, 300);
    expect(stage.log.join('')).toContain('Kafka reached');
    stage.proc.kill('SIGTERM');
    expect(await stage.exited).toBe(0);
  }, 200_000);

  it('exits 1 with the reason once --start-timeout-ms has passed', async () => {
    const stage = await startSmoother(await freePort(), 1000);
    const code = await Promise.race([stage.exited, new Promise<'alive'>((r) => setTimeout(() => r('alive'), 90_000))]);
    expect(code).toBe(1);
    expect(stage.log.join('')).toContain('could not start');
  }, 120_000);
});
