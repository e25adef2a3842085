import type { Metrics } from '../runtime/metrics.ts';
import type { ProcessorCore } from '../runtime/processor.ts';
import { createPassthroughCore } from './passthrough/core.ts';

export interface ProcessorContext {
  readonly metrics: Metrics;
}

export interface ProcessorEntry {
  /** Default HTTP port of /metrics, /healthz, /readyz. */
  readonly port: number;
  readonly create: (ctx: ProcessorContext) => Promise<ProcessorCore<any, any>> | ProcessorCore<any, any>;
}

/** Every processor `emotionmuse run <name>` can start; the topology says what each reads and writes. */
export const PROCESSORS: Record<string, ProcessorEntry> = {
  passthrough: {
    port: 9100,
    create: ({ metrics }) => createPassthroughCore({ onSkip: (reason) => metrics.skipped.inc({ stage: 'passthrough', reason }) }),
  },
};
