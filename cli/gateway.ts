import { hasTokenKey, tokenConfigOf } from '../auth/options.ts';
import { TokenVerifier } from '../auth/tokens.ts';
import { loadWebAssets } from '../gateway/assets.ts';
import { gatewayOptions } from '../gateway/options.ts';
import { Gateway } from '../gateway/server.ts';
import { loadCatalogue } from '../processors/recommender/catalogue.ts';
import { configHelp, loadConfig } from '../runtime/config.ts';
import { EmotionMuseError } from '../schemas/errors.ts';
import { createKafka } from '../runtime/kafka.ts';
import { kafkaSecurity, metricsAuth, redisSecurity } from '../runtime/security.ts';
import { createLogger } from '../runtime/log.ts';
import { writePortFile } from '../runtime/net.ts';
import { SchemaRegistry } from '../schemas/registry.ts';
import type { Command } from './command.ts';
import { deploymentTopology } from './deployment.ts';

export const gatewayCommand: Command = {
  summary: 'serve HTTP and WebSocket clients (browsers, phones): frames in, their own events out',
  help: `usage: emotionmuse gateway [options]

The way in for clients that do not speak Kafka, and the web client's server. Every request needs
a bearer token (a JWT whose subject is the user; emotionmuse token --user <id> mints one for
development), verified against the HS256 secret (EM_JWT_SECRET or --jwt-secret-file), an RS256 or
ES256 public key, or a JWKS file.

  /v1/stream                 WebSocket: frames in (crop, scores or whole frames), acks, errors,
                             and the user's own emotion changes and lists out (its per-frame
                             scores too when the hello says "scores": true, or ?scores=1)
  GET  /v1/me/recommendations  the user's last list
  GET  /v1/me/emotion          the user's current emotion (label, probabilities, valence, arousal)
  POST /v1/me/listens          a play: {"trackId": "...", "listenedMs": 30000, "outcome": "COMPLETED"}
  /                          the web client (camera, on-device crop, live view); ?token=<jwt> signs in
  /healthz /readyz /metrics  liveness, readiness, Prometheus

Run more instances behind a load balancer to scale out: each reads every user's events, or, with
--instances, --instance and --peers, only those of its share of the partitions (a client of
another instance's user is sent there). gateway/README.md says how and what each costs.

options:
${configHelp(gatewayOptions)}`,
  async run(argv) {
    const c = loadConfig(gatewayOptions, { argv });
    const logger = createLogger(c.logLevel, { component: 'gateway' });
    const tokens = tokenConfigOf(c);
    if (!hasTokenKey(tokens)) throw new EmotionMuseError('CONFIG_INVALID', 'the gateway needs a token key: set EM_JWT_SECRET (or --jwt-secret-file, --jwt-public-key-file, --jwt-jwks-file)');
    const gateway = new Gateway({
      kafka: createKafka({ brokers: c.brokers, clientId: 'emotionmuse-gateway', security: kafkaSecurity(c, 'gateway') }),
      registry: SchemaRegistry.load(),
      topology: deploymentTopology(c),
      redisUrl: c.redisUrl,
      redisOptions: redisSecurity(c),
      metricsAuth: metricsAuth(c),
      redisPrefix: c.redisPrefix,
      verifier: await TokenVerifier.create(tokens),
      catalogue: loadCatalogue(c.modelDir),
      port: c.port,
      host: c.host,
      limits: { framesPerSecond: c.framesPerSecond, maxMessageBytes: c.maxMessageBytes, maxInFlight: c.maxInFlight, helloTimeoutMs: c.helloTimeoutMs, maxSocketBufferBytes: c.socketBufferBytes },
      maxConnections: c.maxConnections,
      maxInFlight: c.processInFlight,
      lingerMs: c.lingerMs,
      fanoutMinBytes: c.fanoutMinBytes,
      fanoutMaxWaitMs: c.fanoutMaxWaitMs,
      assets: c.web ? await loadWebAssets() : undefined,
      routing: c.instances > 1 ? { instances: c.instances, instance: c.instance, peers: c.peers } : undefined,
      logger,
    });
    await gateway.start();
    writePortFile(c.portFile, gateway.port);
    logger.info('gateway listening', { port: gateway.port, web: c.web });
    const stop = new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await gateway.whenReady().then(
      () => logger.info('gateway ready', { port: gateway.port }),
      (err) => logger.warn(String(err)),
    );
    await stop;
    await gateway.close();
    return 0;
  },
};
