import os from 'node:os';

/** One line naming the machine a figure was measured on. */
export function machine(): string {
  const cpu = os.cpus()[0]?.model?.trim() ?? 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()}/${os.arch()}`;
}

/** Runs `fn` repeatedly for about `ms` after a warm-up and returns calls per second and per-call milliseconds. */
export async function timeIt(fn: () => Promise<unknown>, ms = 3000, warmup = 3): Promise<{ calls: number; msPerCall: number; samples: number[] }> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  const start = performance.now();
  while (performance.now() - start < ms) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  const total = samples.reduce((a, b) => a + b, 0);
  return { calls: samples.length, msPerCall: total / samples.length, samples };
}

export { percentile, table } from '../observability/format.ts';

/** `--help` prints the usage and exits; an unknown flag prints it with the unknown ones and exits 2. */
export function checkFlags(flags: ReadonlyMap<string, string>, known: readonly string[], usage: string): void {
  if (flags.has('help')) {
    process.stdout.write(usage);
    process.exit(0);
  }
  const unknown = [...flags.keys()].filter((f) => f !== 'help' && !known.includes(f));
  if (unknown.length > 0) {
    process.stderr.write(`unknown option(s): ${unknown.map((f) => `--${f}`).join(', ')}\n\n${usage}`);
    process.exit(2);
  }
}
