import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configHelp, loadConfig, opt, parseArgv } from '../runtime/config.ts';
import { createLogger } from '../runtime/log.ts';
import { ClassifierEngine } from '../processors/classifier/engine.ts';
import { evaluateFolder, formatReport } from '../processors/classifier/evaluate.ts';
import { inferenceOptions } from '../processors/index.ts';
import type { Command } from './command.ts';
import { wantsHelp } from './command.ts';
import { progressBar } from './progress.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const classifierEvalOptions = {
  ...inferenceOptions,
  data: opt.string('EM_EVAL_DATA', 'data', path.resolve(ROOT, '../shared/data/fer2013/public-test'), 'Folder with one subfolder of face images per FER class'),
  clahe: opt.bool('EM_CLAHE', 'clahe', false, 'Apply CLAHE before the CNN (the paper\'s preprocessing)'),
  limit: opt.int('EM_EVAL_LIMIT', 'limit', 0, 'Evaluate an evenly spread subset of this many images (0: all)', { min: 0 }),
  json: opt.bool('EM_JSON', 'json', false, 'Print the report as JSON'),
};

export const evalCommand: Command = {
  summary: 'measure a stage on labelled data (eval classifier)',
  help: `usage: emotionmuse eval classifier [options]

Classifies every image under <data>/<class>/ (FER-2013 layout: angry, disgust, fear, happy, sad,
surprise, neutral) as a face crop and prints accuracy, macro-F1, per-class precision, recall, F1
and support (the shape of the paper's Table III), and the confusion matrix. A progress bar runs on
stderr.

options:
${configHelp(classifierEvalOptions)}`,
  async run(argv) {
    const { positionals } = parseArgv(argv);
    const [what] = positionals;
    if (!what || wantsHelp(argv)) {
      console.log(this.help);
      return what ? 0 : 2;
    }
    if (what !== 'classifier') {
      console.error(`unknown evaluation "${what}" (known: classifier)`);
      return 2;
    }
    const config = loadConfig(classifierEvalOptions, { argv: argv.filter((a) => a !== what) });
    const engine = await ClassifierEngine.create({
      providers: config.providers as Array<'cuda' | 'cpu'>,
      threads: config.threads,
      clahe: config.clahe,
      logger: createLogger('warn'),
    });
    const report = await evaluateFolder(engine, config.data, { limit: config.limit || undefined, onProgress: config.json ? undefined : progressBar('classifying') });
    if (config.json) {
      console.log(JSON.stringify({ data: config.data, clahe: config.clahe, provider: engine.provider, model: engine.modelVersion, ...report }, null, 2));
    } else {
      console.log(formatReport(report, `emotion classifier ${engine.modelVersion} on ${config.data} (CLAHE ${config.clahe ? 'on' : 'off'}, ${engine.provider})`));
    }
    return 0;
  },
};
