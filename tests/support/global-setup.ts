import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { Redis } from 'ioredis';
import { loadConfig } from '../../runtime/config.ts';
import { createKafka } from '../../runtime/kafka.ts';
import { freePort } from '../../runtime/net.ts';
import { kafkaSecurity, redisSecurity, securityOptions } from '../../runtime/security.ts';
import { engineAnswers, missingImages } from './docker.ts';
import { chooseServices } from './services.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    redisUrl: string;
    servicesFrom: string;
  }
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HOW_TO_START = `Start them with \`npm run infra:up\` (local Kafka jars + Debian redis-server), point the
tests at running ones with EM_KAFKA_BROKERS=host:port and EM_REDIS_URL=redis://host:port, or run them in
Docker with EM_TEST_SERVICES=testcontainers (after infra/docker/build.sh kafka redis).`;

interface Services {
  brokers: string;
  redisUrl: string;
  from: string;
  stop?: () => Promise<void>;
}

/** Kafka and Redis from the local images, through Testcontainers, on the host network. */
async function startContainers(): Promise<Services> {
  // Ryuk, Testcontainers' reaper, is an image from Docker Hub: off unless the environment says.
  process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
  // Testcontainers finds the containers' host through the bridge network's gateway; an engine
  // without a bridge (host network only, as here) has none, and every container is on loopback.
  process.env.TESTCONTAINERS_HOST_OVERRIDE ??= '127.0.0.1';
  const { GenericContainer, Wait } = await import('testcontainers');
  const [kafkaPort, controllerPort, redisPort] = [await freePort(), await freePort(), await freePort()];
  const [kafka, redis] = await Promise.all([
    new GenericContainer('emotionmuse/kafka:local')
      .withNetworkMode('host')
      .withEnvironment({ KAFKA_PORT: String(kafkaPort), KAFKA_CONTROLLER_PORT: String(controllerPort) })
      .withWaitStrategy(Wait.forHealthCheck())
      .withStartupTimeout(120_000)
      .start(),
    new GenericContainer('emotionmuse/redis:local')
      .withNetworkMode('host')
      .withCommand(['--port', String(redisPort), '--bind', '127.0.0.1', '--save', ''])
      .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/))
      .withStartupTimeout(60_000)
      .start(),
  ]);
  return {
    brokers: `127.0.0.1:${kafkaPort}`,
    redisUrl: `redis://127.0.0.1:${redisPort}`,
    from: `Testcontainers (emotionmuse/kafka:local ${kafka.getId().slice(0, 12)}, emotionmuse/redis:local ${redis.getId().slice(0, 12)})`,
    stop: async () => {
      await Promise.all([kafka.stop({ timeout: 20_000 }), redis.stop()]);
    },
  };
}

/** Endpoints from where EM_TEST_SERVICES says (tests/support/services.ts). */
async function resolveServices(): Promise<Services> {
  const { source, why } = await chooseServices(process.env, { engineAnswers, missingImages: () => missingImages(['emotionmuse/kafka:local', 'emotionmuse/redis:local']) });
  console.log(`[integration] services from ${source}: ${why}`);
  if (source === 'environment') return { brokers: process.env.EM_KAFKA_BROKERS!, redisUrl: process.env.EM_REDIS_URL!, from: 'environment' };
  if (source === 'testcontainers') return startContainers();
  const up = spawnSync('bash', [`${ROOT}/infra/local.sh`, 'up', 'kafka', 'redis'], { stdio: 'inherit' });
  if (up.status !== 0) throw new Error(`the local launcher could not start Kafka and Redis.\n${HOW_TO_START}`);
  return {
    brokers: `127.0.0.1:${process.env.EM_KAFKA_PORT ?? 9092}`,
    redisUrl: `redis://127.0.0.1:${process.env.EM_REDIS_PORT ?? 6379}`,
    from: 'local launcher (infra/local.sh)',
  };
}

const security = loadConfig(securityOptions, { env: process.env, allowUnknownFlags: true });

async function check(services: Services): Promise<void> {
  const admin = createKafka({ brokers: services.brokers.split(','), clientId: 'emotionmuse-test-setup', security: kafkaSecurity(security, 'admin') }).admin();
  try {
    await admin.connect();
    await admin.listTopics();
  } catch (err) {
    throw new Error(`integration tests need Kafka, and ${services.brokers} (${services.from}) does not answer: ${(err as Error).message}\n${HOW_TO_START}`);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  const redis = new Redis(services.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, ...redisSecurity({ ...security, redisUrl: services.redisUrl }, 'admin') });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`integration tests need Redis, and ${services.redisUrl} (${services.from}) does not answer: ${(err as Error).message}\n${HOW_TO_START}`);
  } finally {
    redis.disconnect();
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const services = await resolveServices();
  await check(services);
  console.log(`[integration] Kafka ${services.brokers}, Redis ${services.redisUrl} (from ${services.from})${security.security === 'on' ? ', SECURED: SASL_SSL + ACLs, Redis TLS + ACL users' : ''}`);
  project.provide('kafkaBrokers', services.brokers);
  project.provide('redisUrl', services.redisUrl);
  project.provide('servicesFrom', services.from);
  return async () => {
    await services.stop?.();
  };
}
