import net from 'node:net';
import tls from 'node:tls';
import kafkajs, { type Consumer, type ISocketFactory, type Kafka, type LogEntry } from 'kafkajs';

const { Kafka: KafkaClient, logLevel: KafkaLogLevel } = kafkajs;
import type { Logger } from './log.ts';
import type { KafkaSecurity } from './security.ts';

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [KafkaLogLevel.ERROR]: 'error',
  [KafkaLogLevel.WARN]: 'warn',
  [KafkaLogLevel.INFO]: 'info',
  [KafkaLogLevel.DEBUG]: 'debug',
};

process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';

const QUIET = ['switched default partitioner', 'Limiting retries for the idempotent producer'];

/**
 * kafkajs leaves Nagle's algorithm on: a request written while an earlier one is not yet
 * acknowledged by TCP (a commit behind a long-polling fetch, the tail of a request larger than
 * one segment) waits for the broker's delayed ACK, up to 40 ms on Linux. Requests are whole
 * messages, written once each: send them at once, over plain TCP and over TLS alike.
 */
const socketFactory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
  if (!ssl) return net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 }, onConnect);
  // SNI takes a host name only; an IP address is checked against the certificate's IP SANs.
  const socket = tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }), ...ssl }, onConnect);
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 60_000);
  return socket;
};

/** A kafkajs client whose log lines go through our logger (kafkajs info is chatty: only warnings and up pass). */
export function createKafka(options: { brokers: readonly string[]; clientId: string; logger?: Logger; security?: KafkaSecurity }): Kafka {
  const logger = options.logger?.child({ component: 'kafkajs' });
  return new KafkaClient({
    clientId: options.clientId,
    brokers: [...options.brokers],
    ...(options.security?.ssl ? { ssl: options.security.ssl } : {}),
    ...(options.security?.sasl ? { sasl: options.security.sasl } : {}),
    connectionTimeout: 5000,
    socketFactory,
    retry: { initialRetryTime: 200, retries: 8 },
    logLevel: logger ? KafkaLogLevel.WARN : KafkaLogLevel.NOTHING,
    logCreator: () => (entry: LogEntry) => {
      if (!logger) return;
      const { message, ...rest } = entry.log;
      if (QUIET.some((q) => message.includes(q))) return;
      // Connection-level errors and CONCURRENT_TRANSACTIONS just after a commit are retried by
      // kafkajs itself; what is not retried surfaces as an exception.
      const retried = entry.namespace === 'Connection' || /concurrent operation on the same transaction/.test(message);
      const level = retried ? 'debug' : (LEVELS[entry.level] ?? 'info');
      logger[level](message, { namespace: entry.namespace, ...rest });
    },
  });
}

/**
 * Errors after which an idempotent producer cannot go on: its producer id and sequence numbers no
 * longer match the broker's (seen after a partition leader is killed mid-request, and after a
 * request the broker refused). Only a new producer, with a new id, can send again.
 */
const FATAL_FOR_PRODUCER = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH', 'INVALID_PRODUCER_ID_MAPPING']);

export function producerIsBroken(err: unknown): boolean {
  for (let e = err as { type?: string; cause?: unknown; originalError?: unknown } | undefined, depth = 0; e && depth < 5; depth++) {
    if (typeof e.type === 'string' && FATAL_FOR_PRODUCER.has(e.type)) return true;
    e = (e.originalError ?? e.cause) as typeof e;
  }
  return false;
}

/** kafkajs error names that mean no broker could be reached or none answered in time. */
const UNREACHABLE = new Set(['KafkaJSConnectionError', 'KafkaJSNoBrokerAvailableError', 'KafkaJSConnectionClosedError', 'KafkaJSBrokerNotFound', 'KafkaJSRequestTimeoutError', 'KafkaJSLockTimeout']);
/** Broker error types that a restarting cluster answers with for a while. */
const STARTING = new Set(['LEADER_NOT_AVAILABLE', 'NOT_LEADER_FOR_PARTITION', 'NOT_CONTROLLER', 'COORDINATOR_NOT_AVAILABLE', 'NOT_COORDINATOR', 'COORDINATOR_LOAD_IN_PROGRESS', 'REQUEST_TIMED_OUT']);

/**
 * Whether an error means that the brokers are away or still starting (a connection refused or
 * closed, no broker or coordinator yet): worth waiting for. Authentication, authorization and
 * configuration errors are not.
 */
export function brokerUnreachable(err: unknown): boolean {
  for (let e = err as { name?: string; type?: string; code?: string; cause?: unknown; originalError?: unknown } | undefined, depth = 0; e && depth < 5; depth++) {
    if ((typeof e.name === 'string' && UNREACHABLE.has(e.name)) || (typeof e.type === 'string' && STARTING.has(e.type))) return true;
    if (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET') return true;
    e = (e.originalError ?? e.cause) as typeof e;
  }
  return false;
}

/** A processor's consumer: read_committed, offsets committed by the runtime, heartbeats at a fifth of the session. */
export function processorConsumer(kafka: Kafka, groupId: string, s: { sessionTimeoutMs: number; fetchMinBytes: number; fetchMaxWaitMs: number }, stopping: () => boolean): Consumer {
  return kafka.consumer({
    groupId,
    readUncommitted: false,
    sessionTimeout: s.sessionTimeoutMs,
    heartbeatInterval: Math.max(500, Math.floor(s.sessionTimeoutMs / 5)),
    rebalanceTimeout: Math.max(s.sessionTimeoutMs, 20_000),
    allowAutoTopicCreation: false,
    minBytes: s.fetchMinBytes,
    maxWaitTimeInMs: s.fetchMaxWaitMs,
    // kafkajs restarts a crashed consumer by itself; never once the runtime is stopping.
    retry: { restartOnFailure: async () => !stopping() },
  });
}
