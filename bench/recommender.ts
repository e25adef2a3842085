/**
 * Recommender benchmark: scoring (ONNX Bi-LSTM over the whole catalogue, top-100) plus
 * reranking, per user at batch 1 and batch 16, and the resident memory of a process with the
 * model loaded, for both scoring graphs (scoring.onnx, float32 throughout; scoring-int8.onnx,
 * int8 candidates with exact float32 rescoring, with how often it returns the same top-100),
 * for the trained model's catalogue and for untrained models of the same shape with 40,560
 * (our whole catalogue) and 210,000 tracks (the paper's size).
 * `npm run bench:recommender` (builds the untrained models with python3 the first time).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { recommenderOptions } from '../processors/index.ts';
import { copyPackedFolder, unpackedModelDir } from '../processors/recommender/unpack.ts';
import { machine, table } from './machine.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ms = process.argv.includes('--seconds') ? Number(process.argv[process.argv.indexOf('--seconds') + 1]) * 1000 : 3000;
const targets: Array<{ label: string; dir: string }> = [{ label: 'trained (committed) model', dir: recommenderOptions.modelDir.default }];
for (const items of [40560, 210000]) {
  const dir = path.join(ROOT, '.cache', 'bench-models', `items-${items}`);
  if (!existsSync(path.join(dir, 'scoring.onnx'))) {
    process.stderr.write(`building an untrained ${items}-track model of the serving shape in ${dir} ...\n`);
    execFileSync(existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', [path.join(ROOT, 'training', 'bench_model.py'), '--items', String(items), '--out', dir], { stdio: 'inherit' });
  }
  targets.push({ label: `untrained, ${items.toLocaleString('en')} tracks`, dir });
}
console.log(`recommender benchmark on ${machine()}; CPU execution provider\n`);
const rows: string[][] = [];
for (const t of targets) {
  if (!existsSync(path.join(t.dir, 'scoring-int8.onnx'))) {
    process.stderr.write(`building the two-stage graph of ${t.dir} ...\n`);
    execFileSync(existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', [path.join(ROOT, 'training', 'emotionmuse_train', 'two_stage.py'), t.dir], { stdio: 'inherit' });
  }
  for (const graph of ['exact', 'two-stage']) {
    const run = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'recommender-worker.ts'), t.dir, String(ms), graph], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (run.status !== 0) throw new Error(`${t.label} (${graph}): ${run.stderr}`);
    const r = JSON.parse(run.stdout.trim().split('\n').pop()!) as { items: number; graph: string; agreement?: number; rssLoadedMiB: number; rssPeakMiB: number; rows: Array<{ batch: number; perUserMs: number; p99BatchMs: number; rerankPerUserMs: number }> };
    for (const row of r.rows) {
      const same = r.agreement === undefined ? '(reference)' : `${(100 * r.agreement).toFixed(1)}%`;
      rows.push([t.label, r.items.toLocaleString('en'), r.graph, String(row.batch), row.perUserMs.toFixed(2), row.rerankPerUserMs.toFixed(3), row.p99BatchMs.toFixed(1), r.rssLoadedMiB.toFixed(0), r.rssPeakMiB.toFixed(0), same]);
    }
  }
}
// Each base model kind over 40,560 tracks: the neighbourhood models alone (tables scored in
// TypeScript, emotion.onnx for the embedding) and each as a hybrid with the two-stage graph.
const kindsDir = path.join(ROOT, '.cache', 'bench-models', 'items-40560');
if (!existsSync(path.join(`${kindsDir}-vsknn`, 'neighbours', 'params.json'))) {
  process.stderr.write(`building the neighbourhood models of synthetic playlists beside ${kindsDir} ...\n`);
  execFileSync(existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', [path.join(ROOT, 'training', 'bench_model.py'), '--items', '40560', '--out', kindsDir, '--neighbours'], { stdio: 'inherit' });
}
for (const kind of ['item-knn-recency', 'sknn', 'vsknn']) {
  for (const served of ['neighbourhood', 'hybrid']) {
    const run = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'recommender-worker.ts'), `${kindsDir}-${kind}`, String(ms), 'auto', served], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (run.status !== 0) throw new Error(`${kind} (${served}): ${run.stderr}`);
    const r = JSON.parse(run.stdout.trim().split('\n').pop()!) as { items: number; graph: string; rssLoadedMiB: number; rssPeakMiB: number; rows: Array<{ batch: number; perUserMs: number; p99BatchMs: number; rerankPerUserMs: number }> };
    for (const row of r.rows) rows.push([`${served === 'hybrid' ? `hybrid: ${kind} + graph` : kind} (synthetic playlists)`, r.items.toLocaleString('en'), r.graph, String(row.batch), row.perUserMs.toFixed(2), row.rerankPerUserMs.toFixed(3), row.p99BatchMs.toFixed(1), r.rssLoadedMiB.toFixed(0), r.rssPeakMiB.toFixed(0), '']);
  }
}
/** The first start of a packed model folder: weights.bin and music_emb.f32 rebuilt from weights.q8, in a fresh copy. */
function firstStartMs(dir: string): number | undefined {
  if (!existsSync(path.join(dir, 'packed.json'))) return undefined;
  const copy = mkdtempSync(path.join(tmpdir(), 'em-bench-unpack-'));
  try {
    copyPackedFolder(dir, copy);
    const started = performance.now();
    unpackedModelDir(copy);
    return performance.now() - started;
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}
const unpackMs = firstStartMs(recommenderOptions.modelDir.default);
if (unpackMs !== undefined) console.log(`first start of the committed (packed) model: weights rebuilt from weights.q8 in ${unpackMs.toFixed(0)} ms\n`);
console.log(table(['base model', 'tracks', 'graph', 'batch', 'score + rerank, ms per user', 'of which rerank, ms', 'p99 ms per batch', 'RSS loaded, MiB', 'RSS peak, MiB', 'same top-100 as scoring.onnx'], rows));
