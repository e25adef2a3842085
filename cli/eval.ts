import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configHelp, loadConfig, opt, parseArgv } from '../runtime/config.ts';
import { createLogger } from '../runtime/log.ts';
import { ClassifierEngine, MODELS_DIR } from '../processors/classifier/engine.ts';
import { buildScenes, buildSequences, defaultSceneSources, detectionSheet, evaluateDetector, evaluateReference, evaluateSequences, type DetectionReport } from '../vision/detection-eval.ts';
import { FaceDetector, type FaceBox } from '../vision/detector.ts';
import { openSession } from '../runtime/onnx.ts';
import { NODE_DETECTOR_FILE } from '../vision/model-specs.ts';
import { DEFAULT_CASCADE_MIN_WIDTH, FaceCropper, formatDetectorSides, parseDetectorSides } from '../vision/face-crop.ts';
import { evaluateFolder, formatReport } from '../processors/classifier/evaluate.ts';
import { classifierOptions, emotionModelOption, inferenceOptions } from '../processors/index.ts';
import { evalSmoother, smootherEvalOptions } from './eval-smoother.ts';
import { writeFileSync } from 'node:fs';
import type { Command } from './command.ts';
import { progressBar } from './progress.ts';
import { table as formatTable } from '../observability/format.ts';

function formatDetectionReports(reports: readonly DetectionReport[], title: string): string {
  const pct = (v: number) => (Number.isNaN(v) ? '-' : `${(v * 100).toFixed(1)}%`);
  const rows = reports.map((r) => [r.detector, pct(r.recall), pct(r.recallBySize.small), pct(r.recallBySize.medium), pct(r.recallBySize.large), r.falsePositivesPerScene.toFixed(3), pct(r.largestRecall), pct(r.largestCorrect), pct(r.falseAlarmScenes), r.msPerFrame.toFixed(2)]);
  return `${title}; ${reports[0]?.faces ?? 0} faces\n\n${formatTable(['detector', 'recall', '<64 px', '64-128 px', '>=128 px', 'false pos. / scene', 'largest face found', 'largest box is a face', 'false alarm (no-face scenes)', 'ms / frame'], rows)}`;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const classifierEvalOptions = {
  ...inferenceOptions,
  ...emotionModelOption,
  data: opt.string('EM_EVAL_DATA', 'data', path.resolve(ROOT, '../shared/data/fer2013/public-test'), 'Folder with one subfolder of face images per FER class'),
  emotionModelFile: opt.string('EM_EMOTION_MODEL_FILE', 'emotion-model-file', '', 'Evaluate this ONNX emotion model instead of --emotion-model (same shape: NHWC [batch, 48, 48, 1] in, 7 probabilities out), e.g. one trained by models/train-fer'),
  clahe: classifierOptions.clahe,
  limit: opt.int('EM_EVAL_LIMIT', 'limit', 0, 'Evaluate an evenly spread subset of this many images (0: all)', { min: 0 }),
  flip: opt.bool('EM_EVAL_FLIP', 'flip', false, 'Test-time flip averaging: classify each face and its mirror image and average the probabilities (twice the CNN work)'),
  json: opt.bool('EM_JSON', 'json', false, 'Print the report as JSON'),
};


const detectorEvalOptions = {
  ...inferenceOptions,
  settings: opt.list('EM_DETECTOR_SETTINGS', 'settings', ['256', '224', '192', '160', '128', '128/256', '160/256'], 'Detector settings to measure: a side (longer side of the input, a multiple of 32) or a cascade of sides (128/256)'),
  scenes: opt.int('EM_SCENES', 'scenes', 600, 'Labelled 640x480 scenes to build', { min: 1 }),
  seed: opt.int('EM_SEED', 'seed', 1, 'Seed of the scenes', { min: 0 }),
  minFaceScore: opt.number('EM_MIN_FACE_SCORE', 'min-face-score', 0.6, 'Face detector score threshold', { min: 0, max: 1 }),
  cascadeMinWidth: opt.int('EM_CASCADE_MIN_WIDTH', 'cascade-min-width', DEFAULT_CASCADE_MIN_WIDTH, 'In a cascade, a side\'s faces are kept when the largest is at least this many input pixels wide', { min: 0 }),
  fer: opt.string('EM_FER_DIR', 'fer', path.resolve(ROOT, '../shared/data/fer2013/train'), 'FER-2013 faces pasted into scenes (one folder per class)'),
  sequences: opt.int('EM_SEQUENCES', 'sequences', 24, 'Camera-like sequences on which following the face is measured against searching every whole frame (0: none)', { min: 0 }),
  sequenceFrames: opt.int('EM_SEQUENCE_FRAMES', 'sequence-frames', 40, 'Frames per sequence', { min: 2 }),
  picture: opt.string('EM_PICTURE', 'picture', '', 'Also write a picture (.png or .jpg) of the first 24 scenes with the labelled faces (green), faces cut by the edge (grey) and the first setting\'s detections (red, dashed)'),
  json: opt.bool('EM_JSON', 'json', false, 'Print the reports as JSON'),
};

async function evalDetector(argv: string[]): Promise<number> {
  const config = loadConfig(detectorEvalOptions, { argv });
  let settings: number[][];
  try {
    settings = config.settings.map(parseDetectorSides);
  } catch (err) {
    console.error(`--settings: ${(err as Error).message}`);
    return 2;
  }
  const sources = { ...defaultSceneSources(), ferDir: config.fer };
  const scenes = await buildScenes(config.scenes, config.seed, sources, config.json ? undefined : progressBar('building scenes'));
  const { session } = await openSession(path.join(MODELS_DIR, NODE_DETECTOR_FILE), { providers: config.providers as Array<'cuda' | 'cpu'>, threads: config.threads });
  const reports: DetectionReport[] = [await evaluateReference(new FaceDetector(session, { minScore: config.minFaceScore }), scenes)];
  const firstDetections: FaceBox[][] = [];
  for (const [i, sides] of settings.entries()) {
    const cropper = await FaceCropper.create({ modelsDir: MODELS_DIR, providers: config.providers as Array<'cuda' | 'cpu'>, threads: config.threads, detectorSides: sides, cascadeMinWidth: config.cascadeMinWidth, minFaceScore: config.minFaceScore, logger: createLogger('warn') });
    reports.push(await evaluateDetector(cropper, scenes, 8, i === 0 ? firstDetections : undefined));
    if (!config.json) process.stderr.write(`  measured ${formatDetectorSides(sides)}\n`);
  }
  if (config.picture) {
    writeFileSync(config.picture, await detectionSheet(scenes, firstDetections, /\.jpe?g$/i.test(config.picture) ? 'jpeg' : 'png'));
    if (!config.json) process.stderr.write(`wrote ${config.picture}\n`);
  }
  const sequenceReports: DetectionReport[] = [];
  if (config.sequences > 0) {
    const sequences = await buildSequences(config.sequences, config.sequenceFrames, config.seed, sources, config.json ? undefined : progressBar('building sequences'));
    for (const track of [false, true]) {
      const cropper = await FaceCropper.create({ modelsDir: MODELS_DIR, providers: config.providers as Array<'cuda' | 'cpu'>, threads: config.threads, detectorSides: settings[0], cascadeMinWidth: config.cascadeMinWidth, minFaceScore: config.minFaceScore, logger: createLogger('warn') });
      sequenceReports.push(await evaluateSequences(cropper, sequences, track));
    }
  }
  if (config.json) console.log(JSON.stringify({ scenes: config.scenes, seed: config.seed, minFaceScore: config.minFaceScore, reports, sequences: sequenceReports }, null, 2));
  else {
    console.log(formatDetectionReports(reports, `face detection on ${config.scenes} labelled 640x480 scenes (seed ${config.seed}, score >= ${config.minFaceScore}, IoU >= 0.5)`));
    if (sequenceReports.length > 0) {
      console.log(`\n${formatDetectionReports(sequenceReports, `${config.sequences} camera-like sequences of ${config.sequenceFrames} frames (every other one cut at mid-sequence to another face), detector ${formatDetectorSides(settings[0]!)}, every frame scored`)}`);
      console.log('"all faces" recall counts every face in view; a followed frame is searched only around the face it follows.');
    }
  }
  return 0;
}

export const evalCommand: Command = {
  summary: 'measure a stage on labelled data (eval classifier | eval detector | eval smoother)',
  help: `usage: emotionmuse eval classifier [options]
       emotionmuse eval detector [--scenes 600] [--seed 1] [--settings 256,128/256] [options]
       emotionmuse eval smoother --recording session.avro [options]
       emotionmuse eval smoother --sessions 50 [--seed 1] [--images <FER folder>] [--jitter] [options]

eval detector builds labelled 640x480 scenes (the face-api demo photos with checked face boxes,
FER-2013 training faces on generated backgrounds, scenes without a face) and prints, for round 1's
detection and every detector setting, recall at IoU 0.5 by face size, false positives, how often
the largest face is found and the largest box is a face, and the time per frame; then, on
camera-like sequences, a whole-frame search of every frame against following the face
(vision/README.md). A progress bar runs on stderr. Options of eval detector:
${configHelp(detectorEvalOptions)}

eval smoother, with --recording, runs the classifier and the smoother core over a labelled
recording and prints the label transitions of frame-level argmax against those after smoothing,
the share of frames whose label matches the ground truth, and the delay of each true change; it
writes a timeline picture (SVG). With --sessions N it synthesizes N labelled sessions from real
faces (random timelines of 2-20 s segments, some frames without a face; --jitter: 5-15 fps and
dropped frames), and prints for every scheme and setting the transitions against frame argmax,
frame accuracy, change delay (median, p90), missed changes and spurious changes per minute; it
writes a Pareto picture (transitions against delay) and one session's timeline (SVG).
Options of eval smoother:
${configHelp(smootherEvalOptions)}

eval classifier:
Classifies every image under <data>/<class>/ (FER-2013 layout: angry, disgust, fear, happy, sad,
surprise, neutral) as a face crop and prints accuracy, macro-F1, per-class precision, recall, F1
and support (the shape of the paper's Table III), and the confusion matrix. A progress bar runs on
stderr.

options:
${configHelp(classifierEvalOptions)}`,
  async run(argv) {
    const { positionals } = parseArgv(argv);
    const [what] = positionals;
    if (!what) {
      console.log(this.help);
      return 2;
    }
    if (what === 'smoother') return evalSmoother(argv.filter((a) => a !== what));
    if (what === 'detector') return evalDetector(argv.filter((a) => a !== what));
    if (what !== 'classifier') {
      console.error(`unknown evaluation "${what}" (known: classifier, detector, smoother)`);
      return 2;
    }
    const config = loadConfig(classifierEvalOptions, { argv: argv.filter((a) => a !== what) });
    const engine = await ClassifierEngine.create({
      emotionModel: config.emotionModel,
      emotionModelFile: config.emotionModelFile || undefined,
      providers: config.providers as Array<'cuda' | 'cpu'>,
      threads: config.threads,
      clahe: config.clahe,
      logger: createLogger('warn'),
    });
    const report = await evaluateFolder(engine, config.data, { limit: config.limit || undefined, flip: config.flip, onProgress: config.json ? undefined : progressBar('classifying') });
    if (config.json) {
      console.log(JSON.stringify({ data: config.data, clahe: config.clahe, flip: config.flip, provider: engine.provider, model: engine.modelVersion, ...report }, null, 2));
    } else {
      console.log(formatReport(report, `emotion classifier ${engine.modelVersion} on ${config.data} (CLAHE ${config.clahe ? 'on' : 'off'}${config.flip ? ', flip averaging' : ''}, ${engine.provider})`));
    }
    return 0;
  },
};
