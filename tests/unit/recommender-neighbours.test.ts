import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fuse, NeighbourModel, type Candidate } from '../../processors/recommender/neighbours.ts';
import { Scorer } from '../../processors/recommender/scorer.ts';
import { copyPackedFolder } from '../../processors/recommender/unpack.ts';
import { logsSmokeModel } from '../support/recommender-models.ts';

interface Case {
  history: number[];
  probabilities: number[];
  top_ids: number[];
  top_scores: number[];
  hybrid_ids?: number[];
  hybrid_scores?: number[];
}

/** Training's input (track + 1, left-padded, newest last) as the recommender holds it: newest first. */
const newestFirst = (history: number[]) => history.filter((v) => v > 0).map((v) => v - 1).reverse();

/** Same scores within 1e-5, and the same track at every rank whose score is not within 1e-5 of a neighbour's (float32 against float64 sums). */
function expectSameList(got: readonly Candidate[], ids: number[], scores: number[]) {
  expect(got).toHaveLength(ids.length);
  got.forEach((c, r) => {
    expect(Math.abs(c.preference - scores[r]!), `score at rank ${r}`).toBeLessThanOrEqual(1e-5);
    const tied = (r > 0 && Math.abs(scores[r]! - scores[r - 1]!) <= 1e-5) || (r + 1 < scores.length && Math.abs(scores[r]! - scores[r + 1]!) <= 1e-5);
    if (!tied) expect(c.index, `track at rank ${r}`).toBe(ids[r]);
  });
}

describe('neighbourhood models scored from their exported tables (training smoke export on listening logs)', () => {
  const dir = logsSmokeModel();
  const params = JSON.parse(readFileSync(path.join(dir, 'neighbours', 'params.json'), 'utf8')) as { kind: string };
  const { cases } = JSON.parse(readFileSync(path.join(dir, 'neighbours', 'parity.json'), 'utf8')) as { cases: Case[] };

  it(`gives the top-100 and scores that PyTorch gave (${params.kind})`, () => {
    const model = NeighbourModel.open(dir)!;
    expect(model.params.kind).toBe(params.kind);
    expect(cases.length).toBeGreaterThanOrEqual(3);
    for (const c of cases) expectSameList(model.top(newestFirst(c.history)), c.top_ids, c.top_scores);
  });

  it('never recommends a listened track, ranks best first, and a history changes the list', () => {
    const model = NeighbourModel.open(dir)!;
    const history = newestFirst(cases[0]!.history);
    const top = model.top(history);
    for (const c of top) expect(history).not.toContain(c.index);
    for (let r = 1; r < top.length; r++) expect(top[r]!.preference).toBeLessThanOrEqual(top[r - 1]!.preference);
    expect(model.top([history[0]!]).map((c) => c.index)).not.toEqual(top.map((c) => c.index));
  });

  it('serves the hybrid as training scored it: the union of both lists, fused with the trained weight', async () => {
    const card = JSON.parse(readFileSync(path.join(dir, 'card.json'), 'utf8')) as { serving: { kind: string; weight: number | null } };
    const scorer = await Scorer.open(dir, { providers: ['cpu'], served: 'hybrid' });
    expect(scorer.served).toBe('hybrid');
    for (const c of cases) {
      const [got] = await scorer.candidates([{ history: newestFirst(c.history), probabilities: c.probabilities }]);
      expect(c.hybrid_ids, 'the export holds the hybrid\'s parity cases (training tunes it whenever it trains both kinds)').toBeDefined();
      expectSameList(got!.candidates, c.hybrid_ids!, c.hybrid_scores!);
      for (const x of got!.candidates) expect(newestFirst(c.history)).not.toContain(x.index);
    }
    expect(card.serving.weight).toBeGreaterThan(0);
  });
});

describe('a packed export copied elsewhere (as into the temporary folder when the model folder is read-only)', () => {
  it('keeps its neighbourhood model and serves it with the same lists', async () => {
    const dir = logsSmokeModel();
    const copy = mkdtempSync(path.join(tmpdir(), 'em-neighbours-'));
    try {
      copyPackedFolder(dir, copy);
      const history = [3, 1, 4];
      const [a, b] = await Promise.all([dir, copy].map((d) => Scorer.open(d, { providers: ['cpu'], served: 'neighbourhood' })));
      const [x] = await a!.candidates([{ history, probabilities: [0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1] }]);
      const [y] = await b!.candidates([{ history, probabilities: [0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1] }]);
      expect(y!.candidates).toEqual(x!.candidates);
      expect(Array.from(y!.embedding)).toEqual(Array.from(x!.embedding));
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe('fuse', () => {
  it('normalises each list to [0, 1], scores a missing track 0 in that list, and weighs the two', () => {
    const a: Candidate[] = [{ index: 1, preference: 10 }, { index: 2, preference: 6 }, { index: 3, preference: 2 }];
    const b: Candidate[] = [{ index: 3, preference: -1 }, { index: 4, preference: -3 }];
    const fused = fuse(a, b, 0.25);
    expect(fused.map((c) => c.index)).toEqual([1, 2, 3, 4]);
    expect(fused.map((c) => c.preference)).toEqual([0.75, 0.375, 0.25, 0]);
    expect(fuse(a, b, 1).map((c) => c.index).slice(0, 1)).toEqual([3]);
  });
});
