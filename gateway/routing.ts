import kafkajs, { type PartitionAssigner } from 'kafkajs';
import { EmotionMuseError } from '../schemas/errors.ts';

const { AssignerProtocol, Partitioners } = kafkajs;

/**
 * Which gateway instance serves which users. Every topic a gateway reads (scores, changes, lists)
 * is keyed by user id and has the same partition count, so a user's events are all on one
 * partition number. With `instances` gateways, instance i owns the partitions p with
 * p % instances = i: its fan-out reads only those, and a client of a user it does not own is
 * told which instance to use instead. One instance (the default) owns everything.
 */
export interface Routing {
  readonly instances: number;
  readonly instance: number;
  /** Base URL of each instance, by index (where a client is sent). */
  readonly peers: readonly string[];
  /** Partitions of the user-keyed topics. */
  readonly partitions: number;
}

// The partitioner every writer of the pipeline uses (kafkajs's default: murmur2, as Java's).
const partitioner = Partitioners.DefaultPartitioner();
const metadataCache = new Map<number, Array<{ partitionId: number; leader: number }>>();

/** The partition a record keyed by `userId` goes to, among `partitions`. */
export function userPartition(userId: string, partitions: number): number {
  let metadata = metadataCache.get(partitions);
  if (!metadata) metadataCache.set(partitions, (metadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 0 }))));
  return partitioner({ topic: '', partitionMetadata: metadata as never, message: { key: userId, value: null } });
}

/** The instance that serves `userId`. */
export function ownerOf(r: Routing, userId: string): number {
  return userPartition(userId, r.partitions) % r.instances;
}

/** The partitions instance `r.instance` reads. */
export function ownedPartitions(r: Routing): number[] {
  return Array.from({ length: r.partitions }, (_, p) => p).filter((p) => p % r.instances === r.instance);
}

/** Checks a routing's settings; throws with what is wrong. */
export function checkRouting(r: Routing): Routing {
  if (!Number.isInteger(r.instances) || r.instances < 1) throw new EmotionMuseError('CONFIG_INVALID', `--instances must be 1 or more, not ${r.instances}`);
  if (!Number.isInteger(r.instance) || r.instance < 0 || r.instance >= r.instances) throw new EmotionMuseError('CONFIG_INVALID', `--instance must be between 0 and ${r.instances - 1}, not ${r.instance}`);
  if (r.instances > 1 && r.peers.length !== r.instances) throw new EmotionMuseError('CONFIG_INVALID', `--peers must give the base URL of each of the ${r.instances} instances, by index (it gives ${r.peers.length})`);
  if (r.instances > r.partitions) throw new EmotionMuseError('CONFIG_INVALID', `${r.instances} instances for ${r.partitions} partitions: some would own none`);
  return r;
}

/**
 * A partition assigner for a consumer group of one member (each gateway's fan-out has a group of
 * its own): it gives the member only the partitions the instance owns, of every topic.
 */
export function ownedPartitionsAssigner(owned: readonly number[]): PartitionAssigner {
  return ({ cluster }) => ({
    name: 'EmotionMuseOwnedPartitions',
    version: 1,
    async assign({ members, topics }) {
      const assignment: Record<string, number[]> = {};
      for (const topic of topics) {
        const exists = new Set(cluster.findTopicPartitionMetadata(topic).map((m) => m.partitionId));
        assignment[topic] = owned.filter((p) => exists.has(p));
      }
      return members.map((m, i) => ({
        memberId: m.memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: i === 0 ? assignment : {}, userData: Buffer.alloc(0) }),
      }));
    },
    protocol({ topics }) {
      return { name: 'EmotionMuseOwnedPartitions', metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }) };
    },
  });
}
