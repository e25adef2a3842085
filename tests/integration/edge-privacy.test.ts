import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { topicName } from '../../topology/topology.ts';
import { webcamFrame } from '../../sessions/faces.ts';
import { registry } from '../support/frames.ts';
import { collect, createTopology, randomPrefix, startProcessor, type ProcessorProcess, useKafka, waitFor } from '../support/kafka.ts';

const LEVELS = ['crop', 'scores', 'frame'] as const;

describe('edge clients at each privacy level, through the whole pipeline', () => {
  const fx = useKafka();

  it('an ffmpeg video of real faces gives emotion changes and lists at crop, scores and frame; only crop-sized records leave a crop or scores client', async () => {
    const prefix = randomPrefix('privacy');
    const topology = await createTopology(fx.admin, prefix, 3);
    // A camera-like video: two people in turn, 8 s each at 10 fps, each face about 180 pixels wide
    // in a 640x480 frame, moving a little from frame to frame.
    const dir = mkdtempSync(path.join(tmpdir(), 'em-privacy-'));
    let n = 0;
    for (const [photo, face] of [[2, 1], [5, 3]] as const) {
      for (let i = 0; i < 80; i++) writeFileSync(path.join(dir, `f${++n}.jpg`), await webcamFrame(photo, face, { faceWidth: 180, dx: (i % 9) - 4, dy: (i % 5) - 2 }));
    }
    const video = path.join(dir, 'camera.avi');
    execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-framerate', '10', '-i', path.join(dir, 'f%d.jpg'), '-c:v', 'mjpeg', '-q:v', '3', video]);

    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: `${prefix}r:` };
    const processors: ProcessorProcess[] = [];
    for (const stage of ['classifier', 'smoother', 'recommender']) processors.push(await startProcessor(stage, env));
    const frames = topicName(topology, 'frames');
    const reader = await collect(fx.kafka, [frames, topicName(topology, 'emotion-scores'), topicName(topology, 'emotion-changes'), topicName(topology, 'recommendations')]);
    try {
      for (const level of LEVELS) {
        const code = await main(['publish', '--video', video, '--send', level, '--fps', '10', '--user', `cam-${level}`, '--session', `s-${level}`, '--topic-prefix', prefix, '--partitions', '3', '--brokers', inject('kafkaBrokers')]);
        expect(code, level).toBe(0);
      }
      const decoded = (topic: string) => reader.records.filter((r) => r.topic === topicName(topology, topic as 'frames'));
      await waitFor('every level\'s user has an emotion change and a list', () => {
        const changes = decoded('emotion-changes').map((r) => registry.decode('emotion-change', r.value!).userId);
        const lists = decoded('recommendations').map((r) => registry.decode('recommendation', r.value!).userId);
        return LEVELS.every((l) => changes.includes(`cam-${l}`) && lists.includes(`cam-${l}`));
      }, 120_000);

      const byUser = (level: string) => decoded('frames').filter((r) => r.key?.toString() === `cam-${level}`);
      await waitFor('all 3 x 160 frames read back', () => LEVELS.every((l) => byUser(l).length >= 160), 30_000);
      await waitFor('all 3 x 160 scores read back', () => decoded('emotion-scores').length >= 480, 60_000);
      for (const level of LEVELS) expect(byUser(level).length, level).toBe(160);
      // The largest record a crop client may send: a 48x48 grey crop with its face box.
      const cropBound = registry.encode('frame', { userId: 'cam-scores', sessionId: 's-scores', seq: 160, captureTimeMs: Date.now(), encoding: 'GRAY8', width: 48, height: 48, data: Buffer.alloc(48 * 48), faceBox: { x: 0, y: 0, width: 1, height: 1 }, probabilities: [], edgeModelVersion: '' }).length;
      for (const level of ['crop', 'scores'] as const) {
        const sizes = byUser(level).map((r) => r.value!.length);
        expect(Math.max(...sizes), level).toBeLessThanOrEqual(cropBound);
        const encodings = new Set(byUser(level).map((r) => registry.decode('frame', r.value!).encoding));
        expect([...encodings].every((e) => (level === 'crop' ? ['GRAY8', 'NONE'] : ['SCORES', 'NONE']).includes(e)), `${level}: ${[...encodings]}`).toBe(true);
      }
      expect(Math.min(...byUser('frame').map((r) => r.value!.length))).toBeGreaterThan(cropBound);

      const scores = decoded('emotion-scores').map((r) => registry.decode('emotion-score', r.value!));
      const scoredAt = (user: string) => new Set(scores.filter((s) => s.userId === user).map((s) => s.scoredAt));
      expect([...scoredAt('cam-scores')]).toEqual(['EDGE']);
      expect([...scoredAt('cam-crop')]).toEqual(['SERVER']);
      expect([...scoredAt('cam-frame')]).toEqual(['SERVER']);
      // Most frames show a face at every level.
      for (const level of LEVELS) expect(scores.filter((s) => s.userId === `cam-${level}` && s.faceFound).length, level).toBeGreaterThan(140);
    } finally {
      for (const p of processors) p.proc.kill('SIGTERM');
      await Promise.all(processors.map((p) => p.exited));
      await reader.stop();
    }
  });
});
