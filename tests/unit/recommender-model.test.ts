import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { recommenderOptions } from '../../processors/index.ts';
import { Scorer, scoringFile } from '../../processors/recommender/scorer.ts';
import { unpackedModelDir } from '../../processors/recommender/unpack.ts';
import { ort } from '../../runtime/onnx.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// The committed (packed) model, and those the CI's training smoke runs export (when present): simulated users, and real-log format (training/tests/fixtures/playlists-smoke.csv).
const MODELS = [recommenderOptions.modelDir.default, path.join(ROOT, '.cache', 'recommender-smoke'), path.join(ROOT, '.cache', 'recommender-logs-smoke')].filter((d, i) => i === 0 || existsSync(path.join(d, 'parity.json')));

interface ParityCase {
  history: number[];
  mask: number[];
  probabilities: number[];
  top_ids: number[];
  top_scores: number[];
  emotion_embedding: number[];
}

// Every exported model has scoring.onnx; its two-stage graph (scoring-int8.onnx) is held to the same outputs.
const GRAPHS = MODELS.flatMap((dir) => ['scoring.onnx', 'scoring-int8.onnx'].filter((f) => f === 'scoring.onnx' || existsSync(path.join(dir, f))).map((file) => ({ dir, file })));

describe.each(GRAPHS)('exported recommender $dir/$file', ({ dir, file }) => {
  it('gives in onnxruntime-node the scores and top-100 that PyTorch gave (max abs difference <= 1e-4)', async () => {
    const { cases } = JSON.parse(readFileSync(path.join(dir, 'parity.json'), 'utf8')) as { cases: ParityCase[] };
    // A packed folder (the served model) gets its float32 weights rebuilt first, as the recommender does.
    const session = await ort.InferenceSession.create(path.join(unpackedModelDir(dir), file));
    expect(cases.length).toBeGreaterThanOrEqual(3);
    for (const c of cases) {
      const out = await session.run({
        history: new ort.Tensor('int64', BigInt64Array.from(c.history.map(BigInt)), [1, 50]),
        mask: new ort.Tensor('float32', Float32Array.from(c.mask), [1, 50]),
        probabilities: new ort.Tensor('float32', Float32Array.from(c.probabilities), [1, 7]),
      });
      expect(Array.from(out.top_ids!.data as BigInt64Array, Number)).toEqual(c.top_ids);
      const scores = out.top_scores!.data as Float32Array;
      const emb = out.emotion_embedding!.data as Float32Array;
      expect(Math.max(...c.top_scores.map((v, i) => Math.abs(v - scores[i]!)))).toBeLessThanOrEqual(1e-4);
      expect(Math.max(...c.emotion_embedding.map((v, i) => Math.abs(v - emb[i]!)))).toBeLessThanOrEqual(1e-4);
    }
  });

  it('scores users in a batch exactly as one by one, and never recommends a listened track', async () => {
    const scorer = await Scorer.open(dir, { providers: ['cpu'], graph: file === 'scoring.onnx' ? 'exact' : 'two-stage', served: 'sequence' });
    expect(scorer.graphFile).toBe(file);
    const n = scorer.catalogue.size;
    const users = [
      { history: Array.from({ length: 50 }, (_, i) => (i * 37) % n), probabilities: [0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.1] },
      { history: [3, 9], probabilities: [0.02, 0.02, 0.02, 0.02, 0.86, 0.03, 0.03] },
    ];
    const batched = await scorer.candidates(users);
    for (const [i, u] of users.entries()) {
      const [alone] = await scorer.candidates([u]);
      expect(batched[i]!.candidates.map((c) => c.index)).toEqual(alone!.candidates.map((c) => c.index));
      for (const c of alone!.candidates) expect(u.history).not.toContain(c.index);
      const list = scorer.rerank(alone!.candidates, alone!.embedding, 0.7, 10);
      expect(list).toHaveLength(10);
      for (const it of list) {
        expect(it.emotionScore).toBeGreaterThanOrEqual(0);
        expect(it.emotionScore).toBeLessThanOrEqual(1);
        expect(it.finalScore).toBeCloseTo(0.7 * it.preferenceScore + 0.3 * it.emotionScore, 6);
      }
    }
  });
});

describe.each(MODELS.filter((dir) => existsSync(path.join(dir, 'scoring-int8.onnx'))))('two-stage graph of %s', (dir) => {
  it('returns the exact graph\'s top-100 and scores for 300 varied users', async () => {
    const exact = await Scorer.open(dir, { providers: ['cpu'], graph: 'exact', served: 'sequence' });
    const fast = await Scorer.open(dir, { providers: ['cpu'], graph: 'two-stage', served: 'sequence' });
    const n = exact.catalogue.size;
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const users = Array.from({ length: 300 }, () => {
      const length = 1 + Math.floor(rand() * 50);
      const history = [...new Set(Array.from({ length }, () => Math.floor(rand() * n)))];
      const raw = Array.from({ length: 7 }, () => rand() ** 3);
      const sum = raw.reduce((a, b) => a + b, 0);
      return { history, probabilities: raw.map((v) => v / sum) };
    });
    for (let i = 0; i < users.length; i += 25) {
      const batch = users.slice(i, i + 25);
      const [a, b] = [await exact.candidates(batch), await fast.candidates(batch)];
      for (const [u, x] of a.entries()) {
        const y = b[u]!;
        expect(y.candidates).toHaveLength(x.candidates.length);
        expect(Math.max(...x.candidates.map((c, k) => Math.abs(c.preference - y.candidates[k]!.preference)))).toBeLessThanOrEqual(1e-4);
        // The same track at every rank, except where two tracks tie (scores within 1e-5, as a
        // smoke-trained model's can): top-k may then list them in either order.
        y.candidates.forEach((c, k) => {
          if (c.index !== x.candidates[k]!.index) expect(Math.abs(c.preference - x.candidates[k]!.preference), `rank ${k}`).toBeLessThanOrEqual(1e-5);
        });
        const differing = y.candidates.filter((c, k) => c.index !== x.candidates[k]!.index).length;
        expect(differing).toBeLessThanOrEqual(4);
      }
    }
  });
});

describe('scoring graph choice', () => {
  it('serves the two-stage graph where the folder has one, and says how to build it where it does not', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'em-graph-'));
    try {
      writeFileSync(path.join(dir, 'scoring.onnx'), '');
      expect(scoringFile(dir, 'auto')).toBe('scoring.onnx');
      expect(scoringFile(dir, 'exact')).toBe('scoring.onnx');
      expect(() => scoringFile(dir, 'two-stage')).toThrow(/no scoring-int8\.onnx; build it with: .*two_stage\.py/);
      writeFileSync(path.join(dir, 'scoring-int8.onnx'), '');
      expect(scoringFile(dir, 'auto')).toBe('scoring-int8.onnx');
      expect(scoringFile(dir, 'two-stage')).toBe('scoring-int8.onnx');
      expect(scoringFile(dir, 'exact')).toBe('scoring.onnx');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
