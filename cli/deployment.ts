import { STATE_VERSIONS } from '../processors/index.ts';
import { buildTopology, type Topology } from '../topology/topology.ts';

/** The deployment's topology from the common options, with the stateful processors' state versions. */
export function deploymentTopology(c: { readonly topicPrefix?: string; readonly partitions?: number; readonly replicationFactor?: number } = {}): Topology {
  return buildTopology({ prefix: c.topicPrefix, partitions: c.partitions, replicationFactor: c.replicationFactor, stateVersions: STATE_VERSIONS });
}
