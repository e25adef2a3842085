import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AssignerProtocol, type Admin, type Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintDevelopmentToken } from '../../auth/tokens.ts';
import { deploymentTopology } from '../../cli/deployment.ts';
import { StreamClient } from '../../gateway/client.ts';
import { commonOptions } from '../../runtime/common-config.ts';
import { createKafka } from '../../runtime/kafka.ts';
import { freePort } from '../../runtime/net.ts';
import { synthesizeSession } from '../../sessions/synth.ts';
import { FER_PUBLIC_TEST } from '../../sessions/faces.ts';
import { parseTimeline } from '../../sessions/timeline.ts';
import { topicName } from '../../topology/topology.ts';
import { registry } from '../support/frames.ts';
import { docker, requireDocker } from '../support/docker.ts';
import { collect, waitFor } from '../support/kafka.ts';

// infra/docker-compose.yml as a user runs it: the local images on the host network, a session
// through the gateway, the classifier scaled to two replicas and one of them stopped, each stage
// stopped with SIGTERM, the stack taken down. Its services listen on ports of their own, so that
// it runs beside the local Kafka and Redis of the other tiers.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const COMPOSE_FILE = path.join(ROOT, 'infra/docker-compose.yml');
const PROJECT = `emtest${randomBytes(3).toString('hex')}`;
const SECRET = randomBytes(32).toString('hex');
const topology = deploymentTopology();
/** The compose stack's topics have the default partition count (runtime/common-config.ts). */
const PARTITIONS = commonOptions.partitions.default;

let env: NodeJS.ProcessEnv;
let kafka: Kafka;
let admin: Admin;
let gatewayUrl: string;
let down = false;

function compose(args: readonly string[], timeoutMs = 300_000): string {
  const r = spawnSync('docker-compose', ['-p', PROJECT, '-f', COMPOSE_FILE, ...args], { env, encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`docker-compose ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The containers of one compose service, in replica order. */
function containers(service: string): string[] {
  return compose(['ps', '-q', service]).split('\n').filter(Boolean);
}

function health(container: string): string {
  return docker(['inspect', '-f', '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}', container]).stdout.trim();
}

/** Members of a consumer group with the partitions each holds. */
async function groupMembers(groupId: string): Promise<number[][]> {
  const { groups } = await admin.describeGroups([groupId]);
  return (groups[0]?.members ?? []).map((m) => {
    const assignment = AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
    return Object.values(assignment?.assignment ?? {}).flat();
  });
}

const token = (user: string) => mintDevelopmentToken({ secret: SECRET }, user, 3600);

/** A labelled session's face crops sent over one gateway socket, with capture times from now. */
async function sendSession(user: string, sessionId: string, timeline: string, seed: number): Promise<{ client: StreamClient; seqs: number[] }> {
  const { frames } = await synthesizeSession({ images: FER_PUBLIC_TEST, timeline: parseTimeline(timeline), fps: 10, seed, userId: user, sessionId });
  const client = await StreamClient.connect(gatewayUrl, { token: await token(user), sessionId, tokenInHeader: true });
  const t0 = Date.now();
  for (const f of frames) client.send({ kind: 'GRAY8', seq: f.seq, captureTimeMs: t0 + (f.captureTimeMs - frames[0]!.captureTimeMs), width: f.width, height: f.height, faceBox: null, data: f.data });
  return { client, seqs: frames.map((f) => f.seq) };
}

describe('infra/docker-compose.yml on a real Docker engine, with the local images', () => {
  beforeAll(async () => {
    requireDocker();
    const [kafkaPort, controllerPort, redisPort, prometheusPort, gatewayPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    env = {
      ...process.env,
      EM_JWT_SECRET: SECRET,
      EM_COMPOSE_KAFKA_PORT: String(kafkaPort),
      EM_COMPOSE_KAFKA_CONTROLLER_PORT: String(controllerPort),
      EM_COMPOSE_REDIS_PORT: String(redisPort),
      EM_COMPOSE_PROMETHEUS_PORT: String(prometheusPort),
      EM_COMPOSE_GATEWAY_PORT: String(gatewayPort),
    };
    gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    compose(['up', '-d']);
    kafka = createKafka({ brokers: [`127.0.0.1:${kafkaPort}`], clientId: 'compose-test' });
    admin = kafka.admin();
    await admin.connect();
    await waitFor('every stage and the gateway healthy (their /readyz, through the image\'s health check)', () =>
      ['classifier', 'smoother', 'recommender', 'gateway'].every((s) => containers(s).every((c) => health(c) === 'healthy')), 240_000, 2000);
  });

  afterAll(async () => {
    await admin?.disconnect().catch(() => undefined);
    if (down || !env) return;
    // A failed test leaves its evidence in the output before the stack goes.
    console.log(compose(['logs', '--tail', '40', '--no-color']).slice(-20_000));
    compose(['down', '-v', '--timeout', '20']);
  });

  it('runs the image\'s CLI as a non-root user, with no registry CA left in it', () => {
    const help = docker(['run', '--rm', '--network', 'host', 'emotionmuse:local', '--help']);
    expect(help.stdout).toContain('usage: emotionmuse <command>');
    expect(docker(['run', '--rm', '--entrypoint', 'id', 'emotionmuse:local', '-u']).stdout.trim()).not.toBe('0');
    // The build's CA bundle was a secret of the install steps: neither it nor the system bundle is in the image.
    const ca = docker(['run', '--rm', '--entrypoint', 'sh', 'emotionmuse:local', '-c', 'ls /run/secrets /etc/ssl/certs/ca-certificates.crt 2>/dev/null | wc -l']);
    expect(ca.stdout.trim()).toBe('0');
  });

  it('takes a session through the gateway to emotion changes and recommendation lists', async () => {
    const { client, seqs } = await sendSession('ana', 'compose-1', 'happy:6s,sad:6s', 11);
    try {
      await client.waitFor('every frame stored', (c) => c.acked >= seqs[seqs.length - 1]!, 60_000);
      const changes = await client.waitFor('two emotion changes', (c) => {
        const got = c.messages.filter((m) => m.type === 'change');
        return got.length >= 2 && got;
      }, 60_000);
      expect(changes.map((c) => c.type === 'change' && c.label)).toContain('sad');
      const list = await client.waitFor('a recommendation list', (c) => c.messages.find((m) => m.type === 'list'), 60_000);
      expect(list.type === 'list' && list.items.length).toBeGreaterThan(0);
    } finally {
      client.ws.close();
    }
  });

  it('scales the classifier to two replicas that share the partitions, and loses no frame when one is stopped', async () => {
    const group = `${topology.prefix}classifier`;
    compose(['up', '-d', '--no-recreate', '--scale', 'classifier=2', 'classifier']);
    const members = await waitFor('two classifier replicas, each with partitions', async () => {
      const m = await groupMembers(group);
      return m.length === 2 && m.every((p) => p.length > 0) && m;
    }, 180_000, 1000);
    expect(members.flat().sort((a, b) => a - b)).toEqual([...Array(PARTITIONS).keys()]);
    const [first, second] = containers('classifier');
    await waitFor('the second replica healthy', () => health(second!) === 'healthy', 120_000, 1000);

    const reader = await collect(kafka, [topicName(topology, 'emotion-scores'), topicName(topology, 'dead-letter-frames')]);
    const users = ['bo', 'cy', 'di', 'ed', 'fe', 'gu'];
    try {
      const sessions = await Promise.all(users.map((u, i) => sendSession(u, 'compose-2', 'neutral:4s,happy:4s', 40 + i)));
      // Stopped while the frames arrive: its partitions go to the other replica, which goes on
      // from the last committed offsets.
      await new Promise((r) => setTimeout(r, 1500));
      const stopped = Date.now();
      docker(['stop', '-t', '10', second!]);
      const stopMs = Date.now() - stopped;
      for (const s of sessions) await s.client.waitFor('its frames stored', (c) => c.acked >= s.seqs[s.seqs.length - 1]!, 60_000);
      const scored = () => {
        const seen = new Set<string>();
        for (const r of reader.records) {
          if (r.topic !== topicName(topology, 'emotion-scores')) continue;
          const score = registry.decode('emotion-score', r.value!);
          if (users.includes(score.userId)) seen.add(`${score.userId}/${score.seq}`);
        }
        return seen;
      };
      const expected = sessions.flatMap((s, i) => s.seqs.map((q) => `${users[i]}/${q}`));
      await waitFor(`a score for each of the ${expected.length} frames`, () => expected.every((k) => scored().has(k)), 120_000, 500);
      expect(reader.records.filter((r) => r.topic === topicName(topology, 'dead-letter-frames'))).toEqual([]);
      expect(docker(['inspect', '-f', '{{.State.ExitCode}}', second!]).stdout.trim()).toBe('0');
      expect(stopMs).toBeLessThan(10_000);
      console.log(`[compose] a classifier replica stopped (SIGTERM) in ${stopMs} ms while ${users.length} users sent ${expected.length} frames; every frame scored, no dead letter`);
      const left = await waitFor('the remaining replica holding every partition', async () => {
        const m = await groupMembers(group);
        return m.length === 1 && m[0]!.length === PARTITIONS && m;
      }, 60_000, 1000);
      expect(left).toHaveLength(1);
      expect(health(first!)).toBe('healthy');
      for (const s of sessions) s.client.ws.close();
    } finally {
      await reader.stop();
    }
  });

  it('stops every stage and the gateway on SIGTERM within 10 s, cleanly, then takes the stack down', () => {
    for (const service of ['classifier', 'smoother', 'recommender', 'gateway']) {
      const [container] = containers(service);
      const t0 = Date.now();
      docker(['stop', '-t', '10', container!]);
      const ms = Date.now() - t0;
      const state = docker(['inspect', '-f', '{{.State.ExitCode}} {{.State.OOMKilled}}', container!]).stdout.trim();
      expect(`${service}: ${state}`).toBe(`${service}: 0 false`);
      expect(ms, `${service} took ${ms} ms to stop`).toBeLessThan(10_000);
      console.log(`[compose] ${service} stopped on SIGTERM in ${ms} ms, exit code 0`);
      const logs = docker(['logs', '--tail', '5', container!]);
      if (service !== 'gateway') expect(`${logs.stdout}${logs.stderr}`).toContain('"msg":"stopped"');
    }
    compose(['down', '-v', '--timeout', '20']);
    down = true;
    const left = docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${PROJECT}`]).stdout.trim();
    expect(left).toBe('');
    const volumes = docker(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${PROJECT}`]).stdout.trim();
    expect(volumes).toBe('');
  });
});
