/** One catalogue size in its own process, so that its resident memory is its own. */
import { Scorer } from '../processors/recommender/scorer.ts';
import { percentile, timeIt } from './machine.ts';

const dir = process.argv[2]!;
const ms = Number(process.argv[3] ?? 3000);
const before = process.memoryUsage().rss;
const scorer = await Scorer.open(dir, { providers: ['cpu'] });
const loaded = process.memoryUsage().rss;
const n = scorer.catalogue.size;
const user = (u: number) => ({ history: Array.from({ length: 50 }, (_, i) => (u * 7919 + i * 104729) % n), probabilities: [0.05, 0.02, 0.03, 0.6, 0.1, 0.1, 0.1] });
const rows: Array<Record<string, number | string>> = [];
for (const batch of [1, 16]) {
  const users = Array.from({ length: batch }, (_, u) => user(u));
  let scoreMs = 0;
  let rerankMs = 0;
  const r = await timeIt(async () => {
    const t0 = performance.now();
    const scored = await scorer.candidates(users);
    const t1 = performance.now();
    for (const s of scored) scorer.rerank(s.candidates, s.embedding, 0.7, 10);
    scoreMs += t1 - t0;
    rerankMs += performance.now() - t1;
  }, ms);
  rows.push({ batch, perUserMs: r.msPerCall / batch, p99BatchMs: percentile(r.samples, 0.99), scoreShare: scoreMs / (scoreMs + rerankMs), rerankPerUserMs: rerankMs / r.samples.length / batch });
}
console.log(JSON.stringify({ items: n, rssBeforeMiB: before / 2 ** 20, rssLoadedMiB: loaded / 2 ** 20, rssPeakMiB: process.memoryUsage().rss / 2 ** 20, rows }));
