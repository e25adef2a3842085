import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { commonOptions, processorOptions } from '../../runtime/common-config.ts';
import { PROCESSORS } from '../../processors/index.ts';
import { gatewayOptions } from '../../gateway/options.ts';

// Docker cannot run here: check the compose file as far as it can be checked without an engine.
const INFRA = fileURLToPath(new URL('../../infra/', import.meta.url));
const compose = parse(readFileSync(path.join(INFRA, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, { image?: string; build?: { context: string; dockerfile: string }; command?: string[]; depends_on?: Record<string, unknown> | string[]; volumes?: string[]; ports?: string[]; environment?: Record<string, string> }>;
  volumes: Record<string, unknown>;
};

describe('infra/docker-compose.yml', () => {
  const services = compose.services;

  it('has Kafka, Redis, Prometheus, Grafana, the topic setup and every processor', () => {
    for (const name of ['kafka', 'redis', 'prometheus', 'grafana', 'topics', 'gateway', ...Object.keys(PROCESSORS)]) expect(services).toHaveProperty(name);
  });

  it('depends only on services that exist, and names only declared volumes or files that exist', () => {
    for (const [name, service] of Object.entries(services)) {
      const deps = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
      for (const dep of deps) expect(services, `${name} depends on ${dep}`).toHaveProperty(dep);
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.')) expect(existsSync(path.resolve(INFRA, source)), `${name}: ${source}`).toBe(true);
        else expect(compose.volumes, `${name}: volume ${source}`).toHaveProperty(source);
      }
      if (service.build) expect(existsSync(path.resolve(INFRA, service.build.context, service.build.dockerfile))).toBe(true);
      expect(service.image ?? service.build, `${name} has an image or a build`).toBeTruthy();
    }
  });

  it('publishes nothing but the gateway on the host\'s network: Kafka on loopback only, Redis not at all', () => {
    expect(services.redis!.ports ?? []).toEqual([]);
    for (const [name, service] of Object.entries(services)) {
      if (name === 'gateway') continue;
      for (const p of service.ports ?? []) expect(p, `${name} publishes ${p}`).toMatch(/^127\.0\.0\.1:/);
    }
  });

  it('publishes each host port once', () => {
    const hostPorts = Object.values(services).flatMap((s) => (s.ports ?? []).map((p) => p.split(':').slice(0, -1).join(':')));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
  });

  it('runs processors with commands the CLI knows and environment variables the config reads', () => {
    // EM_JWT_SECRET is read from the environment only (auth/options.ts), never as a flag.
    const known = new Set([...Object.values({ ...commonOptions, ...processorOptions, ...gatewayOptions }).map((o) => o.env), 'EM_JWT_SECRET']);
    for (const name of Object.keys(PROCESSORS)) expect(services[name]!.command).toEqual(['run', name]);
    expect(services.gateway!.command).toEqual(['gateway']);
    for (const [name, service] of Object.entries(services)) {
      if (!service.build) continue;
      for (const env of Object.keys(service.environment ?? {})) expect(known.has(env), `${name}: ${env}`).toBe(true);
    }
  });

  it('points Prometheus at every processor container', () => {
    const prom = readFileSync(path.join(INFRA, 'prometheus/prometheus.compose.yml'), 'utf8');
    for (const name of Object.keys(PROCESSORS)) expect(prom).toContain(`${name}:9100`);
    expect(prom).toContain('gateway:8080');
  });
});
