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
import { parseTimeline } from '../../sessions/timeline.ts';
import { topicName } from '../../topology/topology.ts';
import { FACE_PHOTOS, FER_PUBLIC_TEST } from '../../sessions/faces.ts';
import { registry } from '../support/frames.ts';
import { collect, createTopology, randomPrefix, startProcessor, type ProcessorProcess, useKafka, waitFor } from '../support/kafka.ts';

describe('end to end: edge -> classifier -> smoother -> recommender', () => {
  const fx = useKafka();

  it('gives every user of a replayed labelled session emotion changes and lists, and a second replay the same changes', async () => {
    const prefix = randomPrefix('e2e');
    const topology = await createTopology(fx.admin, prefix, 3);
    const frames: Frame[] = [];
    for (const [u, timeline] of ['neutral:6s,happy:8s', 'sad:7s,surprise:7s'].entries()) {
      frames.push(...(await synthesizeSession({ images: FER_PUBLIC_TEST, timeline: parseTimeline(timeline), fps: 10, seed: 70 + u, userId: `e2e-${u}`, sessionId: 'rec' })).frames);
    }
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: `${prefix}r:` };
    const processors: ProcessorProcess[] = [];
    for (const stage of ['classifier', 'smoother', 'recommender']) processors.push(await startProcessor(stage, env));
    const reader = await collect(fx.kafka, [topicName(topology, 'emotion-changes'), topicName(topology, 'recommendations')]);
    try {
      const changesOf = (session: string) =>
        reader.records.filter((r) => r.topic === topicName(topology, 'emotion-changes')).map((r) => registry.decode('emotion-change', r.value!)).filter((c) => c.sessionId === session);
      const shape = (cs: EmotionChange[], user: string) => cs.filter((c) => c.userId === user).map((c) => [c.previousLabel, c.label, c.windowIndex, c.windowEndSeq, c.probabilities]);

      await replay(frames, { kafka: fx.kafka, registry, topic: topicName(topology, 'frames'), sessionId: 'first', speed: Infinity });
      await waitFor('both users changed and got lists', () => {
        const lists = reader.records.filter((r) => r.topic === topicName(topology, 'recommendations')).map((r) => registry.decode('recommendation', r.value!));
        return ['e2e-0', 'e2e-1'].every((u) => changesOf('first').some((c) => c.userId === u) && lists.some((l) => l.userId === u));
      }, 120_000);
      await new Promise((r) => setTimeout(r, 3000));
      const first = changesOf('first');
      for (const u of ['e2e-0', 'e2e-1']) expect(first.filter((c) => c.userId === u).length, u).toBeGreaterThanOrEqual(2);

      await replay(frames, { kafka: fx.kafka, registry, topic: topicName(topology, 'frames'), sessionId: 'second', speed: Infinity });
      await waitFor('the second replay\'s changes', () => changesOf('second').length >= first.length, 120_000);
      await new Promise((r) => setTimeout(r, 3000));
      for (const u of ['e2e-0', 'e2e-1']) expect(shape(changesOf('second'), u), u).toEqual(shape(first, u));
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
