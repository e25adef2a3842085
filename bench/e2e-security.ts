/**
 * The cost of security (`npm run bench:e2e -- --security`): the end-to-end benchmark at one rate
 * of edge-cropped frames (500/s by default) twice in one run, first against the plain local
 * services, then against the secured ones (EM_SECURITY=on: SASL_SSL with SCRAM-SHA-512 and ACLs,
 * Redis with TLS and an ACL user, basic auth on /metrics), each processor as its own principal.
 * The secured services run on ports of their own (Kafka 9192, Redis 6380) and are stopped after
 * when this run started them. One table compares throughput, latency and CPU.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgv } from '../runtime/config.ts';
import { machine, table } from './machine.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECURED = { kafka: 9192, controller: 9193, redis: 6380 };
const listening = (port: number) => spawnSync('bash', ['-c', `(exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null`]).status === 0;

function runOnce(args: string[], env: NodeJS.ProcessEnv, json: string): Promise<number> {
  const child = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), [path.join(ROOT, 'bench/e2e.ts'), ...args, '--json', json, '--out', `${json.slice(0, -5)}.md`], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
}

export async function securityCost(argv: string[]): Promise<number> {
  const { flags } = parseArgv(argv);
  const rate = flags.get('crop-rates') ?? '500';
  const passOn = ['seconds', 'warmup-seconds', 'warmup-rate', 'users', 'partitions', 'tick-ms'].flatMap((f) => (flags.has(f) ? [`--${f}`, flags.get(f)!] : []));
  const args = ['--crop-rates', rate, '--jpeg-rates', '', '--soak-seconds', '0', ...passOn];
  const dir = path.join(ROOT, '.cache', 'bench');
  mkdirSync(dir, { recursive: true });
  const plainEnv = { ...process.env, EM_SECURITY: 'off' };
  const securedEnv = {
    ...process.env, EM_SECURITY: 'on', EM_KAFKA_PORT: String(SECURED.kafka), EM_KAFKA_CONTROLLER_PORT: String(SECURED.controller), EM_REDIS_PORT: String(SECURED.redis),
    EM_KAFKA_BROKERS: `127.0.0.1:${SECURED.kafka}`, EM_REDIS_URL: `redis://127.0.0.1:${SECURED.redis}`,
  };
  const startedSecured = [...(listening(SECURED.kafka) ? [] : ['kafka']), ...(listening(SECURED.redis) ? [] : ['redis'])];
  const results: Array<{ security: string; header: string[]; rows: string[][] }> = [];
  try {
    for (const [name, env] of [['plain', plainEnv], ['secured', securedEnv]] as const) {
      process.stderr.write(`== ${name}: ${rate} edge-cropped frames/s\n`);
      const json = path.join(dir, `e2e-security-${name}.json`);
      const code = await runOnce(args, env, json);
      if (code !== 0) throw new Error(`the ${name} run failed (exit ${code}; its output is above)`);
      results.push(JSON.parse(readFileSync(json, 'utf8')) as (typeof results)[number]);
    }
  } finally {
    if (startedSecured.length > 0) spawnSync('bash', [path.join(ROOT, 'infra/local.sh'), 'down', ...startedSecured], { env: securedEnv, stdio: 'inherit' });
  }
  const header = results[0]!.header;
  const pick = ['offered/s', 'scored/s', 'capture->score p50 / p99 ms', 'capture->list p50 / p99 ms (lists)', 'lag at end', 'CPU classifier / smoother / recommender / broker / load generator', 'machine busy'];
  const columns = pick.map((p) => header.indexOf(p));
  const rows = results.flatMap((r) => r.rows.map((row) => [r.security === 'on' ? 'secured (SASL_SSL, ACLs, Redis TLS)' : 'plain', ...columns.map((i) => row[i] ?? '-')]));
  const report = [
    '# The cost of security, end to end',
    '',
    `Machine: ${machine()}. The end-to-end benchmark (bench/e2e.ts) at ${rate} edge-cropped 48x48 frames/s, run twice in one \`npm run bench:e2e -- ${['--security', ...argv].join(' ')}\`: against the plain local services, then against the secured ones (SASL_SSL with SCRAM-SHA-512 and the KRaft authorizer with least-privilege ACLs, each processor its own principal; Redis over TLS as an ACL user; basic auth on /metrics). Same machine, same broker version, one after the other.`,
    '',
    table(['services', ...pick], rows),
    '',
    ...rows.filter((r) => r[4] === '-' || r[5] !== '0').map((r) => `- **${r[0]}: ${r[4] === '-' ? 'no list came out' : `lag ${r[5]} at the end`}**: that run did not keep up or failed; its processors' warnings are in this run's output.`),
    `- ${new Date().toISOString().slice(0, 10)}; the full reports of both runs: .cache/bench/e2e-security-plain.md and .cache/bench/e2e-security-secured.md.`,
    '',
  ];
  console.log(report.join('\n'));
  const out = flags.get('out') ?? path.join(ROOT, 'bench', 'results', 'e2e-security.md');
  writeFileSync(out, report.join('\n'));
  process.stderr.write(`report written to ${path.relative(ROOT, out)}\n`);
  return 0;
}
