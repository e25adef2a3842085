import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The training toolkit's smoke export on listening logs (training/tests/fixtures/playlists-smoke.csv):
 * a sequence graph, a neighbourhood model's tables and the emotion path in one folder. CI's
 * training step writes it; where it is missing or predates the neighbourhood export, the smoke run
 * makes it here (about 20 s), and a failure says why.
 */
export function logsSmokeModel(): string {
  const dir = path.join(ROOT, '.cache', 'recommender-logs-smoke');
  if (!existsSync(path.join(dir, 'neighbours', 'parity.json')) || !existsSync(path.join(dir, 'emotion.onnx'))) {
    const r = spawnSync('bash', ['training/run.sh', '--size', 'smoke', '--interactions', 'training/tests/fixtures/playlists-smoke.csv', '--format', 'csv', '--pack', '--out', dir], { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`the training smoke run on listening logs failed (bash training/run.sh --size smoke --interactions training/tests/fixtures/playlists-smoke.csv): ${r.stderr.slice(-2000)}`);
  }
  return dir;
}
