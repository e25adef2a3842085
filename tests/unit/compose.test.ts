import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { commonOptions, processorOptions } from '../../runtime/common-config.ts';
import { PROCESSORS } from '../../processors/index.ts';
import { gatewayOptions } from '../../gateway/options.ts';

// What can be checked of the compose file without an engine; tests/docker/compose.test.ts runs it.
const INFRA = fileURLToPath(new URL('../../infra/', import.meta.url));
type Service = { image?: string; network_mode?: string; command?: string[]; profiles?: string[]; depends_on?: Record<string, unknown> | string[]; volumes?: string[]; ports?: string[]; environment?: Record<string, string> };
const compose = parse(readFileSync(path.join(INFRA, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
/** `${VAR:-default}` as compose fills it in with nothing set. */
const withDefaults = (s: string) => s.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
const APP_IMAGE = '${EM_IMAGE:-emotionmuse:local}';

describe('infra/docker-compose.yml', () => {
  const services = compose.services;

  it('has Kafka, Redis, Prometheus, Grafana, the topic setup and every processor, each from a local image but Grafana', () => {
    for (const name of ['kafka', 'redis', 'prometheus', 'grafana', 'topics', 'gateway', ...Object.keys(PROCESSORS)]) expect(services).toHaveProperty(name);
    for (const [name, service] of Object.entries(services)) {
      if (name === 'grafana') {
        // Docker Hub's image: only in its own profile, so that `up` never tries to pull it
        expect(service.profiles).toEqual(['grafana']);
        continue;
      }
      expect(service.image === APP_IMAGE || /^emotionmuse\/[a-z]+:local$/.test(service.image ?? ''), `${name}: ${service.image}`).toBe(true);
    }
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
    }
  });

  it('runs every container on the host network, listening on loopback only but the gateway', () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.network_mode, name).toBe('host');
      expect(service.ports ?? [], `${name} publishes nothing (host network)`).toEqual([]);
      if (service.image === APP_IMAGE && name !== 'topics') expect(service.environment?.EM_HTTP_HOST, name).toBe('127.0.0.1');
    }
    expect(services.redis!.command!.join(' ')).toContain('--bind 127.0.0.1');
    expect(withDefaults(services.prometheus!.command!.join(' '))).toContain('--web.listen-address=127.0.0.1:9090');
    expect(services.kafka!.environment?.KAFKA_HOST ?? '127.0.0.1').toBe('127.0.0.1');
    expect(services.grafana!.environment?.GF_SERVER_HTTP_ADDR).toBe('127.0.0.1');
  });

  it('gives each stage a port of its own, and Prometheus scrapes every one of them', () => {
    const prom = readFileSync(path.join(INFRA, 'prometheus/prometheus.compose.yml'), 'utf8');
    const ports = new Map<string, number>();
    for (const name of Object.keys(PROCESSORS)) ports.set(name, Number(services[name]!.environment!.EM_HTTP_PORT));
    ports.set('gateway', Number(withDefaults(services.gateway!.environment!.EM_GATEWAY_PORT!)));
    expect(new Set(ports.values()).size).toBe(ports.size);
    for (const [name, port] of ports) expect(prom, name).toContain(`127.0.0.1:${port}"`);
    // the classifier's replicas take the next ports: each of them is a scrape target too, and no
    // other stage's port is among them
    const tries = Number(services.classifier!.environment!.EM_HTTP_PORT_TRIES);
    const first = ports.get('classifier')!;
    for (let p = first; p < first + tries; p++) {
      expect(prom).toContain(`127.0.0.1:${p}"`);
      for (const [name, port] of ports) if (name !== 'classifier') expect(port).not.toBe(p);
    }
  });

  it('runs processors with commands the CLI knows and environment variables the config reads', () => {
    // EM_JWT_SECRET is read from the environment only (auth/options.ts), never as a flag.
    const stageOptions = Object.values(PROCESSORS).flatMap((p) => Object.values(p.options) as Array<{ env: string }>);
    const known = new Set([...[...Object.values({ ...commonOptions, ...processorOptions, ...gatewayOptions }), ...stageOptions].map((o) => o.env), 'EM_JWT_SECRET']);
    for (const name of Object.keys(PROCESSORS)) expect(services[name]!.command).toEqual(['run', name]);
    expect(services.gateway!.command).toEqual(['gateway']);
    expect(services.topics!.command).toEqual(['topics', 'apply']);
    for (const [name, service] of Object.entries(services)) {
      if (service.image !== APP_IMAGE) continue;
      for (const env of Object.keys(service.environment ?? {})) expect(known.has(env), `${name}: ${env}`).toBe(true);
    }
  });
});
