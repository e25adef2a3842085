import { readdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { EMOTIONS } from '../../schemas/kinds.ts';
import type { ClassifierEngine } from './engine.ts';

export interface ClassReport {
  readonly label: string;
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
  readonly support: number;
}

export interface EvaluationReport {
  readonly labels: readonly string[];
  readonly total: number;
  readonly accuracy: number;
  readonly macroF1: number;
  readonly perClass: readonly ClassReport[];
  /** confusion[true][predicted] */
  readonly confusion: readonly (readonly number[])[];
}

/** Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix. */
export function scoreClassification(truth: readonly number[], predicted: readonly number[], labels: readonly string[]): EvaluationReport {
  const k = labels.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  truth.forEach((t, i) => confusion[t]![predicted[i]!]!++);
  const perClass = labels.map((label, c) => {
    const tp = confusion[c]![c]!;
    const support = confusion[c]!.reduce((a, b) => a + b, 0);
    const predictedC = confusion.reduce((a, row) => a + row[c]!, 0);
    const precision = predictedC === 0 ? 0 : tp / predictedC;
    const recall = support === 0 ? 0 : tp / support;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { label, precision, recall, f1, support };
  });
  const correct = labels.reduce((a, _l, c) => a + confusion[c]![c]!, 0);
  const present = perClass.filter((c) => c.support > 0);
  return {
    labels,
    total: truth.length,
    accuracy: truth.length === 0 ? 0 : correct / truth.length,
    macroF1: present.reduce((a, c) => a + c.f1, 0) / Math.max(1, present.length),
    perClass,
    confusion,
  };
}

export function formatReport(report: EvaluationReport, title: string): string {
  const pct = (x: number) => (100 * x).toFixed(1).padStart(6);
  const lines = [
    title,
    '',
    `${'class'.padEnd(10)} ${'precision'.padStart(9)} ${'recall'.padStart(9)} ${'F1'.padStart(9)} ${'support'.padStart(8)}`,
    ...report.perClass.map((c) => `${c.label.padEnd(10)} ${pct(c.precision).padStart(9)} ${pct(c.recall).padStart(9)} ${pct(c.f1).padStart(9)} ${String(c.support).padStart(8)}`),
    '',
    `accuracy ${pct(report.accuracy)} %   macro-F1 ${pct(report.macroF1)} %   (${report.total} images)`,
    '',
    'confusion matrix (rows: true class, columns: predicted)',
    `${''.padEnd(10)}${report.labels.map((l) => l.slice(0, 7).padStart(8)).join('')}`,
    ...report.confusion.map((row, i) => `${report.labels[i]!.padEnd(10)}${row.map((v) => String(v).padStart(8)).join('')}`),
  ];
  return lines.join('\n');
}

/** Image files under `<root>/<class>/`, for the classes of FER-2013 that are present. */
export function listLabelledImages(root: string): Array<{ file: string; label: number }> {
  const out: Array<{ file: string; label: number }> = [];
  const dirs = new Set(readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name));
  const unknown = [...dirs].filter((d) => !(EMOTIONS as readonly string[]).includes(d));
  if (unknown.length > 0) throw new Error(`${root}: folders ${unknown.join(', ')} are not FER classes (${EMOTIONS.join(', ')})`);
  EMOTIONS.forEach((label, index) => {
    if (!dirs.has(label)) return;
    for (const f of readdirSync(path.join(root, label)).sort()) if (/\.(jpe?g|png)$/i.test(f)) out.push({ file: path.join(root, label, f), label: index });
  });
  return out;
}

/**
 * Classifies every image of a class-folder data set as a grey face crop (FER-2013 images are
 * already cropped to the face) and scores the predictions.
 */
export async function evaluateFolder(
  engine: ClassifierEngine,
  root: string,
  options: { batch?: number; limit?: number; flip?: boolean; onProgress?: (done: number, total: number) => void } = {},
): Promise<EvaluationReport> {
  let items = listLabelledImages(root);
  if (options.limit) items = items.filter((_x, i) => i % Math.ceil(items.length / options.limit!) === 0);
  const batch = options.batch ?? 256;
  const predicted: number[] = [];
  for (let i = 0; i < items.length; i += batch) {
    const slice = items.slice(i, i + batch);
    const crops = await Promise.all(
      slice.map(async ({ file }) => {
        const { data, info } = await sharp(file).greyscale().raw().toBuffer({ resolveWithObject: true });
        return { data: new Uint8Array(data.buffer, data.byteOffset, info.width * info.height), width: info.width, height: info.height };
      }),
    );
    const probs = await engine.classifyCrops(crops);
    // Test-time flip averaging: each face and its mirror image, probabilities averaged.
    const mirrored = options.flip ? await engine.classifyCrops(crops.map(mirror)) : undefined;
    probs.forEach((p, k) => {
      const q = mirrored ? Array.from(p, (v, c) => v + mirrored[k]![c]!) : Array.from(p);
      predicted.push(q.indexOf(Math.max(...q)));
    });
    options.onProgress?.(Math.min(items.length, i + batch), items.length);
  }
  return scoreClassification(items.map((x) => x.label), predicted, EMOTIONS);
}

/** A grey image mirrored left to right. */
export function mirror(img: { data: Uint8Array; width: number; height: number }): { data: Uint8Array; width: number; height: number } {
  const out = new Uint8Array(img.data.length);
  for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) out[y * img.width + x] = img.data[y * img.width + img.width - 1 - x]!;
  return { data: out, width: img.width, height: img.height };
}
