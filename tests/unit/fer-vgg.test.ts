import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportedParity, parityOf } from '../support/train-fer.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OUT = path.join(ROOT, '.cache', 'fer-vgg-smoke');

/**
 * The VGG-16+SE training toolkit (models/train-fer/): its smoke run (384 FER-2013 training faces,
 * one epoch, width 0.25; CI runs it before the tests) exports an ONNX graph whose probabilities
 * must match PyTorch's within 1e-4 in onnxruntime-node. Without the smoke run's output here, the
 * test runs it (Debian's PyTorch, about 10 s).
 */
describe('VGG-16+SE training toolkit: export parity', () => {
  beforeAll(() => {
    if (existsSync(path.join(OUT, 'parity.json')) && existsSync(path.join(OUT, 'model.onnx'))) return;
    const r = spawnSync('bash', ['-c', `source training/python-env.sh && $PY models/train-fer/train.py --smoke --out ${OUT}`], { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`the training toolkit's smoke run failed (${r.status}): ${r.stderr.slice(-2000)}`);
  }, 120_000);

  it('gives the probabilities PyTorch gave, within 1e-4, for the same faces', async () => {
    const { faces } = parityOf(OUT);
    expect(faces.length).toBe(16);
    const { got, worst } = await exportedParity(OUT);
    expect(worst).toBeLessThan(1e-4);
    for (let b = 0; b < faces.length; b++) expect(Array.from(got.subarray(b * 7, b * 7 + 7)).reduce((x, y) => x + y, 0)).toBeCloseTo(1, 5);
  });

  it('writes a model card that says what was trained, how long and on what', () => {
    const card = JSON.parse(readFileSync(path.join(OUT, 'card.json'), 'utf8'));
    expect(card).toMatchObject({ width: 0.25, initialisation: expect.stringContaining('scratch'), validation: expect.stringContaining('PublicTest'), hardware: { device: 'cpu' } });
    expect(card.epochs).toBeGreaterThanOrEqual(1);
    expect(Object.keys(card.per_class)).toEqual(['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']);
    expect(readFileSync(path.join(OUT, 'curve.svg'), 'utf8')).toMatch(/^<svg[\s\S]*validation accuracy[\s\S]*<\/svg>$/);
  });
});
