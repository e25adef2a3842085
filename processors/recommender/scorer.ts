import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../runtime/log.ts';
import { openSession, ort, type ExecutionProvider, type ModelSession } from '../../runtime/onnx.ts';
import { valenceArousal } from '../../schemas/emotions.ts';
import { loadCatalogue, type TrackCatalogue } from './catalogue.ts';
import { fuse, NeighbourModel, type Candidate } from './neighbours.ts';
import { unpackedModelDir } from './unpack.ts';

export type { Candidate } from './neighbours.ts';

export const HISTORY = 50;

export const SERVED_MODELS = ['auto', 'sequence', 'neighbourhood', 'hybrid'] as const;
export type ServedModel = (typeof SERVED_MODELS)[number];

/** What training chose to serve (card.json's `serving`; absent in exports from before it). */
interface CardServing {
  readonly model: string;
  readonly kind: Exclude<ServedModel, 'auto'>;
  readonly weight?: number | null;
  readonly sequence?: string | null;
  readonly neighbourhood?: string | null;
}

export interface ScoredList {
  readonly items: ReadonlyArray<{ index: number; finalScore: number; preferenceScore: number; emotionScore: number }>;
  readonly coldStart: boolean;
  readonly timings: { scoreMs: number; rerankMs: number };
}

export const SCORING_GRAPHS = ['auto', 'exact', 'two-stage'] as const;
export type ScoringGraph = (typeof SCORING_GRAPHS)[number];

/**
 * Which graph of a model folder to serve. `exact`: scoring.onnx, float32 over the whole
 * catalogue. `two-stage`: scoring-int8.onnx (training/emotionmuse_train/two_stage.py), the same
 * model with 7-bit candidates over the catalogue and exact float32 rescoring of the best 400,
 * same inputs and outputs. `auto`: the two-stage graph where the folder has one.
 */
export function scoringFile(dir: string, graph: ScoringGraph): string {
  const twoStage = existsSync(path.join(dir, 'scoring-int8.onnx'));
  if (graph === 'two-stage' && !twoStage) throw new Error(`${dir} has no scoring-int8.onnx; build it with: /usr/bin/python3 training/emotionmuse_train/two_stage.py ${dir}`);
  return graph === 'exact' || !twoStage ? 'scoring.onnx' : 'scoring-int8.onnx';
}

/**
 * The exported scoring model and the catalogue beside it: history + smoothed probabilities ->
 * top-100 candidates with preference scores and the emotion embedding (ONNX Runtime), then the
 * paper's reranking: final = lambda * preference + (1 - lambda) * emotion compatibility.
 */
export class Scorer {
  private constructor(
    private readonly session: ModelSession | undefined,
    readonly catalogue: TrackCatalogue,
    readonly modelVersion: string,
    readonly provider: ExecutionProvider,
    /** The graph file in use: scoring.onnx (float32 throughout), scoring-int8.onnx (two-stage), or none (a neighbourhood model alone). */
    readonly graphFile: string,
    /** The base model served: the sequence graph, the neighbourhood tables, or their hybrid. */
    readonly served: Exclude<ServedModel, 'auto'>,
    private readonly neighbours: NeighbourModel | undefined,
    private readonly emotion: ModelSession | undefined,
    private readonly hybridWeight: number,
  ) {}

  /**
   * `served`: which base model gives the candidates; `auto` (default) is what training chose on
   * validation (card.json's `serving`), the sequence graph for exports that predate the choice.
   */
  static async open(modelDir: string, options: { providers: readonly ExecutionProvider[]; threads?: number; graph?: ScoringGraph; served?: ServedModel; logger?: Logger }): Promise<Scorer> {
    const dir = unpackedModelDir(modelDir);
    const card = JSON.parse(readFileSync(path.join(dir, 'card.json'), 'utf8')) as { version: string; serving?: CardServing | null };
    const served = !options.served || options.served === 'auto' ? (card.serving?.kind ?? 'sequence') : options.served;
    const neighbours = served === 'sequence' ? undefined : NeighbourModel.open(dir);
    if (served !== 'sequence' && !neighbours) throw new Error(`${dir} has no neighbourhood model (neighbours/params.json) to serve as ${served}; train one with: npm run train`);
    let session: ModelSession | undefined;
    let provider: ExecutionProvider = 'cpu';
    let file = 'none';
    if (served !== 'neighbourhood') {
      file = scoringFile(dir, options.graph ?? 'auto');
      ({ session, provider } = await openSession(path.join(dir, file), options));
    }
    // A neighbourhood model alone takes its emotion embedding from the V-A model's emotion path.
    const emotionFile = path.join(dir, 'emotion.onnx');
    const emotion = served === 'neighbourhood' && existsSync(emotionFile) ? (await openSession(emotionFile, options)).session : undefined;
    if (served === 'neighbourhood' && !emotion) options.logger?.warn('the model folder has no emotion.onnx: every track is equally compatible with every emotion, so reranking keeps the preference order', { dir });
    const weight = typeof card.serving?.weight === 'number' ? card.serving.weight : 0.5;
    options.logger?.info('recommender scoring', { served, graph: file, neighbourhood: neighbours?.params.kind, ...(served === 'hybrid' ? { weight } : {}) });
    return new Scorer(session, loadCatalogue(dir), card.version, provider, file, served, neighbours, emotion, weight);
  }

  /** Top-100 candidates and emotion embeddings for several users at once, from the served base model. */
  async candidates(requests: ReadonlyArray<{ history: readonly number[]; probabilities: readonly number[] }>): Promise<Array<{ candidates: Candidate[]; embedding: Float32Array }>> {
    if (this.served === 'neighbourhood') {
      const embeddings = await this.emotionEmbeddings(requests.map((r) => r.probabilities));
      return requests.map((r, b) => ({ candidates: this.neighbours!.top(r.history), embedding: embeddings[b]! }));
    }
    const sequence = await this.sequenceCandidates(requests);
    if (this.served === 'sequence') return sequence;
    return sequence.map((s, b) => ({ candidates: fuse(this.neighbours!.top(requests[b]!.history), s.candidates, this.hybridWeight), embedding: s.embedding }));
  }

  private async emotionEmbeddings(probabilities: ReadonlyArray<readonly number[]>): Promise<Float32Array[]> {
    if (!this.emotion) return probabilities.map(() => new Float32Array(64));
    const probs = new Float32Array(probabilities.length * 7);
    probabilities.forEach((p, b) => probs.set(p.slice(0, 7), b * 7));
    const out = await this.emotion.run({ probabilities: new ort.Tensor('float32', probs, [probabilities.length, 7]) });
    const emb = out.emotion_embedding!.data as Float32Array;
    return probabilities.map((_p, b) => emb.slice(b * 64, (b + 1) * 64));
  }

  private async sequenceCandidates(requests: ReadonlyArray<{ history: readonly number[]; probabilities: readonly number[] }>): Promise<Array<{ candidates: Candidate[]; embedding: Float32Array }>> {
    const n = requests.length;
    const history = new BigInt64Array(n * HISTORY);
    const mask = new Float32Array(n * HISTORY);
    const probs = new Float32Array(n * 7);
    requests.forEach((r, b) => {
      // Most recent last, left-padded: the layout the model was trained on.
      const recent = r.history.slice(0, HISTORY).reverse();
      const start = HISTORY - recent.length;
      recent.forEach((index, k) => {
        history[b * HISTORY + start + k] = BigInt(index + 1);
        mask[b * HISTORY + start + k] = 1;
      });
      probs.set(r.probabilities.slice(0, 7), b * 7);
    });
    const out = await this.session!.run({
      history: new ort.Tensor('int64', history, [n, HISTORY]),
      mask: new ort.Tensor('float32', mask, [n, HISTORY]),
      probabilities: new ort.Tensor('float32', probs, [n, 7]),
    });
    const ids = out.top_ids!.data as BigInt64Array;
    const scores = out.top_scores!.data as Float32Array;
    const emb = out.emotion_embedding!.data as Float32Array;
    const k = out.top_ids!.dims[1]!;
    return requests.map((_r, b) => ({
      candidates: Array.from({ length: k }, (_v, i) => ({ index: Number(ids[b * k + i]), preference: scores[b * k + i]! })),
      embedding: emb.slice(b * 64, (b + 1) * 64),
    }));
  }

  /** Emotion compatibility in [0, 1]: (1 + cosine(track's music emotion embedding, emotion embedding)) / 2. */
  compatibility(index: number, embedding: Float32Array): number {
    let dot = 0;
    let norm = 0;
    for (let k = 0; k < 64; k++) {
      dot += this.catalogue.embeddings[index * 64 + k]! * embedding[k]!;
      norm += embedding[k]! * embedding[k]!;
    }
    return (1 + dot / (Math.sqrt(norm) || 1)) / 2;
  }

  /** final = lambda * preference (min-max over the candidates) + (1 - lambda) * compatibility; the best `k`. */
  rerank(candidates: readonly Candidate[], embedding: Float32Array, lambda: number, k: number): ScoredList['items'] {
    let lo = Infinity;
    let hi = -Infinity;
    for (const c of candidates) {
      lo = Math.min(lo, c.preference);
      hi = Math.max(hi, c.preference);
    }
    const span = hi - lo || 1;
    return candidates
      .map((c) => {
        const preferenceScore = (c.preference - lo) / span;
        const emotionScore = this.compatibility(c.index, embedding);
        return { index: c.index, preferenceScore, emotionScore, finalScore: lambda * preferenceScore + (1 - lambda) * emotionScore };
      })
      .sort((a, b) => b.finalScore - a.finalScore || a.index - b.index)
      .slice(0, k);
  }

  /**
   * For a user with no history: valence-arousal proximity to the emotion (Table II applied to
   * the probabilities) with a popularity prior, over the whole catalogue.
   */
  coldStart(probabilities: readonly number[], k: number, sigma = 0.15, popularityWeight = 0.1): ScoredList['items'] {
    const { valence, arousal } = valenceArousal(probabilities);
    const { catalogue } = this;
    let maxPopularity = 0;
    for (let i = 0; i < catalogue.size; i++) maxPopularity = Math.max(maxPopularity, catalogue.popularity[i]!);
    const best: Array<{ index: number; emotionScore: number; preferenceScore: number; finalScore: number }> = [];
    for (let i = 0; i < catalogue.size; i++) {
      const dv = catalogue.valence[i]! - valence;
      const da = catalogue.arousal[i]! - arousal;
      const emotionScore = Math.exp(-(dv * dv + da * da) / (2 * sigma * sigma));
      const preferenceScore = maxPopularity > 0 ? catalogue.popularity[i]! / maxPopularity : 0;
      const finalScore = (1 - popularityWeight) * emotionScore + popularityWeight * preferenceScore;
      if (best.length < k || finalScore > best[best.length - 1]!.finalScore) {
        best.push({ index: i, emotionScore, preferenceScore, finalScore });
        best.sort((a, b) => b.finalScore - a.finalScore || a.index - b.index);
        if (best.length > k) best.pop();
      }
    }
    return best;
  }
}
