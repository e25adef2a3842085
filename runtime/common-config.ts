import { GUARANTEES } from '../topology/topology.ts';
import { opt } from './config.ts';
import { securityOptions } from './security.ts';

/** Options every EmotionMuse process takes. Each default is written here and nowhere else. */
export const commonOptions = {
  brokers: opt.list('EM_KAFKA_BROKERS', 'brokers', ['127.0.0.1:9092'], 'Kafka bootstrap servers, comma-separated'),
  topicPrefix: opt.string('EM_TOPIC_PREFIX', 'topic-prefix', 'emotionmuse.', 'Prefix of every topic name (and of consumer groups)'),
  partitions: opt.int('EM_PARTITIONS', 'partitions', 6, 'Partitions of every user-keyed topic (co-partitioned)', { min: 1, max: 1000 }),
  replicationFactor: opt.int('EM_REPLICATION_FACTOR', 'replication-factor', 1, 'Replication factor of new topics', { min: 1 }),
  redisUrl: opt.string('EM_REDIS_URL', 'redis-url', 'redis://127.0.0.1:6379', 'Redis server (redis://host:port, rediss:// for TLS), or a Redis Cluster by its seed nodes (redis-cluster://host:port,host:port; rediss-cluster:// for TLS)'),
  logLevel: opt.oneOf('EM_LOG_LEVEL', 'log-level', 'info', ['debug', 'info', 'warn', 'error'], 'Log level'),
  ...securityOptions,
} as const;

/** Where a process that serves HTTP writes the port it listens on (the container image's health check reads it). */
export const httpPortFileOption = opt.string('EM_HTTP_PORT_FILE', 'http-port-file', '', 'Write the port this process listens on to this file once it listens (empty: none); the container image sets it for its health check');

/** Options of a processor process (`emotionmuse run <processor>`). */
export const processorOptions = {
  ...commonOptions,
  httpHost: opt.string('EM_HTTP_HOST', 'http-host', '127.0.0.1', 'Address /metrics, /healthz, /readyz and the read-back routes bind to (0.0.0.0: every interface, as in a container)'),
  httpPort: opt.int('EM_HTTP_PORT', 'http-port', -1, 'Port of /metrics, /healthz, /readyz; -1 takes the processor\'s own port (passthrough 9100, classifier 9101, smoother 9102, recommender 9103), 0 any free port', { min: -1, max: 65535 }),
  httpPortTries: opt.int('EM_HTTP_PORT_TRIES', 'http-port-tries', 1, 'When the HTTP port is taken, try this many ports from it on (replicas of one stage on one host network)', { min: 1, max: 100 }),
  httpPortFile: httpPortFileOption,
  groupId: opt.string('EM_GROUP_ID', 'group-id', '', 'Consumer group; empty means <topic-prefix><processor>'),
  guarantee: opt.oneOf('EM_GUARANTEE', 'guarantee', 'topology', ['topology', ...GUARANTEES], 'How batches are committed; topology takes the processor\'s own (the pipeline\'s three stages at-least-once, the pass-through exactly-once)'),
  maxBatchRecords: opt.int('EM_MAX_BATCH_RECORDS', 'max-batch-records', 500, 'Most input records processed in one batch (one transaction under exactly-once)', { min: 1 }),
  commitIntervalMs: opt.int('EM_COMMIT_INTERVAL_MS', 'commit-interval-ms', 100, 'At-least-once: commit the processed offsets this often (a crash repeats at most this much work)', { min: 1 }),
  fetchMinBytes: opt.int('EM_FETCH_MIN_BYTES', 'fetch-min-bytes', 1, 'The broker answers a fetch once this many bytes are there (or fetch-max-wait-ms has passed): more lets a stage that is not on the score path fetch less often', { min: 1 }),
  fetchMaxWaitMs: opt.int('EM_FETCH_MAX_WAIT_MS', 'fetch-max-wait-ms', 100, 'Longest a fetch waits at the broker for fetch-min-bytes', { min: 1 }),
  sessionTimeoutMs: opt.int('EM_SESSION_TIMEOUT_MS', 'session-timeout-ms', 10_000, 'Consumer session timeout (ms)', { min: 1000 }),
  maxBacklog: opt.int('EM_MAX_BACKLOG', 'max-backlog', 1000, 'Pause a partition while this many of its fetched records wait to be processed', { min: 1 }),
  maxBacklogBytes: opt.int('EM_MAX_BACKLOG_BYTES', 'max-backlog-bytes', 4 * 1024 * 1024, 'Pause a partition while its waiting records hold more bytes than this (bounds memory under a load of full frames)', { min: 1024 }),
  maxRecordBytes: opt.int('EM_MAX_RECORD_BYTES', 'max-record-bytes', 4 * 1024 * 1024, 'Larger input records go to the dead-letter topic (OVERSIZED_RECORD). A topic\'s max.message.bytes (1 MiB by default) bounds a compressed batch, so a record inside one can be larger', { min: 1 }),
  maxDeadLetterValueBytes: opt.int('EM_MAX_DEAD_LETTER_VALUE_BYTES', 'max-dead-letter-value-bytes', 256 * 1024, 'A dead letter keeps at most this much of the record\'s value (with its size and SHA-256), less when the dead-letter topic\'s max.message.bytes needs it', { min: 1024 }),
  stallTimeoutMs: opt.int('EM_STALL_TIMEOUT_MS', 'stall-timeout-ms', 30_000, 'A partition whose batches have failed for this long is stalled: /readyz fails and emotionmuse_partitions_stalled counts it', { min: 1000 }),
  maxBatchRetries: opt.int('EM_MAX_BATCH_RETRIES', 'max-batch-retries', 0, 'Failed attempts of one batch (retried with backoff up to 30 s) before the processor stops; 0 retries for ever', { min: 0 }),
  stateIdleMs: opt.int('EM_STATE_IDLE_MS', 'state-idle-ms', 1_800_000, 'A stateful stage forgets a key (user) whose state has not changed for this long: a tombstone in its changelog, the memory freed (0: never)', { min: 0 }),
  restoreTimeoutMs: opt.int('EM_RESTORE_TIMEOUT_MS', 'restore-timeout-ms', 120_000, 'A task whose state changelog has not been read to its end after this long fails and starts again (never with partial state)', { min: 1000 }),
  startTimeoutMs: opt.int('EM_START_TIMEOUT_MS', 'start-timeout-ms', 120_000, 'At start, keep trying to reach Kafka for this long (a broker that is restarting or not up yet) before exiting with an error', { min: 0 }),
  shutdownTimeoutMs: opt.int('EM_SHUTDOWN_TIMEOUT_MS', 'shutdown-timeout-ms', 8000, 'On SIGTERM/SIGINT, exit after at most this long', { min: 100 }),
} as const;
