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
    ...extra,
  };
}

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

/**
 * Every user's frames came out exactly once and in order: for each key, the output sequence
 * numbers are exactly 1..perUser.
 */
export function assertExactlyOnceInOrder(outputs: readonly Collected[], users: number, perUser: number): void {
  const byUser = new Map<string, number[]>();
  for (const r of outputs) {
    const f = registry.decode('frame', r.value!);
    if (f.userId !== r.key) throw new Error(`record keyed ${r.key} holds user ${f.userId}`);
    const list = byUser.get(f.userId) ?? [];
    list.push(f.seq);
    byUser.set(f.userId, list);
  }
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
 * At least once, in order: every input of every user comes out, the first time in sequence
 * order. Repeats (a stretch processed again after a crash) are allowed; their count is returned.
 */
export function assertAtLeastOnceInOrder(outputs: readonly Collected[], users: number, perUser: number): number {
  const byUser = new Map<string, number[]>();
  for (const r of outputs) {
    const f = registry.decode('frame', r.value!);
    if (f.userId !== r.key) throw new Error(`record keyed ${r.key} holds user ${f.userId}`);
    const list = byUser.get(f.userId) ?? [];
    list.push(f.seq);
    byUser.set(f.userId, list);
  }
  const problems: string[] = [];
  let repeats = 0;
  if (byUser.size !== users) problems.push(`expected ${users} users, saw ${byUser.size}`);
  for (const [user, seqs] of byUser) {
    const seen = new Set<number>();
    const firsts = seqs.filter((s) => !seen.has(s) && seen.add(s));
    repeats += seqs.length - firsts.length;
    const outOfOrder = firsts.findIndex((s, i) => s !== i + 1);
    if (firsts.length !== perUser || outOfOrder >= 0) problems.push(`${user}: ${firsts.length} distinct outputs for ${perUser} inputs, first out-of-order index ${outOfOrder}`);
  }
  if (problems.length > 0) throw new Error(`not at least once in order:\n  ${problems.slice(0, 10).join('\n  ')}`);
  return repeats;
}
