import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, inject, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { ClassifierEngine } from '../../processors/classifier/engine.ts';
import { record } from '../../edge/record.ts';
import { replay } from '../../edge/replay.ts';
import { readRecording, writeRecording } from '../../schemas/recording.ts';
import type { EmotionChange, Frame } from '../../schemas/generated/types.ts';
import { synthesizeSession } from '../../sessions/synth.ts';
import { parseTimeline, type Segment } from '../../sessions/timeline.ts';
import { topicName } from '../../topology/topology.ts';
import { FACE_PHOTOS, FER_PUBLIC_TEST } from '../../sessions/faces.ts';
import { registry } from '../support/frames.ts';
import { appRedisOptions, collect, createTopology, randomPrefix, startProcessor, type ProcessorProcess, testRedis, useKafka, waitFor } from '../support/kafka.ts';
import { randomBytes } from 'node:crypto';
import { globEscape, userKeys } from '../../state/keys.ts';
import { UserStore } from '../../state/user-store.ts';
import { mintDevelopmentToken, TokenVerifier } from '../../auth/tokens.ts';
import { StreamClient } from '../../gateway/client.ts';
import { Gateway } from '../../gateway/server.ts';
import { recommenderOptions } from '../../processors/index.ts';
import { loadCatalogue } from '../../processors/recommender/catalogue.ts';
import { createLogger } from '../../runtime/log.ts';

/**
 * How long after a true change of mood the pipeline's change may come (its closing frame's capture
 * offset): the default filter follows a change in under a second on synthesized sessions
 * (processors/smoother/README.md); this leaves room for the frames a 64% classifier gets wrong.
 */
const E2E_MAX_CHANGE_DELAY_MS = 3000;

describe('end to end: edge -> classifier -> smoother -> recommender', () => {
  const fx = useKafka();

  it('gives every user of a replayed labelled session the changes of its ground-truth timeline (labels, delays within a bound) and lists, hostile user ids included, each user only their own Redis keys; a second replay the same changes', async () => {
    const prefix = randomPrefix('e2e');
    const topology = await createTopology(fx.admin, prefix, 3);
    // Ids with the characters that made Redis keys collide before (:, {, }, %), and the longest id.
    const users = ['e2e-0', 'e2e:{1}%', `e2e-2${'x'.repeat(123)}`];
    const timelines = ['neutral:6s,happy:8s', 'sad:7s,surprise:7s', 'happy:5s,angry:9s'];
    const frames: Frame[] = [];
    const truth = new Map<string, Segment[]>();
    for (const [u, timeline] of timelines.entries()) {
      truth.set(users[u]!, parseTimeline(timeline));
      frames.push(...(await synthesizeSession({ images: FER_PUBLIC_TEST, timeline: parseTimeline(timeline), fps: 10, seed: 70 + u, userId: users[u], sessionId: 'rec' })).frames);
    }
    // Each frame carries its user's token, which the classifier requires here (in both modes).
    const secret = randomBytes(32).toString('hex');
    const tokenFor = (user: string) => mintDevelopmentToken({ secret }, user, 3600);
    const redisPrefix = `${prefix}r:`;
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: redisPrefix, EM_JWT_SECRET: secret, EM_FRAME_AUTH: 'required' };
    const processors: ProcessorProcess[] = [];
    for (const stage of ['classifier', 'smoother', 'recommender']) processors.push(await startProcessor(stage, env));
    const reader = await collect(fx.kafka, [topicName(topology, 'emotion-changes'), topicName(topology, 'recommendations'), topicName(topology, 'dead-letter-frames')]);
    try {
      const changesOf = (session: string) =>
        reader.records.filter((r) => r.topic === topicName(topology, 'emotion-changes')).map((r) => registry.decode('emotion-change', r.value!)).filter((c) => c.sessionId === session);
      const listsOf = (user: string) => reader.records.filter((r) => r.topic === topicName(topology, 'recommendations')).map((r) => registry.decode('recommendation', r.value!)).filter((l) => l.userId === user);
      const shape = (cs: EmotionChange[], user: string) => cs.filter((c) => c.userId === user).map((c) => [c.previousLabel, c.label, c.windowIndex, c.windowEndSeq, c.probabilities]);

      await replay(frames, { kafka: fx.kafka, registry, topic: topicName(topology, 'frames'), sessionId: 'first', speed: Infinity, tokenFor });
      await waitFor('every user changed and got lists', () => users.every((u) => changesOf('first').some((c) => c.userId === u) && listsOf(u).length > 0), 120_000);
      await new Promise((r) => setTimeout(r, 3000));
      expect(reader.records.filter((r) => r.topic === topicName(topology, 'dead-letter-frames')), 'no frame dead-lettered').toEqual([]);
      const first = changesOf('first');
      for (const u of users) {
        // The changes against the ground truth: each true segment's label is emitted within the
        // bound after the segment starts (the first one from nothing), and no more than one
        // other change comes per user. The changes' offsets are their closing frame's.
        const mine = first.filter((c) => c.userId === u);
        const segments = truth.get(u)!;
        const offsetOf = (c: EmotionChange) => (c.windowEndSeq - 1) * 100;
        for (const [i, seg] of segments.entries()) {
          const hit = mine.find((c) => c.label === seg.label && offsetOf(c) >= seg.startMs && offsetOf(c) < seg.endMs);
          expect(hit, `${u}: ${seg.label} at ${seg.startMs} ms is emitted (changes: ${mine.map((c) => `${c.label}@${offsetOf(c)}`).join(', ')})`).toBeDefined();
          expect(offsetOf(hit!) - seg.startMs, `${u}: delay of ${seg.label}`).toBeLessThanOrEqual(E2E_MAX_CHANGE_DELAY_MS);
          if (i > 0) expect(hit!.previousLabel).toBe(segments[i - 1]!.label);
        }
        expect(mine.length, `${u}: changes beyond the timeline's`).toBeLessThanOrEqual(segments.length + 1);
        expect(listsOf(u).every((l) => l.userId === u)).toBe(true);
      }

      // A user with a hostile id through the gateway: frames over its socket (with its token), its changes and lists back.
      const gwUser = 'gw:{3}%';
      const gateway = new Gateway({
        kafka: fx.kafka, registry, topology, redisUrl: inject('redisUrl'), redisOptions: appRedisOptions(), redisPrefix, verifier: await TokenVerifier.create({ secret }),
        catalogue: loadCatalogue(recommenderOptions.modelDir.default), port: 0, host: '127.0.0.1',
        limits: { framesPerSecond: 1000, maxMessageBytes: 64 * 1024, maxInFlight: 256, helloTimeoutMs: 5000 }, maxConnections: 10, maxInFlight: 4096,
        logger: createLogger('warn', { component: 'e2e-gateway' }),
      });
      await gateway.start();
      try {
        await gateway.whenReady();
        const gwTimeline = parseTimeline('surprise:6s,sad:6s');
        const { frames: gwFrames } = await synthesizeSession({ images: FER_PUBLIC_TEST, timeline: gwTimeline, fps: 10, seed: 90, userId: gwUser, sessionId: 'gw' });
        const client = await StreamClient.connect(`http://127.0.0.1:${gateway.port}`, { token: await tokenFor(gwUser), sessionId: 'gw:1', tokenInHeader: true });
        const t0 = Date.now();
        for (const f of gwFrames) client.send({ kind: 'GRAY8', seq: f.seq, captureTimeMs: t0 + (f.captureTimeMs - gwFrames[0]!.captureTimeMs), width: f.width, height: f.height, faceBox: null, data: f.data });
        await client.waitFor('every frame acked', (c) => c.acked >= gwFrames.length, 60_000);
        await client.waitFor('its changes to sad and a list', (c) => c.messages.some((m) => m.type === 'change' && m.label === 'sad') && c.messages.some((m) => m.type === 'list'), 60_000);
        const seen = client.messages.filter((m) => m.type === 'change').map((m) => (m as { label: string }).label);
        expect(seen[0]).toBe('surprise');
        expect(seen).toContain('sad');
        await client.close();
        const direct = first.filter((c) => c.userId === gwUser);
        expect(direct).toEqual([]);
        users.push(gwUser);
      } finally {
        await gateway.close();
      }

      // Each user's Redis keys are theirs alone: their state holds their last mood, and no key of the prefix is outside the users' own patterns.
      const store = new UserStore(inject('redisUrl'), { prefix: redisPrefix, historySize: 50, ttlSeconds: 60 }, appRedisOptions());
      const admin = testRedis();
      await store.connect();
      try {
        for (const u of users) expect((await store.read(u)).emotion?.label, u).toBe(changesOf(u === 'gw:{3}%' ? 'gw:1' : 'first').filter((c) => c.userId === u).at(-1)!.label);
        const keys = await admin.keys(`${globEscape(redisPrefix)}*`);
        expect(keys.length).toBeGreaterThan(0);
        for (const key of keys) expect(users.filter((u) => key.startsWith(`${userKeys(redisPrefix, u).tag}:`)), key).toHaveLength(1);
      } finally {
        await store.close();
        admin.disconnect();
      }

      await replay(frames, { kafka: fx.kafka, registry, topic: topicName(topology, 'frames'), sessionId: 'second', speed: Infinity, tokenFor });
      await waitFor('the second replay\'s changes', () => changesOf('second').length >= first.length, 120_000);
      await new Promise((r) => setTimeout(r, 3000));
      for (const u of users.filter((x) => x !== 'gw:{3}%')) expect(shape(changesOf('second'), u), u).toEqual(shape(first, u));
    } finally {
      for (const p of processors) p.proc.kill('SIGTERM');
      await Promise.all(processors.map((p) => p.exited));
      await reader.stop();
    }
  });

  it('publishes a video file made with ffmpeg from face photos, as JPEG frames with faces', async () => {
    const prefix = randomPrefix('video');
    const topology = await createTopology(fx.admin, prefix, 1);
    const dir = mkdtempSync(path.join(tmpdir(), 'em-video-'));
    for (const [i, f] of FACE_PHOTOS.entries()) await sharp(f).resize(640, 480, { fit: 'cover' }).jpeg().toFile(path.join(dir, `face${i + 1}.jpg`));
    const video = path.join(dir, 'faces.avi');
    execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-framerate', '2', '-i', path.join(dir, 'face%d.jpg'), '-c:v', 'mjpeg', '-q:v', '3', video]);
    const reader = await collect(fx.kafka, [topicName(topology, 'frames')]);
    try {
      const code = await main(['publish', '--video', video, '--send', 'frame', '--fps', '2', '--user', 'vid', '--session', 'v1', '--topic-prefix', prefix, '--partitions', '1', '--brokers', inject('kafkaBrokers')]);
      expect(code).toBe(0);
      await waitFor('the video frames', () => reader.records.length >= 6, 30_000);
      const frames = reader.records.map((r) => registry.decode('frame', r.value!));
      expect(frames.map((f) => f.seq)).toEqual(frames.map((_f, i) => i + 1));
      expect(frames.every((f) => f.encoding === 'JPEG' && f.userId === 'vid' && f.sessionId === 'v1')).toBe(true);
      const engine = await ClassifierEngine.create({ providers: ['cpu'] });
      const results = await engine.classify(frames);
      expect(results.filter((r) => 'faceFound' in r && r.faceFound).length).toBeGreaterThanOrEqual(5);
    } finally {
      await reader.stop();
    }
  });

  it('records a session from the frames topic and replays it with its frames and timing intact', async () => {
    const prefix = randomPrefix('record');
    const topology = await createTopology(fx.admin, prefix, 2);
    const { frames } = await synthesizeSession({ images: FER_PUBLIC_TEST, timeline: parseTimeline('happy:2s,sad:2s'), fps: 10, seed: 3, userId: 'rec-user', sessionId: 'orig' });
    const dir = mkdtempSync(path.join(tmpdir(), 'em-rec-'));
    const original = path.join(dir, 'original.avro');
    await writeRecording(original, registry, frames);
    const topic = topicName(topology, 'frames');

    const recorded = path.join(dir, 'recorded.avro');
    const recording = record(recorded, { kafka: fx.kafka, registry, topic, sessionId: 'live', idleMs: 2000 });
    await new Promise((r) => setTimeout(r, 3000)); // the recorder joins before the frames arrive
    await replay(frames, { kafka: fx.kafka, registry, topic, sessionId: 'live', speed: 2 });
    expect(await recording).toBe(frames.length);

    const back = (await readRecording(recorded, registry)).frames;
    expect(back.map((f) => f.seq)).toEqual(frames.map((f) => f.seq));
    back.forEach((f, i) => expect(Buffer.compare(f.data, frames[i]!.data)).toBe(0));
    // Replayed at speed 2: the recorded spacing is half the original, within scheduling jitter.
    const spacing = (fs: Frame[]) => fs.slice(1).map((f, i) => f.captureTimeMs - fs[i]!.captureTimeMs);
    const got = spacing(back);
    const want = spacing(frames).map((ms) => ms / 2);
    const meanError = got.reduce((s, g, i) => s + Math.abs(g - want[i]!), 0) / got.length;
    expect(meanError).toBeLessThan(15);
    expect(back[back.length - 1]!.captureTimeMs - back[0]!.captureTimeMs).toBeGreaterThan(0.9 * ((frames[frames.length - 1]!.captureTimeMs - frames[0]!.captureTimeMs) / 2));
  });
});
