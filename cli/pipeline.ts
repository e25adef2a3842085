import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configHelp, loadConfig, opt } from '../runtime/config.ts';
import { commonOptions } from '../runtime/common-config.ts';
import { createKafka } from '../runtime/kafka.ts';
import { createLogger } from '../runtime/log.ts';
import { Supervisor } from '../runtime/supervisor.ts';
import { SchemaRegistry } from '../schemas/registry.ts';
import type { Frame } from '../schemas/generated/types.ts';
import { applyTopology, formatActions } from '../topology/apply.ts';
import { buildTopology, topicName } from '../topology/topology.ts';
import type { Command } from './command.ts';
import { wantsHelp } from './command.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const pipelineOptions = {
  ...commonOptions,
  images: opt.string('EM_IMAGES', 'images', path.resolve(ROOT, '../shared/data/fer2013/public-test'), 'Folder of face images (class subfolders) to publish'),
  users: opt.int('EM_DEMO_USERS', 'users', 3, 'Simulated users', { min: 1 }),
  frames: opt.int('EM_DEMO_FRAMES', 'frames', 40, 'Frames per user', { min: 1 }),
  fps: opt.number('EM_DEMO_FPS', 'fps', 20, 'Frames per second per user', { min: 0.1 }),
  infra: opt.bool('EM_START_INFRA', 'infra', true, 'Start (or reuse) the local Kafka and Redis first'),
  keepRunning: opt.bool('EM_KEEP_RUNNING', 'keep-running', false, 'Keep the processors running after the replay ends (Ctrl-C stops)'),
};

function listImages(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listImages(p).slice(0, 50));
    else if (/\.(jpe?g|png)$/i.test(entry.name)) out.push(p);
  }
  return out.sort();
}

export const pipelineCommand: Command = {
  summary: 'run the whole pipeline on this machine: services, topics, processors, a replayed session',
  help: `usage: emotionmuse pipeline [options]

Starts (or reuses) the local Kafka and Redis, applies the topology, starts every processor as its
own supervised process, publishes a session of face images for a few users, prints what comes
out as it arrives, and stops cleanly when every frame has gone through (or on Ctrl-C).

Stages so far: passthrough (frame validation with per-user state). The classifier, smoother and
recommender stages join the same command as they land.

options:
${configHelp(pipelineOptions)}`,
  async run(argv) {
    if (wantsHelp(argv)) {
      console.log(this.help);
      return 0;
    }
    const config = loadConfig(pipelineOptions, { argv });
    const logger = createLogger(config.logLevel, { component: 'pipeline' });
    if (config.infra) {
      const up = spawnSync('bash', [path.join(ROOT, 'infra/local.sh'), 'up', 'kafka', 'redis'], { stdio: 'inherit' });
      if (up.status !== 0) return up.status ?? 1;
    }
    const topology = buildTopology({ prefix: config.topicPrefix, partitions: config.partitions, replicationFactor: config.replicationFactor });
    const kafka = createKafka({ brokers: config.brokers, clientId: 'emotionmuse-pipeline' });
    const admin = kafka.admin();
    await admin.connect();
    console.log(formatActions(await applyTopology(admin, topology)));
    await admin.disconnect();

    const supervisor = new Supervisor({
      logger,
      env: { ...process.env, EM_KAFKA_BROKERS: config.brokers.join(','), EM_TOPIC_PREFIX: config.topicPrefix, EM_PARTITIONS: String(config.partitions), EM_LOG_LEVEL: 'warn' },
      onOutput: (name, line) => console.log(`  [${name}] ${line}`),
    });
    for (const p of topology.processors) supervisor.start(p.name);

    const registry = SchemaRegistry.load();
    const images = listImages(config.images);
    const source = images.length > 0 ? `${images.length} images from ${config.images}` : 'generated grey frames (image folder not found)';
    const expected = config.users * config.frames;
    const sessionId = `demo-${Date.now()}`;
    const latencies: number[] = [];
    const seen = new Set<string>();
    let deadLetters = 0;

    const consumer = kafka.consumer({ groupId: `${config.topicPrefix}pipeline-watch-${sessionId}`, readUncommitted: false, maxWaitTimeInMs: 50 });
    await consumer.connect();
    await consumer.subscribe({ topics: [topicName(topology, 'passthrough'), topicName(topology, 'dead-letter')], fromBeginning: false });
    let allSeen!: () => void;
    const done = new Promise<void>((resolve) => (allSeen = resolve));
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    await consumer.run({
      eachMessage: async ({ topic, message }) => {
        if (topic === topicName(topology, 'dead-letter')) {
          const dl = registry.decode('dead-letter', message.value!);
          deadLetters++;
          console.log(`dead letter  ${dl.stage} ${dl.errorCode}: ${dl.errorMessage}`);
          return;
        }
        const frame = registry.decode('frame', message.value!);
        if (frame.sessionId !== sessionId) return;
        const latency = Date.now() - frame.captureTimeMs;
        latencies.push(latency);
        seen.add(`${frame.userId}:${frame.seq}`);
        if (frame.seq % 10 === 0 || seen.size === expected) {
          console.log(`frame        user=${frame.userId} seq=${frame.seq} ${frame.encoding} ${frame.data.length}B  capture->passthrough ${latency} ms  (${seen.size}/${expected})`);
        }
        if (seen.size >= expected) allSeen();
      },
    });
    await joined;

    let interrupted = false;
    const onSignal = () => {
      interrupted = true;
      allSeen();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    console.log(`publishing ${expected} frames (${config.users} users x ${config.frames}) from ${source}`);
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    const interval = 1000 / config.fps;
    for (let seq = 1; seq <= config.frames && !interrupted; seq++) {
      const tick = Date.now();
      const messages = Array.from({ length: config.users }, (_, u) => {
        const userId = `user-${u + 1}`;
        const file = images.length > 0 ? images[(u * 997 + seq) % images.length]! : undefined;
        const frame: Frame = file
          ? { userId, sessionId, seq, captureTimeMs: Date.now(), encoding: /\.png$/i.test(file) ? 'PNG' : 'JPEG', width: 0, height: 0, data: readFileSync(file), faceBox: null }
          : { userId, sessionId, seq, captureTimeMs: Date.now(), encoding: 'GRAY8', width: 48, height: 48, data: Buffer.alloc(48 * 48, (seq * 7) % 256), faceBox: null };
        return { key: userId, value: registry.encode('frame', frame) };
      });
      await producer.send({ topic: topicName(topology, 'frames'), messages });
      await new Promise((r) => setTimeout(r, Math.max(0, interval - (Date.now() - tick))));
    }
    await producer.disconnect();

    const timeout = setTimeout(() => allSeen(), 60_000);
    await done;
    clearTimeout(timeout);
    if (config.keepRunning && !interrupted) {
      console.log('replay done; processors keep running (Ctrl-C stops)');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }
    latencies.sort((a, b) => a - b);
    const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
    console.log(`\n${seen.size}/${expected} frames through, ${deadLetters} dead letters`);
    console.log(`stage latency (capture -> passthrough output): p50 ${q(0.5)} ms, p95 ${q(0.95)} ms, p99 ${q(0.99)} ms`);
    await consumer.disconnect();
    await supervisor.stop();
    console.log('stopped');
    return seen.size >= expected ? 0 : 1;
  },
};
