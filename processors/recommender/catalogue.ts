import { readFileSync } from 'node:fs';
import path from 'node:path';
import { unpackedModelDir } from './unpack.ts';

/** The tracks a recommender model scores, with what reranking and cold start need. */
export interface TrackCatalogue {
  readonly ids: readonly string[];
  readonly titles: readonly string[];
  readonly artists: readonly string[];
  readonly valence: Float32Array;
  readonly arousal: Float32Array;
  readonly popularity: Float32Array;
  /** Unit-length 64-d music emotion embeddings, row-major. */
  readonly embeddings: Float32Array;
  readonly indexOf: ReadonlyMap<string, number>;
  readonly size: number;
}

/** Reads tracks.tsv and music_emb.f32 of an exported model folder (unpacked first if packed). */
export function loadCatalogue(modelDir: string): TrackCatalogue {
  const dir = unpackedModelDir(modelDir);
  const lines = readFileSync(path.join(dir, 'tracks.tsv'), 'utf8').trimEnd().split('\n');
  const header = lines.shift()!.split('\t');
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`${dir}/tracks.tsv has no column ${name}`);
    return i;
  };
  const [iId, iTitle, iArtist, iV, iA, iPop] = ['id', 'title', 'artist', 'valence', 'arousal', 'popularity'].map(col) as number[];
  const n = lines.length;
  const ids: string[] = new Array(n);
  const titles: string[] = new Array(n);
  const artists: string[] = new Array(n);
  const valence = new Float32Array(n);
  const arousal = new Float32Array(n);
  const popularity = new Float32Array(n);
  lines.forEach((line, i) => {
    const cells = line.split('\t');
    ids[i] = cells[iId!]!;
    titles[i] = cells[iTitle!]!;
    artists[i] = cells[iArtist!]!;
    valence[i] = Number(cells[iV!]);
    arousal[i] = Number(cells[iA!]);
    popularity[i] = Number(cells[iPop!]);
  });
  const raw = readFileSync(path.join(dir, 'music_emb.f32'));
  if (raw.length !== n * 64 * 4) throw new Error(`${dir}/music_emb.f32 holds ${raw.length} bytes, expected ${n} x 64 floats`);
  const embeddings = new Float32Array(n * 64);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let k = 0; k < 64; k++) {
      const v = raw.readFloatLE((i * 64 + k) * 4);
      embeddings[i * 64 + k] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm) || 1;
    for (let k = 0; k < 64; k++) embeddings[i * 64 + k]! /= norm;
  }
  return { ids, titles, artists, valence, arousal, popularity, embeddings, indexOf: new Map(ids.map((id, i) => [id, i])), size: n };
}
