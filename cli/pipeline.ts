import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configHelp, loadConfig, opt } from '../runtime/config.ts';
import { commonOptions } from '../runtime/common-config.ts';
import { createKafka } from '../runtime/kafka.ts';
import { kafkaSecurity, secretsDir } from '../runtime/security.ts';
import { createLogger } from '../runtime/log.ts';
import { Supervisor } from '../runtime/supervisor.ts';
import { EdgeAnalyzer, PRIVACY_LEVELS } from '../edge/analyzer.ts';
import { EdgePublisher } from '../edge/publisher.ts';
import { replay } from '../edge/replay.ts';
import { ffmpegFrames, folderFrames } from '../edge/sources.ts';
import { PROCESSORS, recommenderOptions } from '../processors/index.ts';
import { loadCatalogue } from '../processors/recommender/catalogue.ts';
import { readRecording } from '../schemas/recording.ts';
import { SchemaRegistry } from '../schemas/registry.ts';
import type { Frame } from '../schemas/generated/types.ts';
import { synthesizeSession } from '../sessions/synth.ts';
import { fpsOption, parseTimeline } from '../sessions/timeline.ts';
import { applyAcls } from '../topology/acls.ts';
import { applyTopology, formatActions } from '../topology/apply.ts';
import { topicName } from '../topology/topology.ts';
import { percentile } from '../observability/format.ts';
import { mintDevelopmentToken } from '../auth/tokens.ts';
import type { Command } from './command.ts';
import { formatList } from './recommendations.ts';
import { latencyCommand } from './latency.ts';
import { deploymentTopology } from './deployment.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STAGES = ['classifier', 'smoother', 'recommender'] as const;
const TIMELINES = ['neutral:7s,happy:9s,sad:9s', 'happy:8s,neutral:8s,angry:9s', 'sad:8s,surprise:8s,neutral:9s'];

const pipelineOptions = {
  ...commonOptions,
  images: opt.string('EM_IMAGES', 'images', path.resolve(ROOT, '../shared/data/fer2013/public-test'), 'FER-style folder (one subfolder per emotion) to synthesize the demo sessions from'),
  users: opt.int('EM_DEMO_USERS', 'users', 3, 'Simulated users of the default session', { min: 1, max: 20 }),
  speed: opt.number('EM_SPEED', 'speed', 1, 'Replay speed (1: real time)', { min: 0.1 }),
  recording: opt.string('EM_RECORDING', 'recording', '', 'Replay this recording instead'),
  video: opt.string('EM_VIDEO', 'video', '', 'Publish this video file (ffmpeg) instead, as user video-user'),
  camera: opt.string('EM_CAMERA', 'camera', '', 'Publish this camera device (ffmpeg) instead, as user camera-user'),
  fps: fpsOption,
  send: opt.oneOf('EM_SEND', 'send', 'crop', PRIVACY_LEVELS, 'For video and camera, what leaves the edge client: crop, scores or frame (emotionmuse publish --help)'),
  modelDir: recommenderOptions.modelDir,
  infra: opt.bool('EM_START_INFRA', 'infra', true, 'Start (or reuse) the local Kafka and Redis first'),
  keepRunning: opt.bool('EM_KEEP_RUNNING', 'keep-running', false, 'Keep everything running after the replay ends (Ctrl-C stops)'),
  play: opt.bool('EM_PLAY', 'play', true, 'Act as the users\' player: play the first track of each list (a listen record)'),
  gateway: opt.bool('EM_GATEWAY', 'gateway', true, 'Also start the gateway (emotionmuse gateway) and print the web viewer\'s address with a development token'),
  gatewayPort: opt.int('EM_GATEWAY_PORT', 'gateway-port', 8080, 'Port of the gateway and the web viewer', { min: 1, max: 65535 }),
  timeoutS: opt.int('EM_TIMEOUT_S', 'timeout-s', 90, 'After the replay, wait at most this long for every user\'s first change and list', { min: 1 }),
};

async function demoFrames(c: { images: string; users: number; recording: string }, registry: SchemaRegistry): Promise<{ frames: Frame[]; source: string }> {
  if (c.recording) return { frames: (await readRecording(c.recording, registry)).frames, source: c.recording };
  if (existsSync(c.images)) {
    const frames: Frame[] = [];
    for (let u = 0; u < c.users; u++) {
      const s = await synthesizeSession({ images: c.images, timeline: parseTimeline(TIMELINES[u % TIMELINES.length]!), fps: 10, seed: 40 + u, userId: `user-${u + 1}`, sessionId: 'demo' });
      frames.push(...s.frames);
    }
    return { frames, source: `sessions synthesized from ${c.images} (${TIMELINES.slice(0, c.users).join(' | ')})` };
  }
  // No FER folder: the demo photos that ship in @vladmandic/face-api, as full JPEG frames.
  const photos = [...folderFrames(path.join(ROOT, 'node_modules/@vladmandic/face-api/demo'))];
  const frames: Frame[] = [];
  for (let u = 0; u < c.users; u++) {
    for (let i = 0; i < 120; i++) {
      const p = photos[(i + u) % photos.length]!;
      frames.push({ userId: `user-${u + 1}`, sessionId: 'demo', seq: i + 1, captureTimeMs: i * 100, encoding: p.encoding, width: 0, height: 0, data: p.data, faceBox: null, probabilities: [], edgeModelVersion: '' });
    }
  }
  return { frames, source: 'the face photos of @vladmandic/face-api (../shared/data/fer2013/public-test not found)' };
}

export const pipelineCommand: Command = {
  summary: 'run the whole pipeline on this machine: services, topics, processors, a replayed session',
  help: `usage: emotionmuse pipeline [options]

Starts (or reuses) the local Kafka and Redis, applies the topology, starts the classifier, the
smoother and the recommender each as its own supervised process (a crash is shown and the
process restarted) and the gateway, prints the web viewer's address with a development token
for each demo user, replays a session, and prints emotion changes and recommendation lists as
they arrive. Token secret: EM_JWT_SECRET (or EM_JWT_SECRET_FILE) when set, otherwise a random
one made for this run and never shown. By default the session is synthesized from ../shared/data/fer2013/public-test for
three users (or made of the photos in @vladmandic/face-api when that folder is absent);
--recording, --video and --camera choose another source. It stops by itself when every user has
had an emotion change and a list (--keep-running to stay up; Ctrl-C stops cleanly), and prints
the per-stage latency it observed.

options:
${configHelp(pipelineOptions)}`,
  async run(argv) {
    const c = loadConfig(pipelineOptions, { argv });
    const logger = createLogger(c.logLevel, { component: 'pipeline' });
    if (c.infra) {
      const up = spawnSync('bash', [path.join(ROOT, 'infra/local.sh'), 'up', 'kafka', 'redis'], { stdio: 'inherit' });
      if (up.status !== 0) return up.status ?? 1;
    }
    const topology = deploymentTopology(c);
    const kafka = createKafka({ brokers: c.brokers, clientId: 'emotionmuse-pipeline', security: kafkaSecurity(c, 'admin') });
    const admin = kafka.admin();
    await admin.connect();
    const actions = await applyTopology(admin, topology);
    await applyAcls(admin, topology, { required: c.security === 'on' });
    await admin.disconnect();
    console.log(`topics: ${actions.filter((a) => a.kind === 'created').length} created, ${actions.filter((a) => a.kind === 'unchanged').length} unchanged${actions.some((a) => a.kind === 'drift') ? `\n${formatActions(actions.filter((a) => a.kind === 'drift'))}` : ''}`);

    // A development token secret for this run when none is configured: the gateway, the
    // recommender and the classifier (each frame carries its user's token) verify with it, and
    // the viewer's and the demo users' tokens are signed with it.
    // (the secured mode's is the one infra/local.sh made)
    const securedSecret = path.join(secretsDir(c), 'jwt.secret');
    const secretEnv = process.env.EM_JWT_SECRET || process.env.EM_JWT_SECRET_FILE ? {} : c.security === 'on' && existsSync(securedSecret) ? { EM_JWT_SECRET_FILE: securedSecret } : { EM_JWT_SECRET: randomBytes(32).toString('hex') };
    const env: NodeJS.ProcessEnv = { ...process.env, ...secretEnv, EM_KAFKA_BROKERS: c.brokers.join(','), EM_TOPIC_PREFIX: c.topicPrefix, EM_PARTITIONS: String(c.partitions), EM_REDIS_URL: c.redisUrl, EM_RECOMMENDER_MODEL: c.modelDir, EM_GATEWAY_PORT: String(c.gatewayPort), EM_LOG_LEVEL: 'warn', EM_FRAME_AUTH: process.env.EM_FRAME_AUTH || 'required' };
    const supervisor = new Supervisor({ logger, env, onOutput: (name, line) => console.log(`  [${name}] ${line}`) });
    for (const stage of STAGES) supervisor.start(stage);
    if (c.gateway) supervisor.startCommand('gateway', ['gateway']);
    const ready = async (name: string, port: number) => {
      for (let i = 0; i < 600; i++) {
        const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
        if (ok) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`${name} did not become ready within 60 s`);
    };
    await Promise.all([...STAGES.map((s) => ready(s, PROCESSORS[s]!.port)), ...(c.gateway ? [ready('gateway', c.gatewayPort)] : [])]);
    console.log(`processors ready: ${STAGES.map((s) => `${s} :${PROCESSORS[s]!.port}`).join(', ')}${c.gateway ? `, gateway :${c.gatewayPort}` : ''}`);

    const registry = SchemaRegistry.load();
    const catalogue = loadCatalogue(c.modelDir);
    const names = (id: string) => {
      const i = catalogue.indexOf.get(id);
      return i === undefined ? undefined : { title: catalogue.titles[i]!, artist: catalogue.artists[i]! };
    };
    const session = `demo-${randomUUID().slice(0, 8)}`;
    const changes = new Map<string, number>();
    const listsPerUser = new Map<string, number>();
    const latency = { score: [] as number[], change: [] as number[], list: [] as number[] };
    const played = new Set<string>();
    const player = kafka.producer({ idempotent: true });
    await player.connect();

    const watcher = kafka.consumer({ groupId: `${c.topicPrefix}pipeline-watch-${session}`, readUncommitted: false, maxWaitTimeInMs: 50 });
    await watcher.connect();
    await watcher.subscribe({ topics: ['emotion-scores', 'emotion-changes', 'recommendations', 'dead-letter', 'dead-letter-frames'].map((id) => topicName(topology, id as never)), fromBeginning: false });
    const joined = new Promise<void>((resolve) => watcher.on(watcher.events.GROUP_JOIN, () => resolve()));
    const changeTimes = new Map<string, number>();
    await watcher.run({
      eachMessage: async ({ topic, message }) => {
        const value = message.value!;
        if (topic === topicName(topology, 'emotion-scores')) {
          const s = registry.decode('emotion-score', value);
          if (s.sessionId === session) latency.score.push(s.processedTimeMs - s.captureTimeMs);
        } else if (topic === topicName(topology, 'emotion-changes')) {
          const e = registry.decode('emotion-change', value);
          if (e.sessionId !== session) return;
          changes.set(e.userId, (changes.get(e.userId) ?? 0) + 1);
          latency.change.push(e.emittedTimeMs - e.captureTimeMs);
          changeTimes.set(`${e.userId}`, e.emittedTimeMs);
          console.log(`\n${e.userId}: emotion ${e.previousLabel ?? '(start)'} -> ${e.label}   valence ${e.valence.toFixed(2)}, arousal ${e.arousal.toFixed(2)}   (frame ${e.windowEndSeq})`);
        } else if (topic === topicName(topology, 'recommendations')) {
          const list = registry.decode('recommendation', value);
          if (!changes.has(list.userId)) return;
          listsPerUser.set(list.userId, (listsPerUser.get(list.userId) ?? 0) + 1);
          if (list.trigger === 'EMOTION_CHANGE' && changeTimes.has(list.userId)) latency.list.push(list.createdTimeMs - changeTimes.get(list.userId)!);
          console.log(formatList(list, names));
          const first = list.items.find((it) => !played.has(`${list.userId}:${it.trackId}`));
          if (c.play && first) {
            played.add(`${list.userId}:${first.trackId}`);
            const listen = { listenId: randomUUID(), userId: list.userId, trackId: first.trackId, startTimeMs: Date.now(), listenedMs: 30_000, outcome: 'COMPLETED' as const };
            await player.send({ topic: topicName(topology, 'listens'), messages: [{ key: list.userId, value: registry.encode('listen', listen) }] });
            const n = names(first.trackId);
            console.log(`${list.userId}: plays "${n?.title ?? first.trackId}" by ${n?.artist ?? '?'}`);
          }
        } else {
          const d = registry.decode('dead-letter', value);
          console.log(`dead letter from ${d.stage}: ${d.errorCode} ${d.errorMessage}`);
        }
      },
    });
    await joined;

    const abort = new AbortController();
    let interrupted = false;
    // The first signal stops in order (it can take the stages' shutdown timeout while Kafka is
    // away), and says so; a second one ends the stages and this process at once.
    const onSignal = (signal: NodeJS.Signals) => {
      if (interrupted) {
        console.log(`\n${signal} again: ending the stages and the pipeline now`);
        supervisor.kill();
        process.exit(130);
      }
      interrupted = true;
      console.log(`\n${signal}: stopping the pipeline (the stages finish their batches; ${signal === 'SIGINT' ? 'Ctrl-C' : 'a signal'} again ends it at once)`);
      abort.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    const users = new Set<string>();
    const framesTopic = topicName(topology, 'frames');
    // Each demo user's token: shown in the viewer's address, and sent with their frames.
    const tokens = new Map<string, Promise<string>>();
    const tokenFor = (user: string) => {
      if (!tokens.has(user)) tokens.set(user, mintDevelopmentToken({ secret: env.EM_JWT_SECRET, secretFile: env.EM_JWT_SECRET ? undefined : env.EM_JWT_SECRET_FILE }, user, 8 * 3600));
      return tokens.get(user)!;
    };
    const showViewer = async (user: string) => {
      if (!c.gateway) return;
      const token = await tokenFor(user);
      console.log(`watch ${user} live: http://127.0.0.1:${c.gatewayPort}/?token=${token}  (choose "Watch without the camera")`);
    };
    if (c.video || c.camera) {
      const user = c.video ? 'video-user' : 'camera-user';
      users.add(user);
      await showViewer(user);
      console.log(`publishing ${c.video || c.camera} as ${user} at ${c.fps} fps`);
      const analyzer = await EdgeAnalyzer.create({ privacy: c.send });
      const edge = new EdgePublisher({ kafka, registry, topic: framesTopic, userId: user, sessionId: session, analyzer, token: await tokenFor(user) });
      await edge.start();
      for await (const f of ffmpegFrames({ video: c.video || undefined, camera: c.camera || undefined }, c.fps)) {
        if (abort.signal.aborted) break;
        await edge.capture({ ...f, captureTimeMs: Date.now() });
        if (c.video) await new Promise((r) => setTimeout(r, 1000 / c.fps / c.speed));
      }
      await edge.close();
    } else {
      const { frames, source } = await demoFrames(c, registry);
      for (const f of frames) users.add(f.userId);
      for (const u of [...users].sort()) await showViewer(u);
      console.log(`replaying ${frames.length} frames of ${users.size} user(s) from ${source}, session ${session}, speed ${c.speed}`);
      await replay(frames, { kafka, registry, topic: framesTopic, sessionId: session, speed: c.speed, signal: abort.signal, tokenFor });
    }
    console.log('\nreplay finished; waiting for the last changes and lists');
    const deadline = Date.now() + c.timeoutS * 1000;
    const complete = () => [...users].every((u) => (changes.get(u) ?? 0) > 0 && (listsPerUser.get(u) ?? 0) > 0);
    while (!interrupted && !complete() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    await new Promise((r) => setTimeout(r, 1500));
    if (c.keepRunning && !interrupted) {
      console.log('still running (--keep-running); Ctrl-C stops');
      await new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve()));
    }

    const row = (label: string, v: number[]) => `  ${label.padEnd(38)} ${String(v.length).padStart(6)} ${[0.5, 0.95, 0.99].map((p) => (v.length ? `${percentile(v, p).toFixed(0)} ms` : '-').padStart(9)).join('')}`;
    console.log(`\nper-stage latency observed in this run\n  ${'stage'.padEnd(38)} ${'count'.padStart(6)}${['p50', 'p95', 'p99'].map((h) => h.padStart(9)).join('')}`);
    console.log(row('capture -> emotion score (classifier)', latency.score));
    console.log(row('window end -> emotion change (smoother)', latency.change));
    console.log(row('emotion change -> list (recommender)', latency.list));
    for (const u of [...users].sort()) console.log(`  ${u}: ${changes.get(u) ?? 0} emotion changes, ${listsPerUser.get(u) ?? 0} lists`);
    console.log('\nper-step latency from the processors\' /metrics (emotionmuse latency)');
    await latencyCommand.run([]);

    // With Kafka away a client's disconnect can wait for its retries: bounded.
    const bounded = (p: Promise<unknown>) => Promise.race([p.catch(() => undefined), new Promise((r) => setTimeout(r, 5000).unref())]);
    await bounded(watcher.disconnect());
    await bounded(player.disconnect());
    await supervisor.stop();
    console.log('stopped');
    const code = complete() ? 0 : 1;
    // Everything is stopped; a client that still holds a socket or a retry timer (seen with Kafka
    // and Redis gone) must not keep the process alive.
    setTimeout(() => process.exit(code), 1000).unref();
    return code;
  },
};
