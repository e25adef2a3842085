import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { processorOptions } from '../../runtime/common-config.ts';
import { k8sFiles } from '../../scripts/k8s-files.ts';
import { K8S_OVERLAYS } from '../../topology/strimzi.ts';

// deploy/k8s/: the generated files match the topology, both overlays render and validate offline
// (core kinds, Strimzi and KEDA against their CRDs, Prometheus' config with promtool), and the
// validator fails on a broken manifest.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
type Doc = { kind: string; metadata: { name: string }; spec?: Record<string, unknown> } & Record<string, unknown>;

function render(overlay: string): { text: string; docs: Doc[] } {
  const r = spawnSync('kubectl', ['kustomize', path.join(ROOT, 'deploy/k8s/overlays', overlay)], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return { text: r.stdout, docs: parseAllDocuments(r.stdout).map((d) => d.toJS() as Doc) };
}
const check = (...args: string[]) => spawnSync('bash', [path.join(ROOT, 'scripts/check-k8s.sh'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });

describe('deploy/k8s', () => {
  it('holds exactly what the topology generates (npm run k8s:gen), so topics, users and ACLs cannot drift', () => {
    for (const [file, text] of k8sFiles()) expect(readFileSync(path.join(ROOT, file), 'utf8'), `${file} is stale: run npm run k8s:gen`).toBe(text);
  });

  it('renders and validates both overlays offline, Prometheus\' configuration included', () => {
    const r = check();
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout.match(/^valid: /gm)).toHaveLength(2);
    expect(r.stdout).toMatch(/SUCCESS: .*prometheus\.yml is valid/);
  }, 600_000);

  it('fails on a broken manifest, naming the resource and the field', () => {
    const { text } = render('dev');
    const broken = text
      .replace(/(kind: KafkaTopic\n(?:.*\n)*?  partitions: )6/, '$1six')
      .replace(/(kind: ScaledObject\n(?:.*\n)*?spec:\n)/, '$1  maxReplicas: 3\n')
      .replace(/(name: smoother\n(?:.*\n)*?      containers:\n      - )/, '$1imagePullPolice: Always\n        ');
    expect(broken).not.toBe(text);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'em-k8s-')), 'broken.yaml');
    writeFileSync(file, broken);
    const r = check('--file', file);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/KafkaTopic\/emotionmuse\.[\w.-]+: spec\.partitions: 'six' is not of type 'integer'/);
    expect(r.stdout).toMatch(/ScaledObject\/\w+: spec: Additional properties are not allowed \('maxReplicas' was unexpected\)/);
    expect(r.stdout).toMatch(/Deployment\/smoother: .*imagePullPolice/);
  }, 120_000);

  it('gives every stage probes, a grace period over its shutdown timeout, secrets as files, and at most one replica per partition', () => {
    for (const [overlay, shape] of Object.entries(K8S_OVERLAYS)) {
      const { docs } = render(overlay);
      const topics = docs.filter((d) => d.kind === 'KafkaTopic');
      expect(topics.length).toBeGreaterThan(0);
      for (const t of topics) if (!t.metadata.name.includes('dead-letter')) expect(t.spec!.partitions, t.metadata.name).toBe(shape.partitions);
      for (const stage of ['classifier', 'smoother', 'recommender', 'gateway']) {
        const deployment = docs.find((d) => d.kind === (stage === 'gateway' ? 'StatefulSet' : 'Deployment') && d.metadata.name === stage)!;
        const pod = (deployment.spec as { template: { spec: Record<string, unknown> } }).template.spec;
        const container = (pod.containers as Array<Record<string, Record<string, unknown> & { httpGet?: { path: string } }>>)[0]!;
        expect(container.readinessProbe!.httpGet!.path, `${overlay} ${stage}`).toBe('/readyz');
        expect(container.livenessProbe!.httpGet!.path).toBe('/healthz');
        expect(pod.terminationGracePeriodSeconds as number).toBeGreaterThan(processorOptions.shutdownTimeoutMs.default / 1000);
        expect(JSON.stringify(container.env ?? [])).not.toMatch(/secretKeyRef/);
        expect(docs.some((d) => d.kind === 'PodDisruptionBudget' && d.metadata.name === stage)).toBe(true);
        if (stage === 'gateway') continue;
        const scaled = docs.find((d) => d.kind === 'ScaledObject' && d.metadata.name === stage)!;
        expect(scaled.spec!.maxReplicaCount).toBe(shape.partitions);
      }
      // The routed gateway: one pod per instance, each told the count and every instance's URL, its
      // index from the pod's label, and reached through a Service and a host of its own.
      const gateway = docs.find((d) => d.kind === 'StatefulSet' && d.metadata.name === 'gateway')!;
      const gatewaySpec = gateway.spec as { replicas: number; template: { spec: { containers: Array<{ env: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>; envFrom: Array<{ configMapRef?: { name: string } }> }> } } };
      expect(gatewaySpec.replicas).toBe(shape.gatewayInstances);
      const gatewayContainer = gatewaySpec.template.spec.containers[0]!;
      expect(gatewayContainer.env.find((e) => e.name === 'EM_GATEWAY_INSTANCE')?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.labels['apps.kubernetes.io/pod-index']");
      const routingName = gatewayContainer.envFrom.map((e) => e.configMapRef?.name).find((n) => n?.startsWith('gateway-routing'));
      const routing = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === routingName) as unknown as { data: Record<string, string> };
      expect(routing.data.EM_GATEWAY_INSTANCES).toBe(String(shape.gatewayInstances));
      const peers = routing.data.EM_GATEWAY_PEERS!.split(',');
      expect(peers).toHaveLength(shape.gatewayInstances);
      const ingress = docs.find((d) => d.kind === 'Ingress' && d.metadata.name === 'gateway-instances') as unknown as { spec: { rules: Array<{ host: string; http: { paths: Array<{ backend: { service: { name: string } } }> } }> } };
      peers.forEach((peer, i) => {
        const rule = ingress.spec.rules.find((r) => `https://${r.host}` === peer)!;
        expect(rule, peer).toBeDefined();
        const service = docs.find((d) => d.kind === 'Service' && d.metadata.name === rule.http.paths[0]!.backend.service.name)!;
        expect((service.spec as { selector: Record<string, string> }).selector['statefulset.kubernetes.io/pod-name']).toBe(`gateway-${i}`);
      });
      expect(shape.gatewayInstances).toBeLessThanOrEqual(shape.partitions);
      const config = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name.startsWith('emotionmuse-config')) as unknown as { data: Record<string, string> };
      expect(config.data.EM_PARTITIONS).toBe(String(shape.partitions));
      expect(config.data.EM_REPLICATION_FACTOR).toBe(String(shape.replicationFactor));
    }
  });
});
