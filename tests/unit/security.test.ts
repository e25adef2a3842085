import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { configHelp, loadConfig } from '../../runtime/config.ts';
import { createLogger } from '../../runtime/log.ts';
import { kafkaSecurity, metricsAuth, redisSecurity, Secret, securityOptions } from '../../runtime/security.ts';
import { aclRules } from '../../topology/acls.ts';
import { buildTopology, topicName } from '../../topology/topology.ts';

const PASSWORD = 'hunter2-very-secret';

/** A secrets directory laid out as infra/local.sh makes it. */
function secretsDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'em-secrets-'));
  writeFileSync(path.join(dir, 'ca.crt'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  for (const p of ['admin', 'smoother']) writeFileSync(path.join(dir, `kafka-${p}.password`), `${PASSWORD}-${p}\n`);
  for (const u of ['emotionmuse', 'admin']) writeFileSync(path.join(dir, `redis-${u}.password`), `${PASSWORD}-redis-${u}\n`);
  writeFileSync(path.join(dir, 'metrics.password'), `${PASSWORD}-metrics\n`);
  return dir;
}

describe('secrets', () => {
  it('come from the variable or from the file <VAR>_FILE or the flag names, never from a flag\'s value', () => {
    const dir = secretsDir();
    const file = path.join(dir, 'kafka-admin.password');
    expect(loadConfig(securityOptions, { env: { EM_KAFKA_PASSWORD: PASSWORD } }).kafkaPassword?.reveal()).toBe(PASSWORD);
    expect(loadConfig(securityOptions, { env: { EM_KAFKA_PASSWORD_FILE: file } }).kafkaPassword?.reveal()).toBe(`${PASSWORD}-admin`);
    expect(loadConfig(securityOptions, { argv: ['--kafka-password-file', file], env: {} }).kafkaPassword?.reveal()).toBe(`${PASSWORD}-admin`);
    expect(loadConfig(securityOptions, { env: {} }).kafkaPassword).toBeUndefined();
    expect(() => loadConfig(securityOptions, { env: { EM_REDIS_PASSWORD_FILE: path.join(dir, 'missing') } })).toThrow(/EM_REDIS_PASSWORD_FILE: cannot read .*missing \(ENOENT\)/);
  });

  it('print redacted wherever they go: JSON, inspect, strings, log lines, help', () => {
    const config = loadConfig(securityOptions, { env: { EM_KAFKA_PASSWORD: PASSWORD, EM_REDIS_PASSWORD: PASSWORD } });
    expect(config.kafkaPassword).toBeInstanceOf(Secret);
    expect(JSON.stringify(config)).not.toContain(PASSWORD);
    expect(JSON.stringify(config)).toContain('"kafkaPassword":"[redacted]"');
    expect(inspect(config)).not.toContain(PASSWORD);
    expect(`${config.redisPassword}`).toBe('[redacted]');
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => lines.push(chunk) > 0) as typeof process.stderr.write;
    try {
      createLogger('info').info('configuration', { config });
    } finally {
      process.stderr.write = write;
    }
    expect(lines.join('')).not.toContain(PASSWORD);
    expect(lines.join('')).toContain('[redacted]');
    const help = configHelp(securityOptions);
    expect(help).toMatch(/--kafka-password-file <file>\s+EM_KAFKA_PASSWORD\s+.*or a file: EM_KAFKA_PASSWORD_FILE/);
  });
});

describe('client security from configuration', () => {
  it('is plain by default, and in the secured mode TLS with the local CA and SCRAM-SHA-512 as the process\'s own principal', () => {
    expect(kafkaSecurity(loadConfig(securityOptions, { env: {} }), 'smoother')).toEqual({ ssl: undefined, sasl: undefined, describe: 'PLAINTEXT' });
    const dir = secretsDir();
    const secured = loadConfig(securityOptions, { env: { EM_SECURITY: 'on', EM_SECRETS_DIR: dir } });
    const k = kafkaSecurity(secured, 'smoother');
    expect(k.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'smoother', password: `${PASSWORD}-smoother` });
    expect(k.ssl).toMatchObject({ rejectUnauthorized: true, ca: [expect.stringContaining('BEGIN CERTIFICATE')] });
    expect(k.describe).toBe('SASL_SSL as User:smoother');
    expect(redisSecurity({ ...secured, redisUrl: 'redis://127.0.0.1:6379' })).toMatchObject({ username: 'emotionmuse', password: `${PASSWORD}-redis-emotionmuse`, tls: { rejectUnauthorized: true } });
    expect(redisSecurity({ ...secured, redisUrl: 'redis://127.0.0.1:6379' }, 'admin')).toMatchObject({ username: 'admin', password: `${PASSWORD}-redis-admin` });
    expect(metricsAuth(secured)?.password.reveal()).toBe(`${PASSWORD}-metrics`);
    expect(metricsAuth(loadConfig(securityOptions, { env: {} }))).toBeUndefined();
  });

  it('takes explicit settings over the secured defaults, and says what is missing', () => {
    const dir = secretsDir();
    const c = loadConfig(securityOptions, { env: { EM_KAFKA_SASL_MECHANISM: 'plain', EM_KAFKA_USERNAME: 'svc', EM_KAFKA_PASSWORD: 'p', EM_KAFKA_SSL: 'on', EM_KAFKA_SSL_CA_FILE: path.join(dir, 'ca.crt') } });
    expect(kafkaSecurity(c, 'admin')).toMatchObject({ sasl: { mechanism: 'plain', username: 'svc', password: 'p' }, describe: 'SASL_SSL as User:svc' });
    expect(() => kafkaSecurity(loadConfig(securityOptions, { env: { EM_KAFKA_SASL_MECHANISM: 'scram-sha-256' } }), 'admin')).toThrow(/needs a password/);
    expect(() => kafkaSecurity(loadConfig(securityOptions, { env: { EM_SECURITY: 'on', EM_SECRETS_DIR: path.join(dir, 'nope') } }), 'admin')).toThrow(/cannot read .*ca\.crt/);
    expect(redisSecurity({ ...loadConfig(securityOptions, { env: {} }), redisUrl: 'rediss://r:6380' })).toEqual({ tls: { rejectUnauthorized: true } });
  });
});

describe('ACLs from the topology', () => {
  const t = buildTopology({ prefix: 'p.' });
  const rules = aclRules(t);
  const allowed = (principal: string, op: string, topic: string) =>
    rules.some((r) => r.principal === `User:${principal}` && r.resource === 'topic' && r.operations.includes(op as never) && (r.pattern === 'literal' ? r.name === topic : topic.startsWith(r.name)));

  it('let each processor read its inputs and write its outputs, and nothing else', () => {
    for (const p of t.processors) {
      for (const topic of t.topics) {
        expect(allowed(p.name, 'read', topic.name), `${p.name} reads ${topic.name}`).toBe(p.inputs.includes(topic.id as never));
        expect(allowed(p.name, 'write', topic.name), `${p.name} writes ${topic.name}`).toBe(p.outputs.includes(topic.id as never));
      }
    }
    expect(allowed('smoother', 'read', topicName(t, 'frames'))).toBe(false);
    expect(allowed('smoother', 'write', 'p.smoother.state-v9.changelog')).toBe(true);
    expect(allowed('smoother', 'write', 'p.passthrough.state-v1.changelog')).toBe(false);
  });

  it('give the clients only what they declare, groups and transactional ids by their own name', () => {
    expect(allowed('edge', 'write', topicName(t, 'frames'))).toBe(true);
    expect(rules.filter((r) => r.principal === 'User:edge' && r.operations.includes('read'))).toEqual([]);
    expect(allowed('gateway', 'read', topicName(t, 'recommendations'))).toBe(true);
    expect(allowed('gateway', 'write', topicName(t, 'emotion-scores'))).toBe(false);
    const groups = rules.filter((r) => r.resource === 'group');
    for (const g of groups) expect(g.name.startsWith(`p.${g.principal.slice(5)}`), `${g.principal} owns ${g.name}`).toBe(true);
    const txn = rules.filter((r) => r.resource === 'transactional-id');
    expect(txn.map((r) => r.name).sort()).toEqual(t.processors.map((p) => `p.${p.name}.`).sort());
    expect(rules.some((r) => r.principal === 'User:admin')).toBe(false);
  });
});
