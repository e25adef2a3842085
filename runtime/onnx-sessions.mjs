// ONNX Runtime sessions, opened the same way in the main thread and in the inference worker
// (runtime/onnx-worker.mjs). Plain JavaScript: worker threads do not inherit the TypeScript loader.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import ort from 'onnxruntime-node';

const require = createRequire(import.meta.url);

/**
 * The shared library each non-CPU provider needs beside onnxruntime-node's binding. ONNX Runtime
 * loads it on demand and, where it is missing, writes an error line of its own to stderr before
 * any log level applies ("Failed to load library libonnxruntime_providers_shared.so"): an
 * operator reading a container's log takes it for a fault. A provider whose library is not
 * installed is therefore not tried at all.
 */
const PROVIDER_LIBRARIES = { cuda: 'libonnxruntime_providers_cuda.so' };

/** The folder of onnxruntime-node's native binding (where its provider libraries go). */
function bindingDir() {
  const main = require.resolve('onnxruntime-node');
  return path.join(path.dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

/** Why `provider` cannot be tried on this machine, or undefined when it can. */
export function providerMissing(provider) {
  const library = PROVIDER_LIBRARIES[provider];
  if (!library) return undefined;
  const file = path.join(bindingDir(), library);
  return existsSync(file) ? undefined : `not installed (no ${library} beside onnxruntime-node's binding; its install script was skipped or found no GPU build)`;
}

/** Session options for one execution provider. */
export function sessionOptions(provider, threads) {
  return {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads ?? 0,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    // EM_ORT_ARENA=0 trades speed for memory: without the arena the classifier stayed at 409
    // MiB through the 640x480 JPEG steps of bench:e2e (590 with it), but inference at batch 32
    // took 2.2 instead of 1.5 ms per frame.
    enableCpuMemArena: process.env.EM_ORT_ARENA !== '0',
    // ONNX Runtime's intra-op threads spin after each run by default, burning a core that the
    // broker and the other stages need when they share the machine (classifier CPU at 100
    // frames/s: 77% spinning, 50% not; bench/results/e2e.md). EM_ORT_SPIN=1 turns it back on.
    extra: { session: { intra_op: { allow_spinning: process.env.EM_ORT_SPIN === '1' ? '1' : '0' } } },
  };
}

/**
 * Opens `modelPath` with the first provider of `providers` that works (CUDA where its library is
 * installed and a GPU answers, else the next one). Returns the session, the provider, and why
 * the others were passed over.
 */
export async function openFirst(modelPath, providers, threads) {
  const passedOver = [];
  for (const provider of providers) {
    const missing = providerMissing(provider);
    if (missing) {
      passedOver.push(`${provider}: ${missing}`);
      continue;
    }
    // ONNX Runtime prints its own error when a provider library is missing; the caller says it
    // once, in its log, instead.
    const level = ort.env.logLevel;
    if (provider !== 'cpu') ort.env.logLevel = 'fatal';
    try {
      const session = await ort.InferenceSession.create(modelPath, sessionOptions(provider, threads));
      return { session, provider, passedOver };
    } catch (err) {
      passedOver.push(`${provider}: ${String(err instanceof Error ? err.message : err).split('\n')[0]}`);
    } finally {
      ort.env.logLevel = level;
    }
  }
  throw new Error(`no execution provider could open ${modelPath}: ${passedOver.join('; ')}`);
}
