/**
 * The capacity model of `npm run bench:capacity`: from what one user costs (measured on this
 * machine, bench/capacity.ts) to the pods, partitions, brokers and Redis shards a number of users
 * needs. Pure arithmetic, unit-tested (tests/unit/capacity-model.test.ts); every assumption is a
 * field of `Assumptions`, printed with the table.
 */

/** The processes whose CPU the model sizes. */
export const COMPONENTS = ['gateway', 'classifier', 'smoother', 'recommender', 'broker', 'redis'] as const;
export type Component = (typeof COMPONENTS)[number];
/** The components that run as pods of the project's image, one Node process each. */
export const APP_COMPONENTS = ['gateway', 'classifier', 'smoother', 'recommender'] as const;
export type AppComponent = (typeof APP_COMPONENTS)[number];

/** What one user costs, in one mode, measured at the bench's frame rate. */
export interface PerUser {
  /** Cores (CPU seconds per second) each component spends on one user. */
  readonly cores: Readonly<Record<Component, number>>;
  /** Bytes per second one user sends to the brokers (produce requests and everything else clients send), at replication factor 1. */
  readonly brokerBytesIn: number;
  /** Bytes per second the brokers send to clients for one user (fetch responses and the rest), at replication factor 1. */
  readonly brokerBytesOut: number;
  /** Bytes per second one user's records add to the partitions' logs, at replication factor 1. */
  readonly appendedBytes: number;
  /** Redis commands per second for one user. */
  readonly redisOps: number;
  /** Redis memory of one active user at steady state (bytes). */
  readonly redisBytes: number;
  /** Cores each process spends with no users at all (polls, heartbeats, timers): charged per pod, broker and shard. */
  readonly idleCores: Readonly<Record<Component, number>>;
}

export interface Assumptions {
  /** Cores of one machine (app nodes and brokers alike). */
  readonly coresPerMachine: number;
  /** Share of a core a pod or broker is planned to use on average (headroom for peaks and rebalances). */
  readonly utilization: number;
  /** Cores one app pod uses at most: a Node process runs its JavaScript on one thread. */
  readonly podCores: number;
  /** Replicas of every partition (the prod overlay's 3). */
  readonly replicationFactor: number;
  /** Network bytes per second a broker is planned to move in each direction (a 10 Gbit/s NIC at half). */
  readonly brokerNetworkBytes: number;
  /** Partition replicas one broker is planned to hold. */
  readonly partitionReplicasPerBroker: number;
  /** Bytes per second one partition of the busiest topic is planned to take. */
  readonly partitionBytes: number;
  /** Topics of the topology that get the declared partition count. */
  readonly partitionedTopics: number;
  /** Share of one core a Redis shard (single-threaded) is planned to use. */
  readonly redisUtilization: number;
  /** Memory a Redis master is planned to hold (its maxmemory). */
  readonly redisShardBytes: number;
  /** Fewest brokers and Redis masters (a quorum, and room to lose one). */
  readonly minBrokers: number;
  readonly minRedisShards: number;
}

export const DEFAULT_ASSUMPTIONS: Assumptions = {
  coresPerMachine: 16,
  utilization: 0.6,
  podCores: 1,
  replicationFactor: 3,
  brokerNetworkBytes: 625e6,
  partitionReplicasPerBroker: 4000,
  partitionBytes: 5e6,
  partitionedTopics: 6,
  redisUtilization: 0.5,
  redisShardBytes: 8 * 2 ** 30,
  minBrokers: 3,
  minRedisShards: 3,
};

/**
 * Partition counts with many divisors, so that any replica count that divides one splits the work
 * evenly (the next one up is taken).
 */
export const PARTITION_STEPS = [6, 12, 24, 36, 48, 60, 120, 180, 240, 360, 720, 1440, 2520, 5040, 10080, 20160, 40320] as const;

export interface Plan {
  readonly users: number;
  readonly framesPerSecond: number;
  readonly pods: Readonly<Record<AppComponent, number>>;
  readonly appCores: number;
  readonly appMachines: number;
  /** The fewest partitions the busiest stage and the per-partition byte rate allow. */
  readonly partitionsNeeded: number;
  /** `partitionsNeeded` rounded up to a count of PARTITION_STEPS. */
  readonly partitions: number;
  readonly brokers: number;
  /** What set the broker count. */
  readonly brokersBy: 'cpu' | 'network' | 'partitions' | 'minimum';
  /** Bytes per second into and out of all brokers together, replication included. */
  readonly brokerBytesIn: number;
  readonly brokerBytesOut: number;
  readonly redisShards: number;
  readonly redisShardsBy: 'cpu' | 'memory' | 'minimum';
  readonly redisOps: number;
  readonly redisBytes: number;
}

/** The smallest count of PARTITION_STEPS at or above `n`, or `n` itself past the last. */
export function partitionStep(n: number): number {
  return PARTITION_STEPS.find((p) => p >= n) ?? Math.ceil(n);
}

/** What `users` users cost, each sending `fps` frames a second as the bench's users did. */
export function plan(users: number, fps: number, u: PerUser, a: Assumptions = DEFAULT_ASSUMPTIONS): Plan {
  if (!(users > 0)) throw new Error(`users must be positive, not ${users}`);
  const room = (c: Component, cores: number) => {
    const left = cores * a.utilization - u.idleCores[c];
    if (!(left > 0)) throw new Error(`a ${c} at ${a.utilization} of ${cores} cores has no room left for users: it spends ${u.idleCores[c].toFixed(3)} cores idle`);
    return left;
  };
  const pods = Object.fromEntries(APP_COMPONENTS.map((c) => [c, Math.max(1, Math.ceil((users * u.cores[c]) / room(c, a.podCores)))])) as Record<AppComponent, number>;
  const appCores = APP_COMPONENTS.reduce((s, c) => s + pods[c] * a.podCores, 0);
  // Every consumer group has at most one member per partition; routed gateways own whole partitions too.
  const byConsumers = Math.max(...APP_COMPONENTS.map((c) => pods[c]));
  const byBytes = Math.ceil((users * u.appendedBytes) / a.partitionBytes);
  const partitionsNeeded = Math.max(byConsumers, byBytes);
  const partitions = partitionStep(partitionsNeeded);

  const rf = a.replicationFactor;
  // Followers append every record again and fetch it from its leader: broker CPU grows with the
  // replication factor (an upper bound: consumers' fetches are served once, by the leader).
  const brokerCores = users * u.cores.broker * rf;
  const brokerBytesIn = users * (u.brokerBytesIn + u.appendedBytes * (rf - 1));
  const brokerBytesOut = users * (u.brokerBytesOut + u.appendedBytes * (rf - 1));
  const candidates = {
    cpu: Math.ceil(brokerCores / room('broker', a.coresPerMachine)),
    network: Math.ceil(Math.max(brokerBytesIn, brokerBytesOut) / a.brokerNetworkBytes),
    partitions: Math.ceil((a.partitionedTopics * partitions * rf) / a.partitionReplicasPerBroker),
    minimum: a.minBrokers,
  };
  const [brokersBy, brokers] = pick(candidates);

  const redisOps = users * u.redisOps;
  const redisBytes = users * u.redisBytes;
  const [redisShardsBy, redisShards] = pick({
    cpu: Math.ceil((users * u.cores.redis) / (a.redisUtilization - u.idleCores.redis)),
    memory: Math.ceil(redisBytes / a.redisShardBytes),
    minimum: a.minRedisShards,
  });
  return {
    users,
    framesPerSecond: users * fps,
    pods,
    appCores,
    appMachines: Math.ceil(appCores / a.coresPerMachine),
    partitionsNeeded,
    partitions,
    brokers,
    brokersBy,
    brokerBytesIn,
    brokerBytesOut,
    redisShards,
    redisShardsBy,
    redisOps,
    redisBytes,
  };
}

/** The largest candidate and its name (the first of equals, so `minimum` names only a floor that decides). */
function pick<K extends string>(candidates: Record<K, number>): [K, number] {
  let best: [K, number] | undefined;
  for (const [k, v] of Object.entries(candidates) as Array<[K, number]>) if (!best || v > best[1]) best = [k, v];
  return best!;
}
