import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { Redis } from 'ioredis';
import { loadConfig } from '../../runtime/config.ts';
import { createKafka } from '../../runtime/kafka.ts';
import { kafkaSecurity, redisSecurity, securityOptions } from '../../runtime/security.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    redisUrl: string;
    servicesFrom: string;
  }
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HOW_TO_START = `Start them with \`npm run infra:up\` (local Kafka jars + Debian redis-server), or point the
tests at running ones with EM_KAFKA_BROKERS=host:port and EM_REDIS_URL=redis://host:port.`;

interface Services {
  brokers: string;
  redisUrl: string;
  from: string;
  stop?: () => Promise<void>;
}

async function dockerAnswers(): Promise<boolean> {
  if (process.env.EM_TEST_NO_DOCKER === '1') return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    const client = await Promise.race([
      getContainerRuntimeClient(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 5000)),
    ]);
    return Boolean(client);
  } catch {
    return false;
  }
}

/** Endpoints from the environment first, then Testcontainers where a Docker engine answers, else the local launcher. */
async function resolveServices(): Promise<Services> {
  if (process.env.EM_KAFKA_BROKERS && process.env.EM_REDIS_URL) {
    return { brokers: process.env.EM_KAFKA_BROKERS, redisUrl: process.env.EM_REDIS_URL, from: 'environment' };
  }
  if (await dockerAnswers()) {
    const { KafkaContainer } = await import('@testcontainers/kafka');
    const { RedisContainer } = await import('@testcontainers/redis');
    const [kafka, redis] = await Promise.all([
      new KafkaContainer('confluentinc/cp-kafka:7.9.0').withKraft().start(),
      new RedisContainer('redis:7-alpine').start(),
    ]);
    return {
      brokers: `${kafka.getHost()}:${kafka.getMappedPort(9093)}`,
      redisUrl: redis.getConnectionUrl(),
      from: 'testcontainers',
      stop: async () => {
        await Promise.all([kafka.stop(), redis.stop()]);
      },
    };
  }
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
