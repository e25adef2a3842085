import { createHash } from 'node:crypto';
import { accessSync, constants, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * A packed model folder (training/emotionmuse_train/pack.py) commits its catalogue-sized tensors
 * as integers with row scales (`weights.q8`, indexed by `packed.json`) instead of the float32
 * files ONNX Runtime and the catalogue read (`weights.bin`, the graphs' external data, and
 * `music_emb.f32`). `unpackedModelDir` rebuilds those files once, checks them against the digests
 * the export recorded, and returns the folder to load from: the model folder itself, or a copy
 * under the system's temporary folder when the model folder cannot be written.
 */

interface PackedIndex {
  version: string;
  data: string;
  bytes: number;
  tensors: Record<string, { rows: number; cols: number; levels: number; values: number; scales: number }>;
  files: Record<string, { bytes: number; sha256: string }>;
  regions: Array<{ file: string; tensor: string; layout: 'rows' | 'transposed-int8'; offset: number; bytes: number }>;
}

const INDEX = 'packed.json';
const STAMP = '.unpacked.json';

/** Where a (possibly packed) model folder's files can be loaded from; unpacks on first use. */
export function unpackedModelDir(dir: string): string {
  const indexPath = path.join(dir, INDEX);
  if (!existsSync(indexPath)) return dir;
  const index = JSON.parse(readFileSync(indexPath, 'utf8')) as PackedIndex;
  for (const target of [dir, path.join(tmpdir(), 'emotionmuse-models', `${index.version}-${digest(readFileSync(indexPath)).slice(0, 12)}`)]) {
    if (isCurrent(target, index)) return target;
    if (!writable(target)) continue;
    if (target !== dir) copyModelFiles(dir, target, index);
    unpackInto(dir, target, index);
    return target;
  }
  throw new Error(`cannot unpack the model ${dir}: neither it nor the temporary folder can be written`);
}

function writable(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The unpacked files exist with the sizes and times the stamp recorded when they were checked. */
function isCurrent(dir: string, index: PackedIndex): boolean {
  try {
    const stamp = JSON.parse(readFileSync(path.join(dir, STAMP), 'utf8')) as { version: string; files: Record<string, { bytes: number; mtimeMs: number; sha256: string }> };
    if (stamp.version !== index.version) return false;
    return Object.entries(index.files).every(([file, want]) => {
      const had = stamp.files[file];
      if (!had || had.sha256 !== want.sha256) return false;
      const st = statSync(path.join(dir, file));
      return st.size === want.bytes && st.mtimeMs === had.mtimeMs;
    });
  } catch {
    return false;
  }
}

/** Copies a packed model folder as a fresh clone holds it: the packed data, its index, the graphs and neighbours/, no rebuilt file and no stamp. */
export function copyPackedFolder(from: string, to: string): void {
  const index = JSON.parse(readFileSync(path.join(from, INDEX), 'utf8')) as PackedIndex;
  copyModelFiles(from, to, index);
  copyFileSync(path.join(from, index.data), path.join(to, index.data));
}

function copyModelFiles(from: string, to: string, index: PackedIndex): void {
  for (const name of readdirSync(from)) {
    if (name === index.data || name in index.files || name === STAMP) continue;
    const st = statSync(path.join(from, name));
    if (st.isFile()) copyFileSync(path.join(from, name), path.join(to, name));
    // neighbours/: a neighbourhood model's tables, served beside the graph
    else if (st.isDirectory() && name === 'neighbours') cpSync(path.join(from, name), path.join(to, name), { recursive: true });
  }
}

function unpackInto(dir: string, target: string, index: PackedIndex): void {
  const packed = readFileSync(path.join(dir, index.data));
  if (packed.length !== index.bytes) throw new Error(`${dir}/${index.data} holds ${packed.length} bytes, packed.json says ${index.bytes}: the folder is incomplete`);
  const stamp: Record<string, { bytes: number; mtimeMs: number; sha256: string }> = {};
  for (const [file, want] of Object.entries(index.files)) {
    const out = Buffer.alloc(want.bytes);
    for (const region of index.regions.filter((r) => r.file === file)) writeRegion(out, region, packed, index.tensors[region.tensor]!);
    const sha = digest(out);
    if (sha !== want.sha256) throw new Error(`${dir}: unpacked ${file} does not match the export's digest (${sha.slice(0, 12)} != ${want.sha256.slice(0, 12)})`);
    const final = path.join(target, file);
    const temp = `${final}.${process.pid}.tmp`;
    writeFileSync(temp, out);
    renameSync(temp, final); // atomic: processes starting together never see half a file
    stamp[file] = { bytes: want.bytes, mtimeMs: statSync(final).mtimeMs, sha256: sha };
  }
  const temp = path.join(target, `${STAMP}.${process.pid}.tmp`);
  writeFileSync(temp, JSON.stringify({ version: index.version, files: stamp }));
  renameSync(temp, path.join(target, STAMP));
}

function writeRegion(out: Buffer, region: PackedIndex['regions'][number], packed: Buffer, t: PackedIndex['tensors'][string]): void {
  const values = new Int8Array(packed.buffer, packed.byteOffset + t.values, t.rows * t.cols);
  const scales = new Float32Array(packed.buffer.slice(packed.byteOffset + t.scales, packed.byteOffset + t.scales + t.rows * 4));
  if (region.layout === 'rows') {
    const dst = new Float32Array(out.buffer, out.byteOffset + region.offset, t.rows * t.cols);
    for (let r = 0; r < t.rows; r++) {
      const s = scales[r]!;
      for (let c = 0; c < t.cols; c++) dst[r * t.cols + c] = Math.fround(values[r * t.cols + c]! * s);
    }
  } else {
    const dst = new Int8Array(out.buffer, out.byteOffset + region.offset, t.rows * t.cols);
    for (let r = 0; r < t.rows; r++) for (let c = 0; c < t.cols; c++) dst[c * t.rows + r] = values[r * t.cols + c]!;
  }
}

function digest(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
