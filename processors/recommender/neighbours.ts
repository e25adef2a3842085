import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** A track with its preference score from the base model. */
export interface Candidate {
  readonly index: number;
  readonly preference: number;
}

/**
 * A neighbourhood recommender scored from the tables that training exports to `neighbours/`
 * (training/emotionmuse_train/knn.py, `export_tables`), without ONNX:
 *
 * - `item-knn-recency`: each track's best neighbours and similarities; a track's score is the sum
 *   over the last `recent` listens h of decay ** (h's distance from the newest) * sim(h, track).
 * - `sknn` / `vsknn`: the training sequences' track sets; the `k` sequences most similar to the
 *   history (cosine of the weighted track sets, a shared track also weighted by its idf) vote
 *   for their tracks with their similarity.
 *
 * Every score gets 1e-6 * popularity as training's tie-break; listened tracks are excluded.
 */
export interface NeighbourParams {
  readonly kind: 'item-knn-recency' | 'sknn' | 'vsknn';
  readonly items: number;
  readonly recent: number;
  readonly decay?: number;
  readonly neighbours?: number;
  readonly k?: number;
}

const TIE_BREAK = 1e-6;

function readTable<T extends Int32Array | Float32Array>(dir: string, name: string, make: (b: ArrayBuffer) => T, expected?: number): T {
  const file = path.join(dir, name);
  const buf = readFileSync(file);
  // little-endian on disk; copy into an aligned buffer
  const copy = new Uint8Array(buf.byteLength);
  copy.set(buf);
  const table = make(copy.buffer);
  if (expected !== undefined && table.length !== expected) throw new Error(`${file}: ${table.length} values, expected ${expected}`);
  return table;
}

export class NeighbourModel {
  private readonly popularity: Float32Array;
  /** Tracks by popularity, best first (ties: lower index): the fill when few tracks are touched. */
  private readonly byPopularity: Int32Array;
  private readonly neighbourIds?: Int32Array;
  private readonly neighbourSims?: Float32Array;
  private readonly sessionOffsets?: Int32Array;
  private readonly sessionTracks?: Int32Array;
  private readonly idf?: Float32Array;
  /** Item -> the sequences holding it (CSR). */
  private readonly holderOffsets?: Int32Array;
  private readonly holders?: Int32Array;

  private constructor(readonly dir: string, readonly params: NeighbourParams) {
    const n = params.items;
    this.popularity = readTable(dir, 'popularity.f32', (b) => new Float32Array(b), n);
    this.byPopularity = Int32Array.from(Array.from({ length: n }, (_v, i) => i).sort((a, b) => this.popularity[b]! - this.popularity[a]! || a - b));
    if (params.kind === 'item-knn-recency') {
      const k = params.neighbours!;
      this.neighbourIds = readTable(dir, 'neighbour_ids.i32', (b) => new Int32Array(b), n * k);
      this.neighbourSims = readTable(dir, 'neighbour_sims.f32', (b) => new Float32Array(b), n * k);
    } else {
      this.sessionOffsets = readTable(dir, 'session_offsets.i32', (b) => new Int32Array(b));
      this.sessionTracks = readTable(dir, 'session_tracks.i32', (b) => new Int32Array(b), this.sessionOffsets[this.sessionOffsets.length - 1]);
      this.idf = readTable(dir, 'idf.f32', (b) => new Float32Array(b), n);
      const counts = new Int32Array(n + 1);
      for (const t of this.sessionTracks) counts[t + 1]!++;
      for (let i = 0; i < n; i++) counts[i + 1]! += counts[i]!;
      const holders = new Int32Array(this.sessionTracks.length);
      const fill = counts.slice(0, n);
      for (let s = 0; s + 1 < this.sessionOffsets.length; s++) {
        for (let j = this.sessionOffsets[s]!; j < this.sessionOffsets[s + 1]!; j++) holders[fill[this.sessionTracks[j]!]!++] = s;
      }
      this.holderOffsets = counts;
      this.holders = holders;
    }
  }

  /** The model in `<modelDir>/neighbours`, or undefined when the folder has none. */
  static open(modelDir: string): NeighbourModel | undefined {
    const dir = path.join(modelDir, 'neighbours');
    if (!existsSync(path.join(dir, 'params.json'))) return undefined;
    const params = JSON.parse(readFileSync(path.join(dir, 'params.json'), 'utf8')) as NeighbourParams;
    if (!['item-knn-recency', 'sknn', 'vsknn'].includes(params.kind)) throw new Error(`${dir}/params.json: unknown kind ${String(params.kind)}`);
    return new NeighbourModel(dir, params);
  }

  // Scratch buffers, reused by every call (the recommender scores one user at a time per process).
  private scores?: Float64Array;
  private touched?: Int32Array;
  private sims?: Float64Array;
  private touchedSessions?: Int32Array;

  /** The best `k` tracks outside the history with their scores, best first (ties: lower index). `history`: most recent first. */
  top(history: readonly number[], k = 100): Candidate[] {
    const n = this.params.items;
    this.scores ??= new Float64Array(n);
    this.touched ??= new Int32Array(n);
    const count = this.params.kind === 'item-knn-recency' ? this.itemScores(history) : this.sessionScores(history);
    const scores = this.scores;
    const listened = new Set(history.slice(0, 50));
    const found: Candidate[] = [];
    for (let t = 0; t < count; t++) {
      const index = this.touched[t]!;
      if (!listened.has(index)) found.push({ index, preference: scores[index]! + TIE_BREAK * this.popularity[index]! });
    }
    found.sort((a, b) => b.preference - a.preference || a.index - b.index);
    const out = found.slice(0, k);
    // Too few touched tracks: the rest by popularity alone, as training's tie-break ranks them.
    for (let r = 0; out.length < k && r < this.byPopularity.length; r++) {
      const index = this.byPopularity[r]!;
      if (!listened.has(index) && scores[index] === 0) out.push({ index, preference: TIE_BREAK * this.popularity[index]! });
    }
    for (let t = 0; t < count; t++) scores[this.touched[t]!] = 0;
    return out;
  }

  private weights(history: readonly number[]): Array<[number, number]> {
    const decay = this.params.decay ?? 1;
    const recent = Math.min(this.params.recent, 50, history.length);
    return Array.from({ length: recent }, (_v, d) => [history[d]!, decay ** d] as [number, number]);
  }

  /** Adds `value` to a track's score, remembering the tracks touched; returns the new count. */
  private add(index: number, value: number, count: number): number {
    const scores = this.scores!;
    if (scores[index] === 0) this.touched![count++] = index;
    scores[index]! += value;
    return count;
  }

  private itemScores(history: readonly number[]): number {
    const k = this.params.neighbours!;
    let count = 0;
    for (const [item, w] of this.weights(history)) {
      for (let j = item * k; j < (item + 1) * k; j++) {
        const other = this.neighbourIds![j]!;
        if (other < 0) break;
        count = this.add(other, w * this.neighbourSims![j]!, count);
      }
    }
    return count;
  }

  private sessionScores(history: readonly number[]): number {
    const nSessions = this.sessionOffsets!.length - 1;
    this.sims ??= new Float64Array(nSessions);
    this.touchedSessions ??= new Int32Array(nSessions);
    const sims = this.sims;
    // A track listened twice counts once, at its newest listen's weight.
    const weight = new Map<number, number>();
    for (const [item, w] of this.weights(history)) if (!weight.has(item)) weight.set(item, w * this.idf![item]!);
    let touched = 0;
    for (const [item, w] of weight) {
      if (w === 0) continue; // a track every sequence holds (idf 0) makes no neighbour
      for (let j = this.holderOffsets![item]!; j < this.holderOffsets![item + 1]!; j++) {
        const s = this.holders![j]!;
        if (sims[s] === 0) this.touchedSessions![touched++] = s;
        sims[s]! += w;
      }
    }
    const norm = Math.sqrt(Math.max(weight.size, 1));
    const ranked: Array<[number, number]> = new Array(touched);
    for (let t = 0; t < touched; t++) {
      const s = this.touchedSessions![t]!;
      ranked[t] = [s, sims[s]! / norm / Math.sqrt(Math.max(this.sessionOffsets![s + 1]! - this.sessionOffsets![s]!, 1))];
      sims[s] = 0;
    }
    ranked.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    let count = 0;
    for (const [s, sim] of ranked.slice(0, this.params.k)) {
      for (let j = this.sessionOffsets![s]!; j < this.sessionOffsets![s + 1]!; j++) count = this.add(this.sessionTracks![j]!, sim, count);
    }
    return count;
  }
}

/** min-max over a list's scores, 0 for all when they are equal (training's `hybrid.minmax`). */
function normalised(list: readonly Candidate[]): Map<number, number> {
  let lo = Infinity;
  let hi = -Infinity;
  for (const c of list) {
    lo = Math.min(lo, c.preference);
    hi = Math.max(hi, c.preference);
  }
  const span = hi - lo > 0 ? hi - lo : 1;
  return new Map(list.map((c) => [c.index, (c.preference - lo) / span]));
}

/**
 * The hybrid (training/emotionmuse_train/hybrid.py): the union of the neighbourhood model's and
 * the sequence model's candidates, ranked by (1 - weight) * neighbourhood + weight * sequence,
 * each list min-max normalised, a track missing from a list scoring 0 there; the best `k`.
 */
export function fuse(neighbourhood: readonly Candidate[], sequence: readonly Candidate[], weight: number, k = 100): Candidate[] {
  const a = normalised(neighbourhood);
  const b = normalised(sequence);
  const union = new Set([...a.keys(), ...b.keys()]);
  return [...union]
    .map((index) => ({ index, preference: (1 - weight) * (a.get(index) ?? 0) + weight * (b.get(index) ?? 0) }))
    .sort((x, y) => y.preference - x.preference || x.index - y.index)
    .slice(0, k);
}
