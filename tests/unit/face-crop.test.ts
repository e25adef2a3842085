import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { EdgeAnalyzer } from '../../edge/analyzer.ts';
import { edgeVerdict } from '../../processors/classifier/core.ts';
import { ClassifierEngine, DEFAULT_EMOTION_MODEL, EMOTION_MODELS, MODELS_DIR } from '../../processors/classifier/engine.ts';
import { DEVICE_EMOTION_MODEL } from '../../vision/emotion-cnn.ts';
import { EmotionMuseError } from '../../schemas/errors.ts';
import type { Frame } from '../../schemas/generated/types.ts';
import { encodedSize, FaceCropper, FaceTrack, parseDetectorSides, scaledTo, widen } from '../../vision/face-crop.ts';
import { resizeGrey } from '../../vision/image.ts';
import { cropRgbFrame } from '../../vision/crop-rules.ts';
import { FaceDetector } from '../../vision/detector.ts';
import { openSession } from '../../runtime/onnx.ts';
import path from 'node:path';
import { axisWeights, greyRegion, resampleInto } from '../../vision/resample.ts';
import { noFacePhoto, webcamFrame } from '../../sessions/faces.ts';

const frameOf = (extra: Partial<Frame>): Frame => ({
  userId: 'u', sessionId: 's', seq: 1, captureTimeMs: 0, encoding: 'JPEG', width: 0, height: 0, data: Buffer.alloc(0), faceBox: null, probabilities: [], edgeModelVersion: '', ...extra,
});

describe('image headers and resampling', () => {
  it('reads the size from a JPEG SOF and a PNG IHDR without decoding, and nothing from garbage', async () => {
    const rgb = Buffer.alloc(30 * 20 * 3, 128);
    const jpeg = await sharp(rgb, { raw: { width: 30, height: 20, channels: 3 } }).jpeg().toBuffer();
    const png = await sharp(rgb, { raw: { width: 30, height: 20, channels: 3 } }).png().toBuffer();
    const progressive = await sharp(rgb, { raw: { width: 30, height: 20, channels: 3 } }).jpeg({ progressive: true }).toBuffer();
    expect(encodedSize(jpeg, 'JPEG')).toEqual({ width: 30, height: 20 });
    expect(encodedSize(progressive, 'JPEG')).toEqual({ width: 30, height: 20 });
    expect(encodedSize(png, 'PNG')).toEqual({ width: 30, height: 20 });
    expect(encodedSize(Buffer.from('not an image at all'), 'JPEG')).toBeUndefined();
    expect(encodedSize(jpeg.subarray(0, 3), 'JPEG')).toBeUndefined();
  });

  it('averages areas when shrinking (weights sum to 1) and halves 2x2 blocks exactly', () => {
    const w = axisWeights(10, 4);
    for (let i = 0; i < 4; i++) {
      let sum = 0;
      for (let k = 0; k < w.count[i]!; k++) sum += w.weights[i * w.maxTaps + k]!;
      expect(sum).toBeCloseTo(1, 6);
    }
    const src = Uint8Array.from([10, 20, 30, 40, 50, 60, 70, 80]); // 4x2 grey
    const out = new Float32Array(2);
    resampleInto(src, 4, 2, 1, 2, 1, { out, offset: 0, rowStride: 2, scale: 1, bias: 0 });
    expect(Array.from(out)).toEqual([(10 + 20 + 50 + 60) / 4, (30 + 40 + 70 + 80) / 4]);
  });

  it('scales a frame to a side without enlarging it, and parses detector settings', () => {
    expect(scaledTo(640, 480, 256)).toEqual({ width: 256, height: 192 });
    expect(scaledTo(100, 80, 256)).toEqual({ width: 100, height: 80 });
    expect(parseDetectorSides('128/256')).toEqual([128, 256]);
    expect(() => parseDetectorSides('100')).toThrow(/multiple of 32/);
  });
});

describe('one face crop for the device and the server (real models, CPU)', () => {
  let engine: ClassifierEngine;
  let crop: EdgeAnalyzer;
  let scores: EdgeAnalyzer;
  let camera: Buffer;

  beforeAll(async () => {
    // The server here runs the model devices run, so that their scores can be compared exactly; the
    // served default (an ensemble with it) takes the same 48x48 crops.
    engine = await ClassifierEngine.create({ providers: ['cpu'], emotionModel: DEVICE_EMOTION_MODEL });
    expect(EMOTION_MODELS[DEFAULT_EMOTION_MODEL].input).toBe(EMOTION_MODELS[DEVICE_EMOTION_MODEL].input);
    crop = await EdgeAnalyzer.create({ privacy: 'crop', providers: ['cpu'] });
    scores = await EdgeAnalyzer.create({ privacy: 'scores', providers: ['cpu'] });
    camera = await webcamFrame(2, 1, { faceWidth: 180 });
  });

  it('the device\'s 48x48 crop of a frame is byte for byte the crop the classifier takes of the same frame', async () => {
    const [edge] = await crop.analyze([{ data: camera, encoding: 'JPEG' }]);
    const [server] = await engine.cropper.crop([{ encoded: camera, encoding: 'JPEG' }]);
    expect(edge!.encoding).toBe('GRAY8');
    expect([edge!.width, edge!.height]).toEqual([48, 48]);
    expect(server).not.toBeInstanceOf(EmotionMuseError);
    const s = server as Exclude<NonNullable<typeof server>, EmotionMuseError>;
    expect(Buffer.compare(edge!.data, Buffer.from(s.crop!))).toBe(0);
    expect(edge!.faceBox).toEqual(s.box);
    // The face box is where the frame was built to have it: a 180-pixel face at the centre.
    expect(s.box!.x + s.box!.width / 2).toBeGreaterThan(280);
    expect(s.box!.x + s.box!.width / 2).toBeLessThan(360);
    expect(s.box!.width).toBeGreaterThan(120);
    expect(s.box!.width).toBeLessThan(260);
  });

  it('the web client\'s crop rules (vision/crop-rules.ts, run in the browser) give the server\'s crop of the same RGB camera frame', async () => {
    const { data, info } = await sharp(camera).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const rgb = new Uint8Array(data.buffer, data.byteOffset, data.length);
    const [server] = await engine.cropper.crop([{ rgb, width: info.width, height: info.height }]);
    const { session } = await openSession(path.join(MODELS_DIR, 'blazeface.onnx'), { providers: ['cpu'] });
    const detector = new FaceDetector(session, { minScore: 0.6 });
    const web = await cropRgbFrame(rgb, info.width, info.height, (t, input, scales) => detector.detect(t, input, scales), { side: 256, inputSide: 48 });
    const s = server as Exclude<NonNullable<typeof server>, EmotionMuseError>;
    expect(web.crop).not.toBeNull();
    expect(Buffer.compare(Buffer.from(web.crop!), Buffer.from(s.crop!))).toBe(0);
    // The browser runs blazeface.onnx, the server its blocked-layout copy (the same function, summed
    // in another order): the boxes agree to float rounding, the crops byte for byte.
    for (const k of ['x', 'y', 'width', 'height'] as const) expect(web.box![k]).toBeCloseTo(s.box![k], 3);
    // A frame without a face: no box, no crop.
    const empty = await sharp(await noFacePhoto()).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect(await cropRgbFrame(new Uint8Array(empty.data), empty.info.width, empty.info.height, (t, input, scales) => detector.detect(t, input, scales), { side: 256, inputSide: 48 })).toEqual({ box: null, crop: null });
  });

  it('scores on the device equal the classifier\'s scores of the whole frame, and a GRAY8 crop scores the same', async () => {
    const [edge] = await scores.analyze([{ data: camera, encoding: 'JPEG' }]);
    const [fromFrame] = await engine.classify([frameOf({ encoding: 'JPEG', data: camera })]);
    const [cropped] = await crop.analyze([{ data: camera, encoding: 'JPEG' }]);
    const [fromCrop] = await engine.classify([frameOf({ encoding: 'GRAY8', data: cropped!.data, width: 48, height: 48 })]);
    expect(edge!.encoding).toBe('SCORES');
    expect(edge!.data.length).toBe(0);
    expect(edge!.edgeModelVersion).toBe(engine.modelVersion);
    const want = (fromFrame as { probabilities: number[] }).probabilities;
    edge!.probabilities!.forEach((p, i) => expect(p).toBeCloseTo(want[i]!, 5));
    (fromCrop as { probabilities: number[] }).probabilities.forEach((p, i) => expect(p).toBeCloseTo(want[i]!, 5));
  });

  it('sends a no-face marker without bytes when the frame has no face, at both levels', async () => {
    const empty = await noFacePhoto();
    for (const analyzer of [crop, scores]) {
      const [f] = await analyzer.analyze([{ data: empty, encoding: 'JPEG' }]);
      expect(f).toMatchObject({ encoding: 'NONE' });
      expect(f!.data.length).toBe(0);
    }
  });

  it('takes a small face\'s crop from a finer decode than the detector\'s, as a full decode gives it', async () => {
    const small = await webcamFrame(0, 0, { faceWidth: 64 });
    const cropper = await FaceCropper.create({ modelsDir: MODELS_DIR, providers: ['cpu'] });
    const [c] = (await cropper.crop([{ encoded: small, encoding: 'JPEG' }])) as Array<Exclude<Awaited<ReturnType<FaceCropper['crop']>>[number], EmotionMuseError>>;
    expect(c!.faceFound).toBe(true);
    const region0 = widen(c!.box!, 640, 480);
    // At the detector's 1/2.5 scale, and at half scale, the crop would be under 48 pixels wide,
    // so it comes from the whole frame.
    expect(region0.width / 2).toBeLessThan(48);
    const { data, info } = await sharp(small).raw().toBuffer({ resolveWithObject: true });
    const region = widen(c!.box!, info.width, info.height);
    const expected = resizeGrey({ data: greyRegion(new Uint8Array(data), info.width, 3, region), width: region.width, height: region.height }, 48, 48);
    expect(Buffer.compare(Buffer.from(c!.crop!), Buffer.from(expected))).toBe(0);
  });

  it('finds the same face in raw RGB (ffmpeg rawvideo) as in the JPEG of the same frame', async () => {
    const { data, info } = await sharp(camera).raw().toBuffer({ resolveWithObject: true });
    const [fromRgb] = await crop.analyze([{ rgb: data, width: info.width, height: info.height }]);
    const [fromJpeg] = await crop.analyze([{ data: camera, encoding: 'JPEG' }]);
    expect(fromRgb!.encoding).toBe('GRAY8');
    const a = fromRgb!.faceBox!;
    const b = fromJpeg!.faceBox!;
    expect(Math.abs(a.x - b.x) + Math.abs(a.y - b.y) + Math.abs(a.width - b.width)).toBeLessThan(12);
  });

  it('refuses corrupt and oversized images in their own slots while the others are cropped', async () => {
    const small = await FaceCropper.create({ modelsDir: MODELS_DIR, providers: ['cpu'], maxFramePixels: 320 * 240 });
    const out = await small.crop([
      { encoded: Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]), encoding: 'JPEG' },
      { encoded: camera, encoding: 'JPEG' },
      { grey: { data: new Uint8Array(48 * 48), width: 48, height: 48 } },
    ]);
    expect(out[0]).toMatchObject({ code: 'UNDECODABLE_FRAME' });
    expect(out[1]).toMatchObject({ code: 'OVERSIZED_RECORD' });
    expect(out[2]).toMatchObject({ faceFound: true, box: null });
  });
});

describe('following a face from frame to frame (FaceTrack)', () => {
  it('searches the window around the last face while it is there, the whole frame when it is lost, and at every refresh', async () => {
    const cropper = await FaceCropper.create({ modelsDir: MODELS_DIR, providers: ['cpu'] });
    const track = new FaceTrack(4);
    const moving = await Promise.all([0, 8, 16, 24, 32].map((dx) => webcamFrame(2, 1, { faceWidth: 180, dx, dy: dx / 4 })));
    const whole: Array<{ x: number; width: number }> = [];
    for (const jpeg of moving) {
      const [c] = await cropper.crop([{ encoded: jpeg, encoding: 'JPEG', track }]);
      const [alone] = await cropper.crop([{ encoded: jpeg, encoding: 'JPEG' }]);
      const box = (c as { box: { x: number; width: number } }).box;
      whole.push((alone as { box: { x: number; width: number } }).box);
      // The window finds the face where a whole-frame search does.
      expect(Math.abs(box.x - whole[whole.length - 1]!.x)).toBeLessThan(10);
      expect(Math.abs(box.width - whole[whole.length - 1]!.width)).toBeLessThan(15);
    }
    // Frame 1 searched whole, 2-5 in the window (refresh after 4).
    expect(track.counts).toEqual({ window: 4, whole: 1 });
    await cropper.crop([{ encoded: moving[0]!, encoding: 'JPEG', track }]);
    expect(track.counts).toEqual({ window: 4, whole: 2 });
    // A cut to another face far away: the window finds nothing that overlaps, the whole frame does.
    const cut = await webcamFrame(5, 3, { faceWidth: 120, dx: 180, dy: 100 });
    const [afterCut] = await cropper.crop([{ encoded: cut, encoding: 'JPEG', track }]);
    expect(track.counts.whole).toBe(3);
    expect(afterCut).toMatchObject({ faceFound: true });
    // No face: the box is dropped, and the next frame is searched whole.
    await cropper.crop([{ encoded: await noFacePhoto(), encoding: 'JPEG', track }]);
    expect(track.box).toBeNull();
    await cropper.crop([{ encoded: moving[2]!, encoding: 'JPEG', track }]);
    expect(track.counts.whole).toBe(5);
  });
});

describe('frames an edge client has judged', () => {
  const good = [0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.1];

  it('passes valid edge scores on, marked as scored at the edge, and no-face markers as faceless scores', () => {
    expect(edgeVerdict(frameOf({ encoding: 'SCORES', probabilities: good, edgeModelVersion: 'm@1' }))).toMatchObject({ faceFound: true, probabilities: good, scoredAt: 'EDGE', modelVersion: 'm@1' });
    expect(edgeVerdict(frameOf({ encoding: 'NONE' }))).toMatchObject({ faceFound: false, probabilities: [], scoredAt: 'EDGE' });
    expect(edgeVerdict(frameOf({ encoding: 'JPEG', data: Buffer.from([1]) }))).toBeUndefined();
  });

  it.each([
    ['six probabilities', { probabilities: good.slice(1) }, /6 probabilities/],
    ['a NaN', { probabilities: [NaN, ...good.slice(1)] }, /not a finite number/],
    ['a negative one', { probabilities: [-0.1, 0.25, ...good.slice(2)] }, /outside \[0, 1\]/],
    ['a sum of 1.3', { probabilities: [0.4, ...good.slice(1)] }, /sum to 1\.3/],
    ['no model version', { edgeModelVersion: '' }, /model version/],
    ['bytes', { data: Buffer.from([1, 2, 3]) }, /carries 3 bytes/],
  ])('dead-letters edge scores with %s as INVALID_RECORD', (_what, extra, message) => {
    const v = edgeVerdict(frameOf({ encoding: 'SCORES', probabilities: good, edgeModelVersion: 'm@1', ...extra }));
    expect(v).toBeInstanceOf(EmotionMuseError);
    expect(v).toMatchObject({ code: 'INVALID_RECORD' });
    expect((v as Error).message).toMatch(message);
  });
});
