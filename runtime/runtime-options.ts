import type { Kafka } from 'kafkajs';
import type { SchemaRegistry } from '../schemas/registry.ts';
import type { Guarantee, ProcessorSpec, Topology } from '../topology/topology.ts';
import type { ConfigOf } from './config.ts';
import type { processorOptions } from './common-config.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { ProcessorCore } from './processor.ts';

/**
 * What the stream runtime takes from the validated processor options: every value is defaulted
 * once, in runtime/common-config.ts, and taken as it is here.
 */
export type RuntimeSettings = Pick<
  ConfigOf<typeof processorOptions>,
  | 'maxBatchRecords'
  | 'commitIntervalMs'
  | 'sessionTimeoutMs'
  | 'fetchMinBytes'
  | 'fetchMaxWaitMs'
  | 'maxBacklog'
  | 'maxBacklogBytes'
  | 'maxRecordBytes'
  | 'maxDeadLetterValueBytes'
  | 'stallTimeoutMs'
  | 'maxBatchRetries'
  | 'restoreTimeoutMs'
  | 'stateIdleMs'
  | 'startTimeoutMs'
>;

export interface RuntimeOptions<S> {
  readonly kafka: Kafka;
  readonly topology: Topology;
  readonly spec: ProcessorSpec;
  readonly core: ProcessorCore<S>;
  readonly registry: SchemaRegistry;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Consumer group; also the prefix of the per-task transactional ids. */
  readonly groupId: string;
  readonly guarantee: Guarantee;
  /** The validated processor options (runtime/common-config.ts): nothing is defaulted here. */
  readonly settings: RuntimeSettings;
}
