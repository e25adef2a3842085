import type { Message } from 'kafkajs';
import { SchemaRegistry } from '../../schemas/registry.ts';
import type { Frame } from '../../schemas/generated/types.ts';
import type { Collected } from './kafka.ts';

export const registry = SchemaRegistry.load();

export function frame(userId: string, seq: number, extra: Partial<Frame> = {}): Frame {
  return {
    userId,
    // A new session every 50 frames: the passthrough's per-session dedupe then cannot hide a
    // record processed twice (it would come out twice).
    sessionId: `${userId}-s${Math.floor((seq - 1) / 50)}`,
    seq,
    captureTimeMs: 1_764_000_000_000 + seq * 100,
    encoding: 'GRAY8',
    width: 2,
    height: 2,
    data: Buffer.from([seq & 255, 1, 2, 3]),
    faceBox: null,
    probabilities: [],
    edgeModelVersion: '',
    ...extra,
  };
}

/** The runtime crash tests' stream: 60 users x 167 frames = 10,020 keyed records (over 3 partitions). */
export const CRASH_USERS = 60;
export const CRASH_PER_USER = 167;

/** `users` users with `perUser` frames each, interleaved as clients would send them. */
export function keyedFrames(users: number, perUser: number): Message[] {
  const out: Message[] = [];
  for (let seq = 1; seq <= perUser; seq++) {
    for (let u = 0; u < users; u++) {
      const userId = `user-${u}`;
      out.push({ key: userId, value: registry.encode('frame', frame(userId, seq)) });
    }
  }
  return out;
}

/** The sequence numbers of the frames each user's outputs carry, in output order. */
function seqsByUser(outputs: readonly Collected[]): Map<string, number[]> {
  const byUser = new Map<string, number[]>();
  for (const r of outputs) {
    const f = registry.decode('frame', r.value!);
    if (f.userId !== r.key) throw new Error(`record keyed ${r.key} holds user ${f.userId}`);
    const list = byUser.get(f.userId) ?? [];
    list.push(f.seq);
    byUser.set(f.userId, list);
  }
  return byUser;
}

/**
 * Every user's frames came out exactly once and in order: for each key, the output sequence
 * numbers are exactly 1..perUser.
 */
export function assertExactlyOnceInOrder(outputs: readonly Collected[], users: number, perUser: number): void {
  const byUser = seqsByUser(outputs);
  const problems: string[] = [];
  if (byUser.size !== users) problems.push(`expected ${users} users, saw ${byUser.size}`);
  for (const [user, seqs] of byUser) {
    const dupes = seqs.length - new Set(seqs).size;
    const outOfOrder = seqs.findIndex((s, i) => i > 0 && s <= seqs[i - 1]!);
    if (seqs.length !== perUser || dupes > 0 || outOfOrder >= 0) {
      problems.push(`${user}: ${seqs.length} outputs for ${perUser} inputs, ${dupes} duplicates, first out-of-order index ${outOfOrder}`);
    }
  }
  if (problems.length > 0) throw new Error(`not exactly once in order:\n  ${problems.slice(0, 10).join('\n  ')}`);
}

/**
 * At least once, in order: every input of every user comes out, and each user's outputs are runs
 * of consecutive sequence numbers, a new run starting (at or below where the last one ended) only
 * where a restarted processor went back to its last committed offset. Returns the repeated
 * outputs and the most runs any user had.
 */
export function assertAtLeastOnceInOrder(outputs: readonly Collected[], users: number, perUser: number): { repeats: number; maxRuns: number } {
  const byUser = seqsByUser(outputs);
  const problems: string[] = [];
  let repeats = 0;
  let maxRuns = 0;
  if (byUser.size !== users) problems.push(`expected ${users} users, saw ${byUser.size}`);
  for (const [user, seqs] of byUser) {
    const distinct = new Set(seqs).size;
    repeats += seqs.length - distinct;
    let runs = 1;
    let broken = -1;
    seqs.forEach((s, i) => {
      if (i === 0) return;
      if (s <= seqs[i - 1]!) runs++;
      else if (s !== seqs[i - 1]! + 1 && broken < 0) broken = i;
    });
    maxRuns = Math.max(maxRuns, runs);
    if (distinct !== perUser || seqs[0] !== 1 || broken >= 0) problems.push(`${user}: ${distinct} distinct outputs for ${perUser} inputs, first ${seqs[0]}, a gap at index ${broken}`);
  }
  if (problems.length > 0) throw new Error(`not at least once in order:\n  ${problems.slice(0, 10).join('\n  ')}`);
  return { repeats, maxRuns };
}
