import { spawn } from 'node:child_process';
import { metricsAuth, secretsDir } from '../../runtime/security.ts';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { dashboardExpressions } from '../../observability/dashboards.ts';
import { ruleExpressions } from '../../observability/rules.ts';
import { loadCatalogue } from '../../processors/recommender/catalogue.ts';
import { recommenderOptions } from '../../processors/index.ts';
import { replay } from '../../edge/replay.ts';
import { synthesizeSession } from '../../sessions/synth.ts';
import { parseTimeline } from '../../sessions/timeline.ts';
import { topicName } from '../../topology/topology.ts';
import { FER_PUBLIC_TEST, noFacePhoto } from '../../sessions/faces.ts';
import { frame, registry } from '../support/frames.ts';
import { createTopology, freePort, produce, randomPrefix, startProcessor, type ProcessorProcess, useKafka, waitFor, appRedisOptions, metricsHeaders, testSecurity } from '../support/kafka.ts';
import { randomBytes } from 'node:crypto';
import { mintDevelopmentToken, TokenVerifier } from '../../auth/tokens.ts';
import { StreamClient } from '../../gateway/client.ts';
import { Gateway } from '../../gateway/server.ts';
import { createLogger } from '../../runtime/log.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The parts of an expression that must return data: both sides of `and`, without a final threshold comparison. */
function dataParts(expr: string): string[] {
  return expr.split(/\s+and\s+/).map((part) => part.replace(/\s*(==|!=|>=|<=|>|<)\s*[\d.]+\s*$/, ''));
}

describe('Grafana dashboards and Prometheus rules against a live Prometheus scraping the pipeline', () => {
  const fx = useKafka();

  it('evaluates every panel query and every rule expression, and each parses and returns data', async () => {
    const prefix = randomPrefix('dashboards');
    const topology = await createTopology(fx.admin, prefix, 2);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '2', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: `${prefix}r:` };
    const processors: Record<string, ProcessorProcess> = {};
    for (const stage of ['classifier', 'smoother', 'recommender']) processors[stage] = await startProcessor(stage, env);

    const dir = mkdtempSync(path.join(tmpdir(), 'em-prometheus-'));
    cpSync(path.join(ROOT, 'infra/prometheus/rules'), path.join(dir, 'rules'), { recursive: true });
    // The gateway too, in this process, with a low frame rate so that a burst is slowed.
    const secret = randomBytes(32).toString('hex');
    const gateway = new Gateway({
      kafka: fx.kafka, registry, topology, redisUrl: inject('redisUrl'), redisOptions: appRedisOptions(), redisPrefix: `${prefix}r:`, verifier: await TokenVerifier.create({ secret }),
      catalogue: loadCatalogue(process.env.EM_RECOMMENDER_MODEL ?? recommenderOptions.modelDir.default), port: 0, host: '127.0.0.1',
      limits: { framesPerSecond: 5, maxMessageBytes: 64 * 1024, maxInFlight: 64, helloTimeoutMs: 5000 }, maxConnections: 10, maxInFlight: 1024,
      logger: createLogger('warn', { component: 'gateway' }),
    });
    await gateway.start();
    await gateway.whenReady();
    const scrape: Record<string, number> = { ...Object.fromEntries(Object.entries(processors).map(([name, p]) => [name, p.port])), gateway: gateway.port };
    // one job label for all (the dashboards select job="emotionmuse"), two scrape configs
    const targets = (names: string[]) => names.map((name) => `      - targets: ["127.0.0.1:${scrape[name]}"]\n        labels: { processor: ${name}, job: emotionmuse }`).join('\n');
    // In the secured mode the processors' /metrics ask for basic auth (the in-process gateway's does not).
    const auth = metricsAuth(testSecurity());
    const basicAuth = auth ? `    basic_auth:\n      username: ${auth.username}\n      password_file: ${path.join(secretsDir(testSecurity()), 'metrics.password')}\n` : '';
    writeFileSync(path.join(dir, 'prometheus.yml'), `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules/recording.yml\n  - rules/alerts.yml\nscrape_configs:\n  - job_name: emotionmuse\n${basicAuth}    static_configs:\n${targets(Object.keys(processors))}\n  - job_name: emotionmuse-gateway\n    static_configs:\n${targets(['gateway'])}\n`);
    const port = await freePort();
    const prometheus = spawn('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
    const started = new Promise<void>((_, reject) => prometheus.on('error', (err) => reject(new Error(`this test runs Prometheus (Debian package prometheus) and could not start it: ${err.message}`))));
    const api = `http://127.0.0.1:${port}/api/v1`;
    try {
      await Promise.race([started, waitFor('prometheus ready', async () => (await fetch(`http://127.0.0.1:${port}/-/ready`).then((r) => r.ok, () => false)), 30_000)]);

      // Traffic that touches every metric: a corrupt frame and a frame without a face, listens
      // (history, so scoring runs), then labelled sessions (scores, changes, lists).
      const catalogue = loadCatalogue(process.env.EM_RECOMMENDER_MODEL ?? recommenderOptions.modelDir.default);
      await produce(fx.kafka, topicName(topology, 'frames'), [
        { key: 'dash-0', value: registry.encode('frame', frame('dash-0', 1, { encoding: 'JPEG', width: 0, height: 0, data: Buffer.from('not a jpeg') })) },
        { key: 'dash-0', value: registry.encode('frame', frame('dash-0', 2, { encoding: 'JPEG', width: 0, height: 0, data: await noFacePhoto() })) },
      ]);
      for (const user of ['dash-0', 'dash-1']) {
        await produce(fx.kafka, topicName(topology, 'listens'), catalogue.ids.slice(5, 9).map((trackId, n) => ({ key: user, value: registry.encode('listen', { listenId: `${user}-${n}`, userId: user, trackId, startTimeMs: n, listenedMs: 1000, outcome: 'COMPLETED' }) })));
      }
      for (const [u, timeline] of ['neutral:4s,happy:7s', 'sad:4s,surprise:7s'].entries()) {
        const { frames } = await synthesizeSession({ images: FER_PUBLIC_TEST, timeline: parseTimeline(timeline), fps: 10, seed: 90 + u, userId: `dash-${u}`, sessionId: 'x' });
        await replay(frames, { kafka: fx.kafka, registry, topic: topicName(topology, 'frames'), sessionId: `dash-${u}`, speed: 4 });
      }
      // Gateway traffic: a malformed message, and a burst of crops over the rate limit whose scores come back.
      const socket = await StreamClient.connect(`http://127.0.0.1:${gateway.port}`, { token: await mintDevelopmentToken({ secret }, 'dash-gw', 600), tokenInHeader: true });
      socket.sendRaw('not json');
      const { frames: crops } = await synthesizeSession({ images: FER_PUBLIC_TEST, timeline: parseTimeline('happy:2s'), fps: 10, seed: 3, userId: 'dash-gw', sessionId: 'gw' });
      crops.forEach((f, i) => socket.send({ kind: 'GRAY8', seq: i + 1, captureTimeMs: Date.now(), width: f.width, height: f.height, faceBox: null, data: f.data }));
      await socket.waitFor('the burst acked and scored', (c) => c.acked >= crops.length && c.messages.some((m) => m.type === 'score'), 60_000);
      expect(socket.messages.some((m) => m.type === 'throttle')).toBe(true);
      await socket.close();
      await waitFor('lists after emotion changes', async () => {
        const text = await fetch(`http://127.0.0.1:${processors.recommender!.port}/metrics`, { headers: metricsHeaders() }).then((r) => r.text());
        return /emotionmuse_recommendations_total\{trigger="EMOTION_CHANGE"[^}]*\} [1-9]/.test(text);
      }, 60_000);
      await new Promise((r) => setTimeout(r, 8000)); // several scrapes, so that rate() has points

      const exprs = [...dashboardExpressions().map((d) => ({ where: `${d.dashboard}: ${d.panel}`, expr: d.expr })), ...ruleExpressions().map((e) => ({ where: 'rule', expr: e }))];
      expect(exprs.length).toBeGreaterThan(30);
      const failures: string[] = [];
      for (const { where, expr } of exprs) {
        const full = (await (await fetch(`${api}/query?query=${encodeURIComponent(expr)}`)).json()) as { status: string; error?: string };
        if (full.status !== 'success') failures.push(`${where}: does not parse: ${full.error} (${expr})`);
        for (const part of dataParts(expr)) {
          const r = (await (await fetch(`${api}/query?query=${encodeURIComponent(part)}`)).json()) as { status: string; data?: { result: unknown[] } };
          if (r.status !== 'success' || (r.data?.result.length ?? 0) === 0) failures.push(`${where}: no data for ${part}`);
        }
      }
      expect(failures).toEqual([]);

      const rules = (await (await fetch(`${api}/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ health: string; name: string }> }> } };
      const all = rules.data.groups.flatMap((g) => g.rules);
      expect(all.length).toBe(ruleExpressions().length);
      expect(all.filter((r) => r.health !== 'ok').map((r) => r.name)).toEqual([]);

      // The latency report reads the same processors.
      const printed: string[] = [];
      const log = console.log;
      console.log = (...a: unknown[]) => printed.push(a.join(' '));
      try {
        expect(await main(['latency', '--classifier-port', String(processors.classifier!.port), '--smoother-port', String(processors.smoother!.port), '--recommender-port', String(processors.recommender!.port)])).toBe(0);
      } finally {
        console.log = log;
      }
      expect(printed.join('\n')).toMatch(/CNN inference \(per batch\)\s+\d+\s+[\d.]+ ms/);
      expect(printed.join('\n')).toMatch(/total: capture -> recommendation list\s+[1-9]\d*\s+[\d.]+ ms/);
    } finally {
      await gateway.close();
      prometheus.kill('SIGTERM');
      for (const p of Object.values(processors)) p.proc.kill('SIGTERM');
      await Promise.all(Object.values(processors).map((p) => p.exited));
    }
  });
});
