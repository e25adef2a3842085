import type { IHeaders } from 'kafkajs';
import type { TopicId } from '../topology/topology.ts';
import type { RouteHandler } from './http.ts';

/** A decoded input record, immutable. */
export interface InputRecord<V = unknown> {
  /** Topology id of the source topic. */
  readonly topic: TopicId;
  readonly topicName: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: string;
  readonly value: V;
  /** Kafka record timestamp, epoch ms. */
  readonly timestamp: number;
  /** The record's Kafka headers (a frame's bearer token: auth/frame-token.ts). */
  readonly headers?: IHeaders;
}

/** A record for the runtime to encode (with the destination topic's schema) and produce. */
export interface OutputRecord {
  readonly to: TopicId;
  readonly key: string;
  readonly value: unknown;
}

export interface StepResult<S> {
  /** The key's new state; undefined deletes it. */
  readonly state: S | undefined;
  readonly outputs: readonly OutputRecord[];
}

/**
 * A processor's pure core. The runtime calls `prepare` once per batch for work that is batched
 * and asynchronous but stateless (model inference), then `process` for each record in order with
 * the record key's state. `process` throws an EmotionMuseError to reject a record: not retriable
 * sends it to the dead-letter topic, retriable aborts the batch and retries it.
 *
 * @example
 * const counter: ProcessorCore<number> = {
 *   name: 'counter',
 *   process: (n = 0, record) => ({ state: n + 1, outputs: [{ to: 'passthrough', key: record.key, value: record.value }] }),
 * };
 */
export interface ProcessorCore<S = unknown, P = unknown> {
  /** The stage name used in metrics, logs and dead letters. */
  readonly name: string;
  /**
   * Names the state's format and parameters; part of the changelog topic's name, so that a core
   * with other parameters starts from empty state instead of misreading old state.
   * Overrides the topology's `stateVersion`.
   */
  readonly stateVersion?: string;
  prepare?(records: readonly InputRecord[], signal: AbortSignal): Promise<ReadonlyArray<P | Error>>;
  /**
   * How many later batches of a partition may be in `prepare` while one is: only for a `prepare`
   * that neither reads nor changes state (its results are used in order all the same). A batch
   * that is fetched while a model batch runs then joins the next model batch at once. 0 (the
   * default) prepares a batch only when the one before it is done.
   */
  readonly prepareAhead?: number;
  process(state: S | undefined, record: InputRecord, prepared: P | undefined): StepResult<S>;
  ready?(): { ready: boolean; reason?: string };
  /** Extra HTTP routes on the processor's port (tried before /metrics, /healthz, /readyz). */
  readonly routes?: readonly RouteHandler[];
  close?(): Promise<void>;
}
