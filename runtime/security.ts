import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { SASLOptions } from 'kafkajs';
import type { RedisOptions } from 'ioredis';
import { opt, type ConfigOf } from './config.ts';
import { EmotionMuseError } from '../schemas/errors.ts';
import { Secret } from './secret.ts';

export { Secret };

/** The components that talk to Kafka, each as its own principal (`User:<name>`); `admin` is the tooling. */
export const PRINCIPALS = ['admin', 'classifier', 'smoother', 'recommender', 'passthrough', 'gateway', 'edge'] as const;
export type Principal = (typeof PRINCIPALS)[number];

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MECHANISMS = ['auto', 'none', 'plain', 'scram-sha-256', 'scram-sha-512'] as const;

/**
 * How a process authenticates to Kafka and Redis. Secrets are read from an environment variable
 * or from the file that `<VAR>_FILE` (or the flag) names, never from a flag's value. With
 * EM_SECURITY=on, whatever is not set comes from the secured local services that
 * `EM_SECURITY=on infra/local.sh up` starts: TLS with its CA, SCRAM-SHA-512 as this process's own
 * principal, Redis over TLS as the ACL user `emotionmuse` (the tooling: `admin`), basic auth on
 * /metrics.
 */
export const securityOptions = {
  security: opt.oneOf('EM_SECURITY', 'security', 'off', ['off', 'on'], 'on: TLS and SASL to Kafka, TLS and an ACL user to Redis, basic auth on /metrics; what is not set below comes from the secured local services (infra/local.sh with EM_SECURITY=on)'),
  secretsDir: opt.string('EM_SECRETS_DIR', 'secrets-dir', '', 'Where the secured mode\'s CA and password files are (default: .data/secrets of this checkout, where infra/local.sh makes them)'),
  kafkaSsl: opt.oneOf('EM_KAFKA_SSL', 'kafka-ssl', 'auto', ['auto', 'on', 'off'], 'TLS to the brokers; auto: on in the secured mode'),
  kafkaCaFile: opt.string('EM_KAFKA_SSL_CA_FILE', 'kafka-ssl-ca-file', '', 'PEM file of the CA that signed the brokers\' certificates (none: the system\'s CAs; secured mode: <secrets>/ca.crt)'),
  kafkaCertFile: opt.string('EM_KAFKA_SSL_CERT_FILE', 'kafka-ssl-cert-file', '', 'PEM client certificate, where the brokers ask for one (mutual TLS)'),
  kafkaKeyFile: opt.string('EM_KAFKA_SSL_KEY_FILE', 'kafka-ssl-key-file', '', 'PEM private key of the client certificate'),
  kafkaSaslMechanism: opt.oneOf('EM_KAFKA_SASL_MECHANISM', 'kafka-sasl-mechanism', 'auto', MECHANISMS, 'SASL mechanism; auto: scram-sha-512 in the secured mode, none otherwise'),
  kafkaUsername: opt.string('EM_KAFKA_USERNAME', 'kafka-username', '', 'SASL user (default: this process\'s principal: classifier, smoother, recommender, passthrough, gateway, edge or admin)'),
  kafkaPassword: opt.secret('EM_KAFKA_PASSWORD', 'kafka-password-file', 'SASL password (secured mode: <secrets>/kafka-<principal>.password)'),
  redisTls: opt.oneOf('EM_REDIS_TLS', 'redis-tls', 'auto', ['auto', 'on', 'off'], 'TLS to Redis; auto: on for rediss:// and rediss-cluster:// URLs and in the secured mode'),
  redisCaFile: opt.string('EM_REDIS_TLS_CA_FILE', 'redis-tls-ca-file', '', 'PEM file of the CA that signed Redis\' certificate (secured mode: <secrets>/ca.crt)'),
  redisUsername: opt.string('EM_REDIS_USERNAME', 'redis-username', '', 'Redis ACL user (secured mode: emotionmuse, or admin for the tooling)'),
  redisPassword: opt.secret('EM_REDIS_PASSWORD', 'redis-password-file', 'Redis password (secured mode: <secrets>/redis-<user>.password)'),
  metricsUsername: opt.string('EM_METRICS_USERNAME', 'metrics-username', '', 'Basic-auth user that /metrics asks for (secured mode: metrics)'),
  metricsPassword: opt.secret('EM_METRICS_PASSWORD', 'metrics-password-file', 'Basic-auth password of /metrics; unset: /metrics is open (secured mode: <secrets>/metrics.password)'),
} as const;

export type SecurityConfig = ConfigOf<typeof securityOptions>;

export function secretsDir(c: Pick<SecurityConfig, 'secretsDir'>, env: NodeJS.ProcessEnv = process.env): string {
  return c.secretsDir || env.EM_SECRETS_DIR || path.join(env.EM_DATA_DIR || path.join(ROOT, '.data'), 'secrets');
}

function readSecretFile(file: string, what: string): Secret {
  try {
    return new Secret(readFileSync(file, 'utf8').trim());
  } catch (err) {
    throw new EmotionMuseError('CONFIG_INVALID', `${what}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)}); in the secured mode, infra/local.sh up makes it`);
  }
}

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new EmotionMuseError('CONFIG_INVALID', `${what}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

export interface KafkaSecurity {
  readonly ssl?: ConnectionOptions;
  readonly sasl?: SASLOptions;
  /** For log lines: the principal and the protocol, never a secret. */
  readonly describe: string;
}

/** The TLS and SASL settings of a Kafka client acting as `principal`. */
export function kafkaSecurity(c: SecurityConfig, principal: Principal): KafkaSecurity {
  const on = c.security === 'on';
  const dir = secretsDir(c);
  const useSsl = c.kafkaSsl === 'on' || (c.kafkaSsl === 'auto' && on);
  const mechanism = c.kafkaSaslMechanism === 'auto' ? (on ? 'scram-sha-512' : 'none') : c.kafkaSaslMechanism;
  let ssl: ConnectionOptions | undefined;
  if (useSsl) {
    const caFile = c.kafkaCaFile || (on ? path.join(dir, 'ca.crt') : '');
    ssl = {
      rejectUnauthorized: true,
      ...(caFile ? { ca: [readPem(caFile, 'EM_KAFKA_SSL_CA_FILE')] } : {}),
      ...(c.kafkaCertFile ? { cert: readPem(c.kafkaCertFile, 'EM_KAFKA_SSL_CERT_FILE') } : {}),
      ...(c.kafkaKeyFile ? { key: readPem(c.kafkaKeyFile, 'EM_KAFKA_SSL_KEY_FILE') } : {}),
    };
  }
  let sasl: SASLOptions | undefined;
  const username = c.kafkaUsername || principal;
  if (mechanism !== 'none') {
    const password = c.kafkaPassword ?? (on ? readSecretFile(path.join(dir, `kafka-${username}.password`), 'the Kafka password') : undefined);
    if (!password) throw new EmotionMuseError('CONFIG_INVALID', `SASL ${mechanism} needs a password: set EM_KAFKA_PASSWORD or EM_KAFKA_PASSWORD_FILE`);
    sasl = { mechanism, username, password: password.reveal() } as SASLOptions;
  }
  return { ssl, sasl, describe: `${useSsl ? (sasl ? 'SASL_SSL' : 'SSL') : sasl ? 'SASL_PLAINTEXT' : 'PLAINTEXT'}${sasl ? ` as User:${username}` : ''}` };
}

/** The authentication and TLS options of a Redis connection (merged into the connection's own options). */
export function redisSecurity(c: SecurityConfig & { redisUrl: string }, user: 'emotionmuse' | 'admin' = 'emotionmuse'): RedisOptions {
  const on = c.security === 'on';
  const dir = secretsDir(c);
  const useTls = c.redisTls === 'on' || (c.redisTls === 'auto' && (on || c.redisUrl.startsWith('rediss:') || c.redisUrl.startsWith('rediss-cluster:')));
  const username = c.redisUsername || (on ? user : '');
  const password = c.redisPassword ?? (on ? readSecretFile(path.join(dir, `redis-${username}.password`), 'the Redis password') : undefined);
  const caFile = c.redisCaFile || (on ? path.join(dir, 'ca.crt') : '');
  return {
    ...(username ? { username } : {}),
    ...(password ? { password: password.reveal() } : {}),
    ...(useTls ? { tls: { rejectUnauthorized: true, ...(caFile ? { ca: [readPem(caFile, 'EM_REDIS_TLS_CA_FILE')] } : {}) } } : {}),
  };
}

/** The basic-auth credentials /metrics asks for, or undefined when it is open. */
export function metricsAuth(c: SecurityConfig): { username: string; password: Secret } | undefined {
  const on = c.security === 'on';
  const password = c.metricsPassword ?? (on ? readSecretFile(path.join(secretsDir(c), 'metrics.password'), 'the /metrics password') : undefined);
  if (!password) return undefined;
  return { username: c.metricsUsername || 'metrics', password };
}
