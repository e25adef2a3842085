/**
 * Builds the classifier's ONNX models from the TF.js graph models that ship in the npm package
 * @vladmandic/human, with a model card (JSON) beside each: `npm run models:build`.
 * The output is byte-for-byte reproducible (a unit test rebuilds and compares checksums).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTfjsGraph } from './convert/tfjs-graph.ts';
import { convertTfjsToOnnx } from './convert/tfjs-to-onnx.ts';
import { MODEL_SPECS, type ModelSpec } from '../vision/model-specs.ts';

export const MODELS_DIR = fileURLToPath(new URL('.', import.meta.url));
/** The package does not export its package.json, so it is found where npm installs it. */
const HUMAN_DIR = path.join(MODELS_DIR, '..', 'node_modules', '@vladmandic', 'human');

export function sourcePackage(): { name: string; version: string; license: string; dir: string } {
  const pkg = JSON.parse(readFileSync(path.join(HUMAN_DIR, 'package.json'), 'utf8')) as { name: string; version: string; license: string };
  return { name: pkg.name, version: pkg.version, license: pkg.license, dir: HUMAN_DIR };
}

export function buildModel(spec: ModelSpec): { bytes: Uint8Array; card: Record<string, unknown> } {
  const src = sourcePackage();
  const sourcePath = path.join(src.dir, spec.source);
  const sourceSha = createHash('sha256').update(readFileSync(sourcePath)).digest('hex');
  const graph = loadTfjsGraph(sourcePath);
  const bytes = convertTfjsToOnnx(graph, {
    name: spec.name,
    dynamicSpatial: 'dynamicSpatial' in spec ? spec.dynamicSpatial : false,
    nchwc: spec.nchwc,
    metadata: { version: spec.version, labels: JSON.stringify(spec.labels ?? []), source: `${src.name}@${src.version}/${spec.source}`, license: spec.license },
  });
  const card = {
    name: spec.name,
    version: spec.version,
    file: `${spec.name}.onnx`,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    bytes: bytes.length,
    description: spec.description,
    inputs: spec.inputs,
    outputs: spec.outputs,
    labels: spec.labels,
    preprocessing: spec.preprocessing,
    source: { package: src.name, version: src.version, path: spec.source, sha256: sourceSha, packageLicense: src.license },
    license: spec.license,
    origin: spec.origin,
    conversion: `models/convert/tfjs-to-onnx.ts (opset 13, NCHW internally, dynamic batch${spec.nchwc ? `, laid out for blocked CPU kernels of ${spec.nchwc.block} channels` : ''}); parity with TF.js checked by tests/unit/model-conversion.test.ts`,
  };
  return { bytes, card };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  for (const spec of Object.values(MODEL_SPECS)) {
    const { bytes, card } = buildModel(spec);
    writeFileSync(path.join(MODELS_DIR, `${spec.name}.onnx`), bytes);
    const cardPath = path.join(MODELS_DIR, `${spec.name}.card.json`);
    let quality: unknown;
    try {
      quality = (JSON.parse(readFileSync(cardPath, 'utf8')) as { quality?: unknown }).quality;
    } catch {
      quality = undefined;
    }
    writeFileSync(cardPath, `${JSON.stringify({ ...card, ...(quality ? { quality } : {}) }, null, 2)}\n`);
    console.log(`${spec.name}.onnx  ${bytes.length} bytes  sha256 ${card.sha256}`);
  }
}
