import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { recommenderOptions } from '../../processors/index.ts';
import { loadCatalogue } from '../../processors/recommender/catalogue.ts';
import { copyPackedFolder, unpackedModelDir } from '../../processors/recommender/unpack.ts';

// The served model is committed packed (training/emotionmuse_train/pack.py): weights.q8 and
// packed.json stand for weights.bin and music_emb.f32, which are rebuilt at the first start.
const MODEL = recommenderOptions.modelDir.default;
const index = JSON.parse(readFileSync(path.join(MODEL, 'packed.json'), 'utf8')) as { files: Record<string, { bytes: number; sha256: string }>; data: string };
const scratch: string[] = [];
afterAll(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A copy of the model folder as a fresh clone has it: no unpacked file. */
function freshCopy(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'em-packed-'));
  scratch.push(dir);
  copyPackedFolder(MODEL, dir);
  return dir;
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('packed model folder', () => {
  it('is what the repository holds for the served model: every catalogue track, no float32 weight file', () => {
    expect(Object.keys(index.files).sort()).toEqual(['music_emb.f32', 'weights.bin']);
    expect(statSync(path.join(MODEL, index.data)).size).toBeLessThan(0.4 * Object.values(index.files).reduce((a, f) => a + f.bytes, 0));
  });

  it('rebuilds weights.bin and music_emb.f32 to the digests the export recorded, once', () => {
    const dir = freshCopy();
    expect(unpackedModelDir(dir)).toBe(dir);
    for (const [file, want] of Object.entries(index.files)) {
      expect(statSync(path.join(dir, file)).size).toBe(want.bytes);
      expect(sha(path.join(dir, file))).toBe(want.sha256);
    }
    const before = statSync(path.join(dir, 'weights.bin')).mtimeMs;
    expect(unpackedModelDir(dir)).toBe(dir);
    expect(statSync(path.join(dir, 'weights.bin')).mtimeMs).toBe(before);
    expect(loadCatalogue(dir).size).toBe(index.files['music_emb.f32']!.bytes / (64 * 4));
  });

  it('rebuilds an unpacked file that was changed after it was checked', () => {
    const dir = freshCopy();
    unpackedModelDir(dir);
    const file = path.join(dir, 'music_emb.f32');
    const bytes = readFileSync(file);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(file, bytes);
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    unpackedModelDir(dir);
    expect(sha(file)).toBe(index.files['music_emb.f32']!.sha256);
  });

  it('refuses a damaged weights.q8 with the file and digest named, and marks nothing as unpacked', () => {
    const dir = freshCopy();
    const q8 = readFileSync(path.join(dir, index.data));
    q8[q8.length >> 1] = q8[q8.length >> 1]! ^ 0x01;
    writeFileSync(path.join(dir, index.data), q8);
    expect(() => unpackedModelDir(dir)).toThrow(/unpacked (weights\.bin|music_emb\.f32) does not match the export's digest/);
    expect(existsSync(path.join(dir, '.unpacked.json'))).toBe(false);
    writeFileSync(path.join(dir, index.data), q8.subarray(0, 1000));
    expect(() => unpackedModelDir(dir)).toThrow(/holds 1000 bytes, packed\.json says \d+: the folder is incomplete/);
  });

  it('leaves a folder without packed.json as it is', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'em-plain-'));
    scratch.push(dir);
    expect(unpackedModelDir(dir)).toBe(dir);
  });
});

describe('served model', () => {
  it('covers every distinct track of the shared catalogue (../shared/data/music/catalogue)', () => {
    const dir = path.resolve(MODEL, '../../../shared/data/music/catalogue');
    expect(existsSync(dir), `${dir} is needed (the shared data beside the repository)`).toBe(true);
    const ids = new Set<string>();
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.csv'))) {
      for (const m of readFileSync(path.join(dir, file), 'utf8').matchAll(/spotify:track:([A-Za-z0-9]{22})/g)) ids.add(m[1]!);
    }
    const catalogue = loadCatalogue(MODEL);
    expect(ids.size).toBeGreaterThan(40_000);
    expect(catalogue.size).toBe(ids.size);
    expect(new Set(catalogue.ids)).toEqual(ids);
  });
});
