import * as ort from 'onnxruntime-node';
import { errorMessage } from './errors.ts';
import type { Logger } from './log.ts';

export type ExecutionProvider = 'cuda' | 'cpu';
export const EXECUTION_PROVIDERS = ['cuda', 'cpu'] as const;

export interface LoadedSession {
  readonly session: ort.InferenceSession;
  /** The provider that took the session (the first of the list that could). */
  readonly provider: ExecutionProvider;
}

/**
 * Opens an ONNX Runtime session with the first execution provider of `providers` that works:
 * CUDA where its provider library is installed and a GPU answers, else the next one (CPU).
 * Logs one line saying which provider is in use and why others were passed over.
 */
export async function openSession(
  modelPath: string,
  options: { providers: readonly ExecutionProvider[]; threads?: number; logger?: Logger },
): Promise<LoadedSession> {
  const failures: string[] = [];
  for (const provider of options.providers) {
    // ONNX Runtime prints its own error when a provider library is missing; the fallback below
    // says it once, in our log, instead.
    const level = ort.env.logLevel;
    if (provider !== 'cpu') ort.env.logLevel = 'fatal';
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [provider],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: options.threads ?? 0,
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
      });
      options.logger?.info(`onnxruntime: ${modelPath.split('/').pop()} runs on the ${provider.toUpperCase()} execution provider`, {
        provider,
        passedOver: failures,
      });
      return { session, provider };
    } catch (err) {
      failures.push(`${provider}: ${errorMessage(err).split('\n')[0]}`);
    } finally {
      ort.env.logLevel = level;
    }
  }
  throw new Error(`no execution provider could open ${modelPath}: ${failures.join('; ')}`);
}

export { ort };
