import { randomUUID } from 'node:crypto';
import { fpsOption } from '../sessions/timeline.ts';
import { existsSync } from 'node:fs';
import { configHelp, loadConfig, opt } from '../runtime/config.ts';
import { commonOptions } from '../runtime/common-config.ts';
import { createKafka } from '../runtime/kafka.ts';
import { kafkaSecurity } from '../runtime/security.ts';
import { EdgeAnalyzer, PRIVACY_LEVELS, PRIVACY_TEXT, type CameraImage } from '../edge/analyzer.ts';
import { EdgePublisher } from '../edge/publisher.ts';
import { EdgeStats } from '../edge/stats.ts';
import { createLogger } from '../runtime/log.ts';
import { DEFAULT_DETECTOR_SIDES, formatDetectorSides, parseDetectorSides, scaledTo } from '../vision/face-crop.ts';
import { record } from '../edge/record.ts';
import { replay } from '../edge/replay.ts';
import { ffmpegFrames, ffmpegRawFrames, folderFrames, probeVideoSize, type RawFrame } from '../edge/sources.ts';
import { recommenderOptions } from '../processors/index.ts';
import { DEFAULT_EMOTION_MODEL, DEVICE_EMOTION_MODEL, EMOTION_MODELS, type EmotionModel } from '../vision/emotion-cnn.ts';
import { loadCatalogue } from '../processors/recommender/catalogue.ts';
import { readRecording } from '../schemas/recording.ts';
import { SchemaRegistry } from '../schemas/registry.ts';
import { topicName } from '../topology/topology.ts';
import type { Command } from './command.ts';
import { formatList } from './recommendations.ts';
import { deploymentTopology } from './deployment.ts';
import { edgeTokenOptions, edgeTokens } from './edge-token.ts';

/** Raw frames that ffmpeg scaled down by `shrink`, as camera images (boxes come back in camera pixels). */
async function* withShrink(frames: AsyncIterable<RawFrame>, shrink: number): AsyncGenerator<CameraImage> {
  for await (const f of frames) yield { ...f, shrink };
}

const topologyOf = (c: { topicPrefix: string; partitions: number; replicationFactor: number }) => deploymentTopology(c);

function progressLine(label: string): (sent: number, total: number | undefined, errors: number) => void {
  const started = Date.now();
  return (sent, total, errors) => {
    const rate = sent / Math.max(0.001, (Date.now() - started) / 1000);
    process.stderr.write(`\r${label}: ${sent}${total ? `/${total}` : ''} frames sent, ${rate.toFixed(1)}/s, ${errors} errors   `);
  };
}

const publishOptions = {
  ...commonOptions,
  user: opt.string('EM_USER', 'user', 'user-1', 'User id of the frames'),
  session: opt.string('EM_SESSION', 'session', '', 'Session id (default: a new one)'),
  images: opt.string('EM_IMAGES', 'images', '', 'Source: a folder of JPEG/PNG images'),
  video: opt.string('EM_VIDEO', 'video', '', 'Source: a video file (through ffmpeg)'),
  camera: opt.string('EM_CAMERA', 'camera', '', 'Source: a camera device, e.g. /dev/video0 (through ffmpeg)'),
  recording: opt.string('EM_RECORDING', 'recording', '', 'Source: a recording file (replayed with its timing)'),
  fps: fpsOption,
  maxFrames: opt.int('EM_MAX_FRAMES', 'max-frames', 0, 'Stop after this many frames (0: until the source ends)', { min: 0 }),
  send: opt.oneOf('EM_SEND', 'send', 'crop', PRIVACY_LEVELS, 'What leaves the device: crop (the 48x48 grey face), scores (the on-device CNN\'s probabilities) or frame (whole JPEG frames); see above'),
  realtime: opt.bool('EM_REALTIME', 'realtime', false, 'Read a video file at its own speed, as a camera delivers frames (otherwise as fast as it decodes)'),
  stats: opt.bool('EM_STATS', 'stats', false, 'Print what the client cost (its CPU and ffmpeg\'s, as a share of one core) and what it sent, at the end'),
  detector: opt.string('EM_DETECTOR', 'detector', formatDetectorSides(DEFAULT_DETECTOR_SIDES), 'On-device face detector side, or a cascade (128/256): vision/README.md'),
  // devices run the smallest model by default (vision/emotion-cnn.ts DEVICE_EMOTION_MODEL); the
  // classifier's own default is larger
  emotionModel: opt.oneOf('EM_EMOTION_MODEL', 'emotion-model', DEVICE_EMOTION_MODEL, Object.keys(EMOTION_MODELS) as EmotionModel[], `On-device emotion CNN for --send scores (and the crop size): ${DEVICE_EMOTION_MODEL} by default, the smallest (63.9% on PublicTest, 0.2 ms a face); the classifier serves ${DEFAULT_EMOTION_MODEL}, more accurate at about 2.5 times the cost; student-int8 (66.8%, 0.23 ms, 909 kB) is the best single network; accuracy and cost in models/README.md`),
  track: opt.bool('EM_TRACK', 'track', true, 'Video and camera: look for the face near its last place (a 128x128 window) and search the whole frame only when it is lost, and every --refresh-frames frames'),
  refreshFrames: opt.int('EM_REFRESH_FRAMES', 'refresh-frames', 30, 'With --track: search the whole frame at least this often', { min: 1 }),
  ...edgeTokenOptions,
};

export const publishCommand: Command = {
  summary: 'publish camera frames as an edge client (images, video, camera or a recording)',
  help: `usage: emotionmuse publish --user <id> (--images <dir> | --video <file> | --camera <device> | --recording <file>) [options]

Sends what the privacy level (--send) lets leave the device to the frames topic, through the
EdgePublisher (sequence numbers, capture times, a bounded buffer with backpressure, retries,
gzip for requests of several frames), at --fps for images, video and camera (video and camera
are decoded by ffmpeg; their face is followed from frame to frame, --track). A progress line
shows frames sent, rate and errors; --stats reports the client's CPU at the end.

What leaves the device, besides the user id, session id, sequence number and capture time:
  --send crop    (default) ${PRIVACY_TEXT.crop}
  --send scores  ${PRIVACY_TEXT.scores}
  --send frame   ${PRIVACY_TEXT.frame}
The face is found and cut out on the device with the classifier's own rules and models
(vision/face-crop.ts); a frame without a face sends a no-face marker, so the smoother sees the gap.
A recording (--recording) is sent as it was recorded.

options:
${configHelp(publishOptions)}`,
  async run(argv) {
    const c = loadConfig(publishOptions, { argv });
    const sources = [c.images, c.video, c.camera, c.recording].filter(Boolean);
    if (sources.length !== 1) {
      console.error(`choose exactly one source: --images, --video, --camera or --recording\n\n${this.help}`);
      return 2;
    }
    const kafka = createKafka({ brokers: c.brokers, clientId: 'emotionmuse-publish', security: kafkaSecurity(c, 'edge') });
    const registry = SchemaRegistry.load();
    const topic = topicName(topologyOf(c), 'frames');
    const session = c.session || `${c.user}-${randomUUID().slice(0, 8)}`;
    const progress = progressLine(`publish ${c.user}/${session}`);
    if (c.recording) {
      const { frames } = await readRecording(c.recording, registry);
      const r = await replay(c.maxFrames ? frames.slice(0, c.maxFrames) : frames, { kafka, registry, topic, sessionId: session, userId: c.user, onProgress: progress, tokenFor: edgeTokens(c) });
      process.stderr.write('\n');
      return r.errors > 0 ? 1 : 0;
    }
    if (c.images && !existsSync(c.images)) {
      console.error(`${c.images} does not exist`);
      return 2;
    }
    let detectorSides: number[];
    try {
      detectorSides = parseDetectorSides(c.detector);
    } catch (err) {
      console.error(`--detector: ${(err as Error).message}`);
      return 2;
    }
    const stats = new EdgeStats();
    const analyzer = await EdgeAnalyzer.create({ privacy: c.send, emotionModel: c.emotionModel, detectorSides, track: c.track && !c.images, refreshFrames: c.refreshFrames, logger: createLogger('warn') });
    const edge = new EdgePublisher({ kafka, registry, topic, userId: c.user, sessionId: session, analyzer, token: await edgeTokens(c)(c.user) });
    await edge.start();
    process.stderr.write(`sending at level ${c.send}: ${PRIVACY_TEXT[c.send]}\n`);
    const interval = 1000 / c.fps;
    const device = { video: c.video || undefined, camera: c.camera || undefined };
    const ffmpegOptions = { realtime: c.realtime, onStart: (pid: number) => stats.follow(pid) };
    let source: Iterable<CameraImage> | AsyncIterable<CameraImage>;
    if (c.images) source = folderFrames(c.images);
    else if (c.send === 'frame') source = ffmpegFrames(device, c.fps, 640, ffmpegOptions);
    else {
      // Cropping on the device: ffmpeg hands over raw frames already scaled to what the detector
      // sees, and the crop is taken from them (boxes are reported in camera pixels).
      const full = probeVideoSize(device);
      const size = scaledTo(full.width, full.height, Math.max(...detectorSides));
      source = withShrink(ffmpegRawFrames(device, c.fps, size, ffmpegOptions), full.width / size.width);
    }
    let n = 0;
    let stop = false;
    process.once('SIGINT', () => (stop = true));
    const started = Date.now();
    for await (const frame of source) {
      if (stop) break;
      // Images are paced here; ffmpeg already samples video and camera at --fps.
      if (c.images) {
        const wait = started + n * interval - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      stats.frame();
      try {
        await edge.capture({ ...frame, captureTimeMs: Date.now() });
      } catch (err) {
        // An image the device cannot decode is reported and skipped; nothing of it is sent.
        process.stderr.write(`\nframe ${n + 1}: ${(err as Error).message}\n`);
      }
      n++;
      if (n % 5 === 0) progress(edge.counters.sent, undefined, edge.counters.errors);
      if (c.maxFrames && n >= c.maxFrames) break;
    }
    await edge.close();
    progress(edge.counters.sent, undefined, edge.counters.errors);
    process.stderr.write(`\n${edge.counters.sent} frames sent as ${c.user}/${session}\n`);
    if (c.stats) console.log(stats.report(edge.counters, analyzer.track));
    if (edge.lastError) console.error(edge.lastError.message);
    return edge.counters.errors > 0 ? 1 : 0;
  },
};

const replayOptions = {
  ...commonOptions,
  recording: opt.string('EM_RECORDING', 'recording', 'session.avro', 'The recording to publish'),
  session: opt.string('EM_SESSION', 'session', '', 'Session id of the replay (default: a new one)'),
  user: opt.string('EM_USER', 'user', '', 'Publish as this user instead of the recorded ones'),
  speed: opt.number('EM_SPEED', 'speed', 1, 'Replay speed: 1 is the original timing, 4 four times faster', { min: 0.01 }),
  fast: opt.bool('EM_FAST', 'fast', false, 'As fast as possible'),
  ...edgeTokenOptions,
};

export const replayCommand: Command = {
  summary: 'publish a recording again, with its timing, under a new session id',
  help: `usage: emotionmuse replay --recording <file> [--speed 4 | --fast] [--user <id>] [options]

options:
${configHelp(replayOptions)}`,
  async run(argv) {
    const c = loadConfig(replayOptions, { argv });
    const registry = SchemaRegistry.load();
    const { frames } = await readRecording(c.recording, registry);
    const session = c.session || `replay-${randomUUID().slice(0, 8)}`;
    const r = await replay(frames, {
      kafka: createKafka({ brokers: c.brokers, clientId: 'emotionmuse-replay', security: kafkaSecurity(c, 'edge') }),
      registry,
      topic: topicName(topologyOf(c), 'frames'),
      sessionId: session,
      userId: c.user || undefined,
      speed: c.fast ? Infinity : c.speed,
      onProgress: progressLine(`replay ${session}`),
      tokenFor: edgeTokens(c),
    });
    process.stderr.write(`\n${r.sent} frames replayed as session ${session}\n`);
    return r.errors > 0 ? 1 : 0;
  },
};

const recordOptions = {
  ...commonOptions,
  user: opt.string('EM_USER', 'user', '', 'Record this user\'s frames'),
  session: opt.string('EM_SESSION', 'session', '', 'Record this session\'s frames'),
  out: opt.string('EM_OUT', 'out', 'recording.avro', 'Recording file to write'),
  fromBeginning: opt.bool('EM_FROM_BEGINNING', 'from-beginning', false, 'Also take the frames the topic already holds'),
  maxFrames: opt.int('EM_MAX_FRAMES', 'max-frames', 0, 'Stop after this many frames (0: no limit)', { min: 0 }),
  idleMs: opt.int('EM_IDLE_MS', 'idle-ms', 5000, 'Stop after this long without a new frame', { min: 100 }),
};

export const recordCommand: Command = {
  summary: 'capture a user\'s or session\'s frames into a recording file',
  help: `usage: emotionmuse record (--user <id> | --session <id>) --out <file> [options]

Reads the frames topic (read_committed) and writes the matching frames, with their capture
times, to a recording (an Avro object container file), until --max-frames, --idle-ms without a
frame, or Ctrl-C.

options:
${configHelp(recordOptions)}`,
  async run(argv) {
    const c = loadConfig(recordOptions, { argv });
    if (!c.user && !c.session) {
      console.error('choose --user or --session');
      return 2;
    }
    const abort = new AbortController();
    process.once('SIGINT', () => abort.abort());
    const n = await record(c.out, {
      kafka: createKafka({ brokers: c.brokers, clientId: 'emotionmuse-record', security: kafkaSecurity(c, 'admin') }),
      registry: SchemaRegistry.load(),
      topic: topicName(topologyOf(c), 'frames'),
      userId: c.user || undefined,
      sessionId: c.session || undefined,
      fromBeginning: c.fromBeginning,
      maxFrames: c.maxFrames,
      idleMs: c.idleMs,
      signal: abort.signal,
      onFrame: (count) => count % 10 === 0 && process.stderr.write(`\rrecorded ${count} frames`),
    });
    process.stderr.write(`\nwrote ${n} frames to ${c.out}\n`);
    return 0;
  },
};

const subscribeOptions = {
  ...commonOptions,
  user: opt.list('EM_USER', 'user', [], 'Users to follow (comma-separated); none with --all'),
  all: opt.bool('EM_ALL', 'all', false, 'Follow every user'),
  json: opt.bool('EM_JSON', 'json', false, 'One JSON object per line'),
  modelDir: recommenderOptions.modelDir,
  fromBeginning: opt.bool('EM_FROM_BEGINNING', 'from-beginning', false, 'Also print what the topics already hold'),
};

export const subscribeCommand: Command = {
  summary: 'follow users\' emotion changes and recommendation lists live',
  help: `usage: emotionmuse subscribe (--user <id>[,<id>...] | --all) [--json] [options]

options:
${configHelp(subscribeOptions)}`,
  async run(argv) {
    const c = loadConfig(subscribeOptions, { argv });
    if (c.user.length === 0 && !c.all) {
      console.error('choose --user <id> or --all');
      return 2;
    }
    const users = new Set(c.user);
    const topology = topologyOf(c);
    const registry = SchemaRegistry.load();
    const catalogue = existsSync(c.modelDir) ? loadCatalogue(c.modelDir) : undefined;
    const names = (id: string) => {
      const i = catalogue?.indexOf.get(id);
      return i === undefined || !catalogue ? undefined : { title: catalogue.titles[i]!, artist: catalogue.artists[i]! };
    };
    const kafka = createKafka({ brokers: c.brokers, clientId: 'emotionmuse-subscribe', security: kafkaSecurity(c, 'admin') });
    const consumer = kafka.consumer({ groupId: `emotionmuse-subscribe-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topics: [topicName(topology, 'emotion-changes'), topicName(topology, 'recommendations')], fromBeginning: c.fromBeginning });
    await consumer.run({
      eachMessage: async ({ topic, message }) => {
        const key = message.key?.toString() ?? '';
        if (!c.all && !users.has(key)) return;
        if (topic === topicName(topology, 'emotion-changes')) {
          const e = registry.decode('emotion-change', message.value!);
          if (c.json) console.log(JSON.stringify({ type: 'emotion-change', ...e }));
          else console.log(`${e.userId}: emotion ${e.previousLabel ?? '(start)'} -> ${e.label}  valence ${e.valence.toFixed(2)} arousal ${e.arousal.toFixed(2)}  (window ${e.windowIndex}, frame ${e.windowEndSeq})`);
        } else {
          const list = registry.decode('recommendation', message.value!);
          if (c.json) console.log(JSON.stringify({ type: 'recommendation', ...list, items: list.items.map((it) => ({ ...it, ...names(it.trackId) })) }));
          else console.log(formatList(list, names));
        }
      },
    });
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await consumer.disconnect();
    return 0;
  },
};
