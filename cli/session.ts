import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configHelp, opt } from '../runtime/config.ts';
import { SchemaRegistry } from '../schemas/registry.ts';
import { writeLabelledSession } from '../sessions/synth.ts';
import { fpsOption, parseTimeline } from '../sessions/timeline.ts';
import { verbConfig, type Command } from './command.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const synthOptions = {
  images: opt.string('EM_IMAGES', 'images', path.resolve(ROOT, '../shared/data/fer2013/public-test'), 'Folder with one subfolder of face images per emotion'),
  timeline: opt.string('EM_TIMELINE', 'timeline', 'neutral:8s,happy:6s,sad:10s,surprise:6s,angry:8s,neutral:6s', 'Ground truth: <emotion>:<seconds>s, comma-separated'),
  fps: fpsOption,
  seed: opt.int('EM_SEED', 'seed', 7, 'Seed of the image choice'),
  user: opt.string('EM_USER', 'user', 'user-1', 'User id of the frames'),
  session: opt.string('EM_SESSION', 'session', '', 'Session id (default synth-<seed>)'),
  out: opt.string('EM_OUT', 'out', 'session.avro', 'Recording file to write'),
};

export const sessionCommand: Command = {
  summary: 'make labelled sessions (session synth)',
  help: `usage: emotionmuse session synth [options]

Writes a recording (an Avro object container file of frame records) whose frames are real face
images of the emotion in force at each moment of --timeline, as edge-cropped grey faces, one
every 1/fps seconds. The ground-truth timeline, fps, seed and ids are stored in the file's
metadata, for \`emotionmuse eval smoother\` and for replay.

example:
  emotionmuse session synth --images ../shared/data/fer2013/public-test \\
    --timeline "neutral:8s,happy:6s,sad:10s" --fps 10 --seed 7 --out session.avro

options:
${configHelp(synthOptions)}`,
  async run(argv) {
    const config = verbConfig(argv, 'synth', synthOptions, this.help);
    if (typeof config === 'number') return config;
    const meta = await writeLabelledSession(config.out, SchemaRegistry.load(), {
      images: config.images,
      timeline: parseTimeline(config.timeline),
      fps: config.fps,
      seed: config.seed,
      userId: config.user,
      sessionId: config.session || undefined,
    });
    const seconds = meta.timeline[meta.timeline.length - 1]!.endMs / 1000;
    console.log(`wrote ${config.out}: ${meta.frames} frames, ${seconds} s at ${meta.fps} fps, user ${meta.userId}, session ${meta.sessionId}`);
    console.log(`timeline: ${meta.timeline.map((s) => `${s.label} ${s.startMs / 1000}-${s.endMs / 1000}s`).join(', ')}`);
    return 0;
  },
};
