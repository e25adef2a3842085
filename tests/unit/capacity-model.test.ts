import { describe, expect, it } from 'vitest';
import { DEFAULT_ASSUMPTIONS, partitionStep, plan, type PerUser } from '../../bench/capacity-model.ts';

// The arithmetic of bench:capacity's model (bench/capacity-model.ts), on made-up per-user costs
// whose answers can be worked out by hand.
const zero = { gateway: 0, classifier: 0, smoother: 0, recommender: 0, broker: 0, redis: 0 };
const user: PerUser = {
  cores: { gateway: 0.005, classifier: 0.01, smoother: 0.002, recommender: 0.0005, broker: 0.004, redis: 0.0001 },
  brokerBytesIn: 40_000,
  brokerBytesOut: 38_000,
  appendedBytes: 35_000,
  redisOps: 9,
  redisBytes: 20_000,
  idleCores: { ...zero, gateway: 0.1, classifier: 0.05, broker: 0.6 },
};

describe('capacity model', () => {
  it('rounds partitions up to a count with many divisors', () => {
    expect(partitionStep(1)).toBe(6);
    expect(partitionStep(6)).toBe(6);
    expect(partitionStep(7)).toBe(12);
    expect(partitionStep(121)).toBe(180);
    expect(partitionStep(50_000)).toBe(50_000);
  });

  it('sizes pods by cores per user over the room a pod has left after its idle cost', () => {
    const p = plan(10_000, 10, user);
    // classifier: 10,000 x 0.01 = 100 cores over (0.6 - 0.05) = 181.8 -> 182 pods
    expect(p.pods.classifier).toBe(182);
    // gateway: 50 cores over 0.5 -> 100 pods
    expect(p.pods.gateway).toBe(100);
    expect(p.pods.smoother).toBe(Math.ceil(20 / 0.6));
    expect(p.appCores).toBe(p.pods.gateway + p.pods.classifier + p.pods.smoother + p.pods.recommender);
    expect(p.appMachines).toBe(Math.ceil(p.appCores / 16));
    expect(p.framesPerSecond).toBe(100_000);
  });

  it('gives every consumer a partition of its own, and no partition more than its byte rate', () => {
    const p = plan(10_000, 10, user);
    expect(p.partitionsNeeded).toBe(p.pods.classifier);
    expect(p.partitions).toBe(240);
    // Bytes decide when a user's records are large: 350 MB/s over 5 MB/s a partition = 70, more than 1 pod each.
    const heavy = plan(10_000, 10, { ...user, cores: { ...zero }, appendedBytes: 35_000 });
    expect(heavy.partitionsNeeded).toBe(70);
    expect(heavy.partitions).toBe(120);
  });

  it('sizes brokers by the most of CPU, network and partition replicas, never under three', () => {
    const p = plan(10_000, 10, user);
    // CPU: 10,000 x 0.004 x 3 = 120 cores over (16 x 0.6 - 0.6) = 9 -> 14 brokers
    expect(p.brokers).toBe(14);
    expect(p.brokersBy).toBe('cpu');
    // replication traffic: 35 kB x 2 more per user on top of the clients' bytes
    expect(p.brokerBytesIn).toBe(10_000 * (40_000 + 70_000));
    expect(p.brokerBytesOut).toBe(10_000 * (38_000 + 70_000));
    const small = plan(100, 10, user);
    expect(small.brokers).toBe(3);
    expect(small.brokersBy).toBe('minimum');
    const network = plan(100_000, 10, { ...user, cores: { ...user.cores, broker: 0 } });
    expect(network.brokersBy).toBe('network');
    expect(network.brokers).toBe(Math.ceil((100_000 * 108_000) / DEFAULT_ASSUMPTIONS.brokerNetworkBytes));
  });

  it('sizes Redis masters by memory or CPU', () => {
    const p = plan(1_000_000, 10, user);
    // memory: 20 GB over 8 GiB -> 3; CPU: 100 cores of Redis over 0.5 -> 200
    expect(p.redisShards).toBe(200);
    expect(p.redisShardsBy).toBe('cpu');
    const memory = plan(1_000_000, 10, { ...user, cores: { ...user.cores, redis: 0 }, redisBytes: 100_000 });
    expect(memory.redisShardsBy).toBe('memory');
    expect(memory.redisShards).toBe(Math.ceil(1e11 / (8 * 2 ** 30)));
  });

  it('refuses a pod that its idle cost alone fills, and a user count that is not one', () => {
    expect(() => plan(10, 10, { ...user, idleCores: { ...user.idleCores, gateway: 0.7 } })).toThrow(/gateway .* no room left/);
    expect(() => plan(0, 10, user)).toThrow(/users must be positive/);
  });
});
