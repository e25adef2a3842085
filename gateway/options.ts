import { tokenKeyOptions } from '../auth/options.ts';
import { commonOptions, httpPortFileOption } from '../runtime/common-config.ts';
import { opt } from '../runtime/config.ts';
import { recommenderOptions } from '../processors/index.ts';

/** `emotionmuse gateway` options; each default is written here and nowhere else. */
export const gatewayOptions = {
  ...commonOptions,
  ...tokenKeyOptions,
  port: opt.int('EM_GATEWAY_PORT', 'port', 8080, 'Port of HTTP and /v1/stream (0: any free port)', { min: 0, max: 65535 }),
  host: opt.string('EM_GATEWAY_HOST', 'host', '0.0.0.0', 'Address to listen on'),
  portFile: httpPortFileOption,
  framesPerSecond: opt.number('EM_GATEWAY_FPS', 'frames-per-second', 15, 'Frames a second per user on this instance (token bucket, one second of burst); faster clients are slowed', { min: 0.1 }),
  maxMessageBytes: opt.int('EM_GATEWAY_MAX_MESSAGE_BYTES', 'max-message-bytes', 256 * 1024, 'Largest WebSocket message; larger ones get an error (MESSAGE_TOO_LARGE), and over four times this the socket is closed (1009)', { min: 1024 }),
  maxInFlight: opt.int('EM_GATEWAY_SOCKET_IN_FLIGHT', 'socket-in-flight', 64, 'Frames of one socket on their way to Kafka; past it the socket is not read until half have been stored', { min: 1 }),
  processInFlight: opt.int('EM_GATEWAY_IN_FLIGHT', 'in-flight', 8192, 'Frames of all sockets on their way to Kafka', { min: 1 }),
  maxConnections: opt.int('EM_GATEWAY_MAX_CONNECTIONS', 'max-connections', 10_000, 'Open sockets at most (more are refused with 503)', { min: 1 }),
  socketBufferBytes: opt.int('EM_GATEWAY_SOCKET_BUFFER_BYTES', 'socket-buffer-bytes', 1024 * 1024, 'Events a socket may hold unsent (a slow reader): past half, score events are dropped (counted); past it, the socket is closed with 4413', { min: 4096 }),
  helloTimeoutMs: opt.int('EM_GATEWAY_HELLO_TIMEOUT_MS', 'hello-timeout-ms', 5000, 'A socket opened without a token must say hello within this long', { min: 100 }),
  lingerMs: opt.int('EM_GATEWAY_LINGER_MS', 'linger-ms', 2, 'A produce request waits this long for more frames once one is queued (fewer, larger requests for a little latency)', { min: 0, max: 100 }),
  fanoutMinBytes: opt.int('EM_GATEWAY_FANOUT_MIN_BYTES', 'fanout-min-bytes', 1, 'The fan-out consumer\'s fetch waits at the broker for this many bytes (or --fanout-max-wait-ms)', { min: 1 }),
  fanoutMaxWaitMs: opt.int('EM_GATEWAY_FANOUT_MAX_WAIT_MS', 'fanout-max-wait-ms', 20, 'Longest a fan-out fetch waits at the broker', { min: 1 }),
  web: opt.bool('EM_GATEWAY_WEB', 'web', true, 'Serve the web client (web/) at /'),
  instances: opt.int('EM_GATEWAY_INSTANCES', 'instances', 1, 'Gateway instances that split the users by partition: each reads only the events of its partitions (p % instances = instance) and sends other users\' clients to their instance', { min: 1 }),
  instance: opt.int('EM_GATEWAY_INSTANCE', 'instance', 0, 'This instance\'s index, 0 to --instances - 1', { min: 0 }),
  peers: opt.list('EM_GATEWAY_PEERS', 'peers', [], 'Base URL of every instance by index (where a client of another instance\'s user is sent), e.g. https://gw-0.example.com,https://gw-1.example.com'),
  modelDir: recommenderOptions.modelDir,
  redisPrefix: recommenderOptions.redisPrefix,
};
