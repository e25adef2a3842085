import { opt } from '../runtime/config.ts';

/** Options of `npm run bench:e2e`, in the same table form as every command's (flags, EM_BENCH_* variables, defaults). */
export const e2eOptions = {
  cropRates: opt.list('EM_BENCH_CROP_RATES', 'crop-rates', ['100', '250', '500', '750'], 'Edge-cropped 48x48 grey frames per second, one step each'),
  jpegRates: opt.list('EM_BENCH_JPEG_RATES', 'jpeg-rates', ['10', '20', '40'], '640x480 JPEG frames per second, one step each (\'\' for none)'),
  seconds: opt.int('EM_BENCH_SECONDS', 'seconds', 20, 'Length of each step (s)', { min: 1 }),
  warmupSeconds: opt.int('EM_BENCH_WARMUP_SECONDS', 'warmup-seconds', 20, 'Unreported warm-up first (a fresh broker is slow), at --warmup-rate', { min: 0 }),
  warmupRate: opt.int('EM_BENCH_WARMUP_RATE', 'warmup-rate', 250, 'Edge-cropped frames per second during the warm-up', { min: 1 }),
  readTime: opt.bool('EM_BENCH_READ_TIME', 'read-time', false, 'Time records when this process reads them (a prompt reader, as a consumer downstream would) instead of by their log-append time'),
  users: opt.int('EM_BENCH_USERS', 'users', 40, 'Simulated users (expression changing every 60 frames)', { min: 1 }),
  partitions: opt.int('EM_PARTITIONS', 'partitions', 6, 'Partitions of every topic', { min: 1 }),
  tickMs: opt.int('EM_BENCH_TICK_MS', 'tick-ms', 5, 'How often the load generator publishes the frames that are due (ms)', { min: 1 }),
  env: opt.list('EM_BENCH_STAGE_ENV', 'env', [], 'Settings for one processor: stage:VAR=value,... (e.g. classifier:EM_PREPARE_AHEAD=0)'),
  soakSeconds: opt.int('EM_BENCH_SOAK_SECONDS', 'soak-seconds', 60, 'Leak check at --soak-rate, resident memory every 10 s (0: none)', { min: 0 }),
  soakRate: opt.int('EM_BENCH_SOAK_RATE', 'soak-rate', 250, 'Edge-cropped frames per second during the soak', { min: 1 }),
  nodeArgs: opt.list('EM_BENCH_NODE_ARGS', 'node-args', [], 'Node arguments for the processors, comma-separated (e.g. --cpu-prof)'),
  security: opt.bool('EM_BENCH_SECURITY', 'security', false, 'The cost of security instead: 500 edge-cropped frames/s against the plain services, then the secured ones (EM_SECURITY=on), one table (bench/e2e-security.ts; report bench/results/e2e-security.md)'),
  json: opt.string('EM_BENCH_JSON', 'json', '', 'Also write the steps\' figures as JSON to this file'),
  out: opt.string('EM_BENCH_OUT', 'out', '', 'Where the report goes (empty: bench/results/e2e.md for a run with the default steps, .cache/bench/e2e-last.md for any other)'),
};

/** Whether any option that shapes the run differs from its default (such a run's report does not replace the committed one). */
export function customRun(config: { readonly [K in keyof typeof e2eOptions]: unknown }): boolean {
  return (Object.keys(e2eOptions) as Array<keyof typeof e2eOptions>).some((k) => k !== 'out' && k !== 'json' && JSON.stringify(config[k]) !== JSON.stringify(e2eOptions[k].default));
}

/** Rates of a step list, checked. */
export function rates(list: readonly string[], flag: string): number[] {
  return list.map((r) => {
    const n = Number(r);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag}: "${r}" is not a rate (frames per second)`);
    return n;
  });
}
