import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { EMOTION_MODELS, MODELS_DIR } from '../../processors/classifier/engine.ts';
import { FER_PUBLIC_TEST } from '../../sessions/faces.ts';
import { EmotionCnn } from '../../vision/emotion-cnn.ts';

// The CPU student as published (models/train-fer/publish-student.sh): the committed files are the
// ones their cards name, the training run the cards point to is committed with its curve, and the
// two ensembles built on the student average their members.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const sha = (file: string) => createHash('sha256').update(readFileSync(path.join(MODELS_DIR, file))).digest('hex');
const argmax = (p: ArrayLike<number>) => Array.from(p).indexOf(Math.max(...Array.from(p)));
interface Card {
  sha256: string;
  version: string;
  members?: Array<{ file: string; sha256: string }>;
  training?: { run: string; cpuHours?: number; epochs?: number };
  quality: { withoutClahe: { accuracy: number } };
}
const cardOf = (model: keyof typeof EMOTION_MODELS) => JSON.parse(readFileSync(path.join(MODELS_DIR, EMOTION_MODELS[model].card), 'utf8')) as Card;

if (!existsSync(FER_PUBLIC_TEST)) throw new Error(`${FER_PUBLIC_TEST} is absent: the student's tests run on PublicTest faces`);
/** 8 PublicTest faces of each class, 48x48 grey, as edge crops arrive. */
const faces = await Promise.all(readdirSync(FER_PUBLIC_TEST).sort().flatMap((label) => readdirSync(path.join(FER_PUBLIC_TEST, label)).sort().slice(0, 8).map(async (f) => {
  const { data } = await sharp(path.join(FER_PUBLIC_TEST, label, f)).greyscale().resize(48, 48).raw().toBuffer({ resolveWithObject: true });
  return new Uint8Array(data);
})));
const open = (model: keyof typeof EMOTION_MODELS) => EmotionCnn.create({ modelsDir: MODELS_DIR, emotionModel: model, providers: ['cpu'] });

describe('the CPU student, published', () => {
  it('is the file its card names, trained in the run its card points to', () => {
    for (const model of ['student', 'student-int8', 'student-fer', 'student48'] as const) {
      const card = cardOf(model);
      expect(card.sha256, model).toBe(sha(EMOTION_MODELS[model].file));
      expect(card.version, model).toBe(EMOTION_MODELS[model].version);
      for (const m of card.members ?? []) expect(m.sha256, `${model}: ${m.file}`).toBe(sha(m.file));
      expect(card.quality.withoutClahe.accuracy, model).toBeGreaterThan(0.5);
    }
    const training = cardOf('student').training!;
    const run = JSON.parse(readFileSync(path.join(ROOT, training.run, 'card.json'), 'utf8')) as { finished: boolean; epochs: number; training_cpu_hours: number; history: unknown[] };
    expect(run).toMatchObject({ finished: true, epochs: training.epochs });
    expect(run.history).toHaveLength(run.epochs);
    expect(run.training_cpu_hours).toBe(training.cpuHours);
    expect(readFileSync(path.join(ROOT, training.run, 'curve.svg'), 'utf8')).toMatch(/^<svg[\s\S]*validation accuracy[\s\S]*<\/svg>$/);
  });

  it('keeps its answers when quantized', async () => {
    const [f, q] = await Promise.all([open('student'), open('student-int8')]);
    const [pf, pq] = await Promise.all([f.infer(faces), q.infer(faces)]);
    const same = pf.filter((p, i) => argmax(p) === argmax(pq[i]!)).length;
    expect(same / faces.length).toBeGreaterThanOrEqual(0.9);
  });

  it('averages the student and int8-48 on the same 48x48 input in student48', async () => {
    const [e, a, b] = await Promise.all([open('student48'), open('student-int8'), open('int8-48')]);
    expect([e.inputSide, a.inputSide, b.inputSide]).toEqual([48, 48, 48]);
    const [pe, pa, pb] = await Promise.all([e, a, b].map((m) => m.infer(faces)));
    let worst = 0;
    pe!.forEach((p, i) => p.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - (pa![i]![k]! + pb![i]![k]!) / 2)))));
    expect(worst).toBeLessThan(1e-5);
    expect(pa!.some((p, i) => argmax(p) !== argmax(pb![i]!))).toBe(true);
  });

  it('averages the student and fer (resized in the graph) in student-fer', async () => {
    const [e, a] = await Promise.all([open('student-fer'), open('student-int8')]);
    expect(e.inputSide).toBe(48);
    const [pe, pa] = await Promise.all([e.infer(faces), a.infer(faces)]);
    // fer's half of the mean: 2 * ensemble - student, a probability vector when the graph averages
    for (const [i, p] of pe.entries()) {
      const fer = p.map((v, k) => 2 * v - pa[i]![k]!);
      expect(Math.min(...fer)).toBeGreaterThan(-1e-5);
      expect(fer.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 4);
    }
  });
});
