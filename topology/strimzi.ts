import { aclRules, type AclOperation, type AclRule } from './acls.ts';
import { desiredConfig } from './apply.ts';
import { allTopics, topicName, type Topology } from './topology.ts';

/**
 * The Kubernetes resources that follow from the topology, so that they cannot drift from it
 * (scripts/gen-k8s.ts writes them under deploy/k8s/, and a unit test fails when a committed file
 * differs): a Strimzi KafkaTopic per topic, a KafkaUser per principal with the ACLs of acls.ts,
 * and a KEDA ScaledObject per stage on its consumer group's lag.
 */
export type Manifest = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string } & Record<string, unknown> };

/** The name of the Strimzi `Kafka` resource; its bootstrap Service is `<name>-kafka-bootstrap`. */
export const KAFKA_CLUSTER = 'emotionmuse';
/** The listener the applications use: TLS with SCRAM-SHA-512 (Strimzi's internal `tls` listener). */
export const KAFKA_BOOTSTRAP = `${KAFKA_CLUSTER}-kafka-bootstrap:9093`;
/** The principal KEDA reads consumer-group lag as (describe only). */
export const KEDA_PRINCIPAL = 'keda';
const LABELS = { 'strimzi.io/cluster': KAFKA_CLUSTER, 'app.kubernetes.io/part-of': 'emotionmuse' };

/** KafkaTopic resources: every topic of the deployment with its partitions, replicas and configuration. */
export function kafkaTopics(topology: Topology): Manifest[] {
  return allTopics(topology).map((t) => ({
    apiVersion: 'kafka.strimzi.io/v1',
    kind: 'KafkaTopic',
    metadata: { name: t.name, labels: LABELS },
    spec: { topicName: t.name, partitions: t.partitions, replicas: t.replicationFactor, config: desiredConfig(t) },
  }));
}

const STRIMZI_OPERATION: Record<AclOperation, string> = { read: 'Read', write: 'Write', create: 'Create', delete: 'Delete', describe: 'Describe', 'describe-configs': 'DescribeConfigs' };
const STRIMZI_RESOURCE: Record<AclRule['resource'], string> = { topic: 'topic', group: 'group', 'transactional-id': 'transactionalId' };

function user(name: string, acls: readonly AclRule[] | undefined): Manifest {
  const spec: Record<string, unknown> = { authentication: { type: 'scram-sha-512' } };
  if (acls) {
    spec.authorization = {
      type: 'simple',
      acls: acls.map((r) => ({
        type: 'allow',
        resource: { type: STRIMZI_RESOURCE[r.resource], name: r.name, patternType: r.pattern === 'prefixed' ? 'prefix' : 'literal' },
        operations: r.operations.map((op) => STRIMZI_OPERATION[op]),
      })),
    };
  }
  return { apiVersion: 'kafka.strimzi.io/v1', kind: 'KafkaUser', metadata: { name, labels: LABELS }, spec };
}

/**
 * KafkaUser resources: one SCRAM principal per processor and client with exactly the ACLs of
 * topology/acls.ts, `admin` (a super user in the Kafka resource, so without ACLs of its own) and
 * `keda`, which may only describe the deployment's topics and groups (to read their lag). The
 * user operator keeps each password in a Secret of the user's name.
 */
export function kafkaUsers(topology: Topology): Manifest[] {
  const rules = aclRules(topology);
  const principals = [...topology.processors.map((p) => p.name), ...topology.clients.map((c) => c.name)];
  return [
    ...principals.map((p) => user(p, rules.filter((r) => r.principal === `User:${p}`))),
    user(KEDA_PRINCIPAL, [
      { principal: `User:${KEDA_PRINCIPAL}`, resource: 'topic', pattern: 'prefixed', name: topology.prefix, operations: ['describe'] },
      { principal: `User:${KEDA_PRINCIPAL}`, resource: 'group', pattern: 'prefixed', name: topology.prefix, operations: ['describe'] },
    ]),
    user('admin', undefined),
  ];
}

/**
 * A KEDA ScaledObject per stage (the passthrough demo excepted): its Deployment follows its
 * consumer group's lag on each input topic, from one replica up to one per partition (a replica
 * more would hold no partition).
 */
export function scaledObjects(topology: Topology, o: { lagThreshold: number; stages?: readonly string[] }): Manifest[] {
  const stages = o.stages ?? ['classifier', 'smoother', 'recommender'];
  return topology.processors.filter((p) => stages.includes(p.name)).map((p) => ({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: p.name, labels: { 'app.kubernetes.io/part-of': 'emotionmuse', 'app.kubernetes.io/component': p.name } },
    spec: {
      scaleTargetRef: { name: p.name },
      minReplicaCount: 1,
      maxReplicaCount: Math.min(...p.inputs.map((id) => topology.topics.find((t) => t.id === id)!.partitions)),
      pollingInterval: 15,
      cooldownPeriod: 300,
      triggers: p.inputs.map((id) => ({
        type: 'kafka',
        metadata: {
          bootstrapServers: KAFKA_BOOTSTRAP,
          consumerGroup: `${topology.prefix}${p.name}`,
          topic: topicName(topology, id),
          lagThreshold: String(o.lagThreshold),
          // a stage never scales past its partitions (KEDA's own bound, made explicit)
          allowIdleConsumers: 'false',
          sasl: 'scram_sha512',
          tls: 'enable',
        },
        authenticationRef: { name: 'keda-kafka' },
      })),
    },
  }));
}

/** The shapes of the Kubernetes overlays (deploy/k8s/overlays/<name>). */
export interface ClusterShape {
  /** Partitions of every user-keyed topic: the most replicas any stage can run. */
  readonly partitions: number;
  readonly replicationFactor: number;
  /** Records behind per replica before KEDA adds one. */
  readonly lagThreshold: number;
  /**
   * Gateway instances that split the users by partition (gateway/routing.ts): a StatefulSet of
   * this many pods, each reached through a host of its own. At most `partitions`.
   */
  readonly gatewayInstances: number;
  /** The public host of the gateway; instance i is also `gw-<i>.<host>`. */
  readonly gatewayHost: string;
}

export const K8S_OVERLAYS: Readonly<Record<'dev' | 'prod', ClusterShape>> = {
  // one broker that is also the controller: a laptop cluster (kind, minikube)
  dev: { partitions: 6, replicationFactor: 1, lagThreshold: 200, gatewayInstances: 1, gatewayHost: 'emotionmuse.example.com' },
  // three brokers and three controllers. 240 partitions, sized before the first deployment
  // because a keyed stateful topic cannot grow later (README, "Kubernetes and scaling"): by the
  // capacity model (npm run bench:capacity, bench/results/capacity-2026-12-07.md), 10,000 users
  // sending crops to the served ensemble classifier need 240 (191 classifier pods), 10,000 in
  // scores mode 120; 240 divides evenly among 1-6, 8, 10, 12, 15, 16, 20, 24, 30, 40, 48, 60, 80,
  // 120 and 240 replicas. 12 gateway instances hold about 1,600 to 2,400 users (130 to 200 each
  // by the model, scores and crop mode); raising the count is a configuration change, not a
  // migration.
  prod: { partitions: 240, replicationFactor: 3, lagThreshold: 500, gatewayInstances: 12, gatewayHost: 'emotionmuse.example.com' },
};

/** The host of gateway instance `i` (where the other instances send its users' clients). */
export function gatewayInstanceHost(shape: ClusterShape, i: number): string {
  return `gw-${i}.${shape.gatewayHost}`;
}

/**
 * The routed gateway of an overlay: the StatefulSet's replica count, the ConfigMap that tells each
 * pod how many instances there are and where each is reached (its own index comes from the pod's
 * `apps.kubernetes.io/pod-index` label), a Service per pod, and an Ingress with a host per pod.
 * The shared host (base/gateway.yaml) reaches any pod, which sends a client elsewhere when
 * another instance serves its user.
 */
export function gatewayRouting(shape: ClusterShape): Manifest[] {
  const n = shape.gatewayInstances;
  if (!Number.isInteger(n) || n < 1 || n > shape.partitions) throw new Error(`gateway instances must be 1 to ${shape.partitions} (the partitions), not ${n}`);
  const labels = { 'app.kubernetes.io/name': 'emotionmuse', 'app.kubernetes.io/component': 'gateway' };
  const instances = Array.from({ length: n }, (_, i) => i);
  return [
    { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'gateway' }, spec: { replicas: n } },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'gateway-routing', labels },
      data: { EM_GATEWAY_INSTANCES: String(n), EM_GATEWAY_PEERS: instances.map((i) => `https://${gatewayInstanceHost(shape, i)}`).join(',') },
    },
    ...instances.map((i) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `gateway-${i}`, labels },
      spec: { selector: { ...labels, 'statefulset.kubernetes.io/pod-name': `gateway-${i}` }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
    })),
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'gateway-instances', labels },
      spec: {
        rules: instances.map((i) => ({
          host: gatewayInstanceHost(shape, i),
          http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: `gateway-${i}`, port: { name: 'http' } } } }] },
        })),
      },
    },
  ];
}
