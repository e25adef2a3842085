/** One catalogue size and scoring graph in its own process, so that its resident memory is its own. */
import { Scorer, type ScoringGraph, type ServedModel } from '../processors/recommender/scorer.ts';
import { percentile, timeIt } from './machine.ts';

const dir = process.argv[2]!;
const ms = Number(process.argv[3] ?? 3000);
const graph = (process.argv[4] ?? 'exact') as ScoringGraph;
const served = (process.argv[5] ?? 'sequence') as ServedModel;
const before = process.memoryUsage().rss;
const scorer = await Scorer.open(dir, { providers: ['cpu'], graph, served });
const loaded = process.memoryUsage().rss;
const n = scorer.catalogue.size;
const user = (u: number) => ({
  history: Array.from({ length: 1 + ((u * 13) % 50) }, (_, i) => (u * 7919 + i * 104729) % n),
  probabilities: [0.05, 0.02, 0.03, 0.6, 0.1, 0.1, 0.1].map((p, k) => (k === u % 7 ? p + 0.5 : p) / 1.5),
});
const rows: Array<Record<string, number | string>> = [];
for (const batch of [1, 16]) {
  const users = Array.from({ length: batch }, (_, u) => user(u));
  let rerankMs = 0;
  const r = await timeIt(async () => {
    const scored = await scorer.candidates(users);
    const t1 = performance.now();
    for (const s of scored) scorer.rerank(s.candidates, s.embedding, 0.7, 10);
    rerankMs += performance.now() - t1;
  }, ms);
  rows.push({ batch, perUserMs: r.msPerCall / batch, p99BatchMs: percentile(r.samples, 0.99), rerankPerUserMs: rerankMs / r.samples.length / batch });
}
const peak = process.memoryUsage().rss;
// How often the two-stage graph returns the float32 graph's top-100: the same tracks, with scores
// within 1e-4 position by position (tracks whose scores differ by float rounding may swap places).
let agreement: number | undefined;
if (served === 'sequence' && scorer.graphFile !== 'scoring.onnx') {
  const exact = await Scorer.open(dir, { providers: ['cpu'], graph: 'exact' });
  const users = Array.from({ length: 200 }, (_, u) => user(1000 + u));
  let same = 0;
  for (let i = 0; i < users.length; i += 20) {
    const [a, b] = [await exact.candidates(users.slice(i, i + 20)), await scorer.candidates(users.slice(i, i + 20))];
    a.forEach((x, k) => {
      const y = b[k]!.candidates;
      const sameSet = new Set(x.candidates.map((c) => c.index)).size === new Set([...x.candidates, ...y].map((c) => c.index)).size;
      if (sameSet && x.candidates.every((c, i) => Math.abs(c.preference - y[i]!.preference) <= 1e-4)) same++;
    });
  }
  agreement = same / users.length;
}
console.log(JSON.stringify({ items: n, graph: scorer.graphFile, served: scorer.served, rssBeforeMiB: before / 2 ** 20, rssLoadedMiB: loaded / 2 ** 20, rssPeakMiB: peak / 2 ** 20, agreement, rows }));
