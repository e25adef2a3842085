import { describe, expect, it } from 'vitest';
import { DEFAULT_EMOTION_MODEL, EMOTION_MODELS } from '../../processors/classifier/engine.ts';
import { topicName } from '../../topology/topology.ts';
import { cameraFrame, FACE_PHOTOS, noFacePhoto } from '../../sessions/faces.ts';
import { assertExactlyOnceInOrder, frame, keyedFrames, registry } from '../support/frames.ts';
import { collect, createTopology, metricSum, metricsText, produce, randomPrefix, startProcessor, useKafka, waitFor } from '../support/kafka.ts';

describe('classifier processor on the real broker', () => {
  const fx = useKafka();

  it('scores real face photos, says faceFound: false for a photo without a face, and dead-letters corrupt frames while later frames flow', async () => {
    const prefix = randomPrefix('classifier');
    const topology = await createTopology(fx.admin, prefix, 2);
    const photos = await Promise.all(FACE_PHOTOS.map(cameraFrame));
    const inputs = [
      frame('alice', 1, { encoding: 'JPEG', width: 0, height: 0, data: photos[0]! }),
      frame('alice', 2, { encoding: 'JPEG', width: 0, height: 0, data: Buffer.from('\xff\xd8 corrupt jpeg bytes') }),
      frame('alice', 3, { encoding: 'JPEG', width: 0, height: 0, data: await noFacePhoto() }),
      ...photos.slice(1).map((data, i) => frame('alice', 4 + i, { encoding: 'JPEG', width: 0, height: 0, data })),
      ...photos.map((data, i) => frame('bob', 1 + i, { encoding: 'JPEG', width: 0, height: 0, data })),
    ];
    await produce(fx.kafka, topicName(topology, 'frames'), inputs.map((f) => ({ key: f.userId, value: registry.encode('frame', f) })));
    const reader = await collect(fx.kafka, [topicName(topology, 'emotion-scores'), topicName(topology, 'dead-letter-frames')]);
    const p = await startProcessor('classifier', { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '2' });
    try {
      await waitFor('every frame scored or dead-lettered', () => reader.records.length >= inputs.length, 90_000);
      const scores = reader.records.filter((r) => r.topic === topicName(topology, 'emotion-scores')).map((r) => registry.decode('emotion-score', r.value!));
      const letters = reader.records.filter((r) => r.topic === topicName(topology, 'dead-letter-frames')).map((r) => registry.decode('dead-letter', r.value!));

      expect(letters).toHaveLength(1);
      expect(letters[0]).toMatchObject({ errorCode: 'UNDECODABLE_FRAME', stage: 'classifier', sourceTopic: topicName(topology, 'frames') });
      expect(scores).toHaveLength(inputs.length - 1);

      const alice = scores.filter((s) => s.userId === 'alice').map((s) => s.seq);
      expect(alice, 'frames after the corrupt one still flow, in order').toEqual([1, 3, 4, 5, 6, 7, 8]);
      const noFace = scores.find((s) => s.userId === 'alice' && s.seq === 3)!;
      expect(noFace).toMatchObject({ faceFound: false, probabilities: [], faceBox: null });
      for (const s of scores.filter((x) => x !== noFace)) {
        expect(s.faceFound, `${s.userId}/${s.seq}`).toBe(true);
        expect(s.probabilities).toHaveLength(7);
        expect(s.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
        expect(s.modelVersion).toBe(EMOTION_MODELS[DEFAULT_EMOTION_MODEL].version);
        expect(s.timings.inferMs).toBeGreaterThan(0);
        expect(s.timings.decodeMs).toBeGreaterThan(0);
      }
      const metrics = await metricsText(p.port);
      expect(metricSum(metrics, 'emotionmuse_frames_without_face_total', 'source="server"')).toBe(1);
      expect(metricSum(metrics, 'emotionmuse_records_skipped_total', '')).toBe(0);
      expect(metricSum(metrics, 'emotionmuse_stage_step_seconds_count', 'step="infer"')).toBe(scores.length - 1);
      expect(p.logs.join('')).toMatch(/runs on the (CPU|CUDA) execution provider/);
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      await reader.stop();
    }
  });

  it('prepares batches ahead (model batches of 2 on two inference threads, finishing out of order) and still publishes each user\'s scores once, in order', async () => {
    const prefix = randomPrefix('classifier-ahead');
    const topology = await createTopology(fx.admin, prefix, 2);
    const users = 12;
    const perUser = 40;
    const inputs = keyedFrames(users, perUser);
    const reader = await collect(fx.kafka, [topicName(topology, 'emotion-scores')]);
    const p = await startProcessor('classifier', {
      EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '2', EM_PREPARE_AHEAD: '4', EM_MAX_INFERENCE_BATCH: '2', EM_INFERENCE_THREADS: '2', EM_MAX_BATCH_RECORDS: '3',
    });
    try {
      // Small bursts a few ms apart: records keep arriving while their partition's last batch is in the model.
      for (let i = 0; i < inputs.length; i += 16) {
        await produce(fx.kafka, topicName(topology, 'frames'), inputs.slice(i, i + 16));
        await new Promise((r) => setTimeout(r, 5));
      }
      await waitFor('every frame scored', () => reader.records.length >= inputs.length, 90_000);
      await new Promise((r) => setTimeout(r, 1000));
      const metrics = await metricsText(p.port);
      // Each frame processed once (a batch prepared ahead is processed in its turn, not again).
      expect(metricSum(metrics, 'emotionmuse_records_in_total', `topic="${topicName(topology, 'frames')}"`)).toBe(inputs.length);
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
      await reader.stop();
    }
    // The scores carry the frame's user and sequence number: rewrite them as frames to reuse the order check.
    const asFrames = reader.records.map((r) => {
      const s = registry.decode('emotion-score', r.value!);
      return { ...r, value: registry.encode('frame', frame(s.userId, s.seq)) };
    });
    assertExactlyOnceInOrder(asFrames, users, perUser);
  });
});
