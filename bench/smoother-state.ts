/**
 * Smoother state memory: the heap that N users' smoothing state takes in a task's key state, and
 * what is left once they have been idle past --state-idle-ms and the batches that follow have
 * evicted them (runtime/key-state.ts). The smoother's own core processes every score, as in the
 * stage; the clock is simulated, so the run takes seconds, not the idle time.
 *
 * `npm run bench:smoother-state [-- --users 100000 --frames 20 --idle-ms 1800000]`
 * (node --expose-gc, so the heap is measured after a full collection).
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSmootherCore } from '../processors/smoother/core.ts';
import { KeyState, stageIdleEvictions } from '../runtime/key-state.ts';
import type { InputRecord } from '../runtime/processor.ts';
import type { EmotionScore } from '../schemas/generated/types.ts';
import { checkFlags, machine, table } from './machine.ts';

const USAGE = `usage: npm run bench:smoother-state -- [--users N] [--frames F] [--idle-ms MS] [--out FILE]

Feeds N users (default 100000) F face scores each (default 20, 2 s at 10 frames/s) through the
smoother core into one key state, then lets the simulated clock pass the idle limit (default
1800000 ms, the stage's default --state-idle-ms) and runs one-record batches of new users until
every idle user is evicted (at most 1000 a batch, as the runtime does). Prints the heap after a
full collection at each point, and writes the table to bench/results/smoother-state-<date>.md
(or --out).
`;
const flags = new Map<string, string>();
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i]!;
  if (a.startsWith('--')) flags.set(a.slice(2), process.argv[i + 1] && !process.argv[i + 1]!.startsWith('--') ? process.argv[++i]! : 'true');
}
checkFlags(flags, ['users', 'frames', 'idle-ms', 'out'], USAGE);
const users = Number(flags.get('users') ?? 100_000);
const frames = Number(flags.get('frames') ?? 20);
const idleMs = Number(flags.get('idle-ms') ?? 1_800_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:smoother-state does)');
const heapMiB = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

let now = 1_000_000;
const core = createSmootherCore();
const state = new KeyState<unknown>(() => now);
const probabilities = (i: number) => {
  const p = new Array<number>(7).fill(0.05);
  p[i % 7] = 0.7;
  return p;
};
const record = (user: string, seq: number): InputRecord => {
  const value: EmotionScore = {
    userId: user, sessionId: `s-${user}`, seq, captureTimeMs: now, faceFound: true, probabilities: probabilities(seq >> 3), faceBox: null,
    modelVersion: 'bench', scoredAt: 'EDGE', timings: { decodeMs: 0, detectMs: 0, preprocessMs: 0, inferMs: 0 }, processedTimeMs: now,
  };
  return { topic: 'emotion-scores', topicName: 'bench', partition: 0, offset: String(seq), key: user, value, timestamp: now } as unknown as InputRecord;
};
/** One record through the core, its state change applied as the commit would, idle keys evicted with it. */
const step = (user: string, seq: number): number => {
  const result = core.process(state.get(user) as never, record(user, seq), undefined);
  const staged = new Map<string, unknown>([[user, result.state]]);
  const evicted = stageIdleEvictions(state, staged, idleMs);
  for (const [k, v] of staged) v === undefined ? state.delete(k) : state.set(k, v);
  return evicted;
};

const rows: string[][] = [];
const base = heapMiB();
rows.push(['before any user', '0', base.toFixed(1), '']);
const t0 = performance.now();
for (let f = 1; f <= frames; f++) {
  for (let u = 0; u < users; u++) step(`user-${u}`, f);
  now += 100;
}
const feedMs = performance.now() - t0;
const full = heapMiB();
rows.push([`${users.toLocaleString('en')} users, ${frames} scores each`, String(state.size), full.toFixed(1), `${((full - base) * 2 ** 20 / users).toFixed(0)} B per user`]);

now += idleMs;
let batches = 0;
let evicted = 0;
const t1 = performance.now();
while (state.size > batches) {
  evicted += step(`late-${batches}`, 1);
  batches++;
}
const evictMs = performance.now() - t1;
const after = heapMiB();
rows.push([`after ${(idleMs / 60_000).toFixed(0)} min idle, ${batches} one-record batches`, String(state.size), after.toFixed(1), `${evicted.toLocaleString('en')} evicted, ${(evictMs * 1000 / Math.max(1, evicted)).toFixed(2)} µs each`]);

const text = [
  `smoother state memory on ${machine()}`,
  `filter scheme (default), ${users.toLocaleString('en')} users x ${frames} scores (${(feedMs * 1000 / (users * frames)).toFixed(2)} µs a score in this loop, record building included), --state-idle-ms ${idleMs}`,
  '',
  table(['point', 'keys in memory', 'heap MiB', 'note'], rows),
  '',
].join('\n');
process.stdout.write(text);
const out = flags.get('out') ?? path.join(fileURLToPath(new URL('results', import.meta.url)), `smoother-state-${new Date().toISOString().slice(0, 10)}.md`);
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, `# Smoother state memory (npm run bench:smoother-state)\n\n\`\`\`\n${text}\`\`\`\n`);
process.stdout.write(`written to ${path.relative(process.cwd(), out)}\n`);
