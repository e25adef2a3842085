import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportedParity, parityOf as parity } from '../support/train-fer.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const INTERRUPTED = path.join(ROOT, '.cache', 'fer-student-smoke-resumed');
const STRAIGHT = path.join(ROOT, '.cache', 'fer-student-smoke-straight');

interface Card {
  name: string;
  epochs: number;
  finished: boolean;
  kept_epoch: number;
  training_cpu_hours: number;
  teacher: { file: string; sha256: string } | null;
  history: Array<{ epoch: number; train_loss: number; val_acc: number; cpu_seconds: number }>;
}

/**
 * One smoke run of the student's training (384 faces, two epochs, distilled from the float
 * ensemble); its log. Asynchronous, so that the test worker keeps answering vitest meanwhile.
 */
function train(out: string, extra: string[] = []): Promise<string> {
  const args = ['--arch', 'resnet', '--smoke', '--epochs', '2', '--teacher', 'models/emotion-ensemble.onnx', '--out', out, ...extra];
  const child = spawn('bash', ['-c', `source training/python-env.sh && $PY models/train-fer/train.py ${args.join(' ')}`], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (log += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(log) : reject(new Error(`the student's smoke run failed (${code}): ${log.slice(-2000)}`))));
  });
}
const card = (dir: string): Card => JSON.parse(readFileSync(path.join(dir, 'card.json'), 'utf8')) as Card;

/**
 * The CPU student (models/train-fer/train.py --arch resnet): a run interrupted after its first
 * epoch and started again goes on from the checkpoint and ends where an uninterrupted run ends
 * (the optimiser, the cosine schedule and both random generators are in the checkpoint), and the
 * exported graph gives PyTorch's probabilities in onnxruntime-node. About 20 s (Debian's PyTorch).
 */
describe('CPU student: training resumes from its checkpoint', () => {
  let firstLog = '';
  let resumedLog = '';
  beforeAll(async () => {
    for (const d of [INTERRUPTED, STRAIGHT]) rmSync(d, { recursive: true, force: true });
    // --max-minutes stops after the epoch that passes it: here the first
    firstLog = await train(INTERRUPTED, ['--max-minutes', '0.0001']);
    expect(card(INTERRUPTED)).toMatchObject({ epochs: 1, finished: false });
    resumedLog = await train(INTERRUPTED);
    await train(STRAIGHT);
  }, 240_000);

  it('stops after the first epoch, says how to go on, and resumes after it', () => {
    expect(firstLog).toMatch(/stopping after .* run again with the same --out to go on/);
    expect(resumedLog).toMatch(/resuming after epoch 1/);
    expect(resumedLog).not.toMatch(/epoch 1: train loss/);
    const c = card(INTERRUPTED);
    expect(c).toMatchObject({ epochs: 2, finished: true, kept_epoch: 2, teacher: { file: 'models/emotion-ensemble.onnx' } });
    expect(c.history.map((h) => h.epoch)).toEqual([1, 2]);
    expect(c.history[1]!.cpu_seconds).toBeGreaterThan(c.history[0]!.cpu_seconds);
    expect(c.training_cpu_hours).toBeGreaterThan(0);
  });

  it('ends where the uninterrupted run ends', () => {
    const a = card(INTERRUPTED);
    const b = card(STRAIGHT);
    expect(a.history.map((h) => h.train_loss)).toEqual(b.history.map((h) => h.train_loss));
    const pa = parity(INTERRUPTED).probabilities.flat();
    const pb = parity(STRAIGHT).probabilities.flat();
    expect(pa.length).toBe(16 * 7);
    let worst = 0;
    pa.forEach((p, i) => (worst = Math.max(worst, Math.abs(p - pb[i]!))));
    expect(worst).toBeLessThan(1e-6);
  });

  it('exports a graph that gives PyTorch\'s probabilities in onnxruntime-node', async () => {
    expect(existsSync(path.join(INTERRUPTED, 'curve.svg'))).toBe(true);
    const { worst } = await exportedParity(INTERRUPTED);
    expect(worst).toBeLessThan(1e-4);
  });
});
