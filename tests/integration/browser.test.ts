import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mintDevelopmentToken, TokenVerifier } from '../../auth/tokens.ts';
import { loadWebAssets } from '../../gateway/assets.ts';
import { Gateway } from '../../gateway/server.ts';
import { recommenderOptions } from '../../processors/index.ts';
import { loadCatalogue } from '../../processors/recommender/catalogue.ts';
import { createLogger } from '../../runtime/log.ts';
import { topicName, type Topology } from '../../topology/topology.ts';
import { makeExpressionVideo, type ExpressionVideo } from '../support/expression-video.ts';
import { FER_PUBLIC_TEST } from '../../sessions/faces.ts';
import { registry } from '../support/frames.ts';
import { collect, createTopology, randomPrefix, startProcessor, useKafka, type ProcessorProcess, appRedisOptions } from '../support/kafka.ts';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const SECRET = randomBytes(32).toString('hex');

describe('the web client in real Chromium, through the gateway and the real pipeline', () => {
  const fx = useKafka();
  let topology: Topology;
  let gateway: Gateway;
  let browser: Browser;
  let video: ExpressionVideo;
  const processors: ProcessorProcess[] = [];

  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('Debian\'s chromium is not installed (bash infra/local.sh install installs it): the browser test cannot run');
    if (!existsSync(FER_PUBLIC_TEST)) throw new Error(`${FER_PUBLIC_TEST} is missing: the browser test needs real faces for its fake camera`);
    const dir = mkdtempSync(path.join(tmpdir(), 'em-browser-'));
    video = await makeExpressionVideo(FER_PUBLIC_TEST, path.join(dir, 'expressions.y4m'));
    const prefix = randomPrefix('browser');
    topology = await createTopology(fx.admin, prefix, 3);
    const env = { EM_TOPIC_PREFIX: prefix, EM_PARTITIONS: '3', EM_REDIS_URL: inject('redisUrl'), EM_REDIS_PREFIX: `${prefix}r:` };
    for (const stage of ['classifier', 'smoother', 'recommender']) processors.push(await startProcessor(stage, env));
    gateway = new Gateway({
      kafka: fx.kafka,
      registry,
      topology,
      redisUrl: inject('redisUrl'),
      redisOptions: appRedisOptions(),
      redisPrefix: `${prefix}r:`,
      verifier: await TokenVerifier.create({ secret: SECRET }),
      catalogue: loadCatalogue(recommenderOptions.modelDir.default),
      port: 0,
      host: '127.0.0.1',
      limits: { framesPerSecond: 15, maxMessageBytes: 256 * 1024, maxInFlight: 64, helloTimeoutMs: 5000 },
      maxConnections: 100,
      maxInFlight: 4096,
      assets: await loadWebAssets(),
      logger: createLogger('warn', { component: 'gateway' }),
    });
    await gateway.start();
    await gateway.whenReady();
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${video.file}`],
    });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    for (const p of processors) p.proc.kill('SIGTERM');
    await Promise.all(processors.map((p) => p.exited));
  });

  it('crops faces on the device, shows the emotion changes and a list, plays a track, and sends no whole frame', async () => {
    const frames = await collect(fx.kafka, [topicName(topology, 'frames'), topicName(topology, 'listens')]);
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => {
      // A user without a list yet gets 404 NO_LIST from /v1/me/recommendations: an answer, not a fault.
      if (m.type() === 'error' && !m.location().url?.endsWith('/v1/me/recommendations')) problems.push(`${m.text()} ${m.location().url ?? ''}`);
    });
    await page.setViewport({ width: 1360, height: 1100 });
    const token = await mintDevelopmentToken({ secret: SECRET }, 'browser-ana', 3600);
    await page.goto(`http://127.0.0.1:${gateway.port}/?token=${token}`);
    // The token leaves the address bar; the consent panel names every level.
    await page.waitForSelector('#consent:not([hidden])');
    expect(new URL(page.url()).searchParams.has('token')).toBe(false);
    const consent = await page.$eval('#levels', (el) => el.textContent ?? '');
    for (const level of ['crop', 'scores', 'frame']) expect(consent).toContain(level);
    await page.click('#start');

    mkdirSync(ARTIFACTS, { recursive: true });
    try {
      await page.waitForFunction(() => document.querySelectorAll('#changes li').length >= 2, { timeout: Number(process.env.EM_BROWSER_WAIT_MS ?? 120_000), polling: 500 });
      await page.waitForFunction(() => document.querySelectorAll('#list tbody tr').length > 0, { timeout: 60_000, polling: 500 });
    } catch (err) {
      // What the page showed when it gave up, to see why.
      await page.screenshot({ path: path.join(ARTIFACTS, 'web-viewer-failed.png'), fullPage: true });
      const seen = await page.evaluate(() => ['status', 'counters', 'last-error', 'changes'].map((id) => `${id}: ${document.getElementById(id)?.textContent}`).join('; '));
      throw new Error(`${String(err)}; the page showed ${seen}; page errors: ${problems.join(' | ') || 'none'}`);
    }
    const changes = await page.$$eval('#changes li', (lis) => lis.map((li) => li.textContent ?? '').reverse());
    // The camera shows happy faces, then sad ones: the page shows the change to each.
    expect(changes[0]).toMatch(/\(start\) → (happy|sad)/);
    expect(changes.some((c) => / → sad/.test(c)) || changes.some((c) => / → happy/.test(c))).toBe(true);
    expect(new Set(changes.map((c) => /→ (\w+)/.exec(c)![1])).size).toBeGreaterThanOrEqual(2);

    // (the list may be replaced by a newer one at any moment: the answer to the play is what counts)
    const [played] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/v1/me/listens'), { timeout: 20_000 }), page.click('#list tbody tr button')]);
    expect(played.status()).toBe(202);
    const shot = path.join(ARTIFACTS, 'web-viewer.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`[browser] screenshot: ${shot}; changes: ${changes.join(' | ')}`);

    await frames.stop();
    const sent = frames.records.filter((r) => r.topic === topicName(topology, 'frames')).map((r) => registry.decode('frame', r.value!));
    expect(sent.length).toBeGreaterThan(50);
    expect(new Set(sent.map((f) => f.userId))).toEqual(new Set(['browser-ana']));
    // Privacy level crop: 48x48 grey crops and no-face markers, never a whole frame.
    expect(sent.filter((f) => f.encoding !== 'GRAY8' && f.encoding !== 'NONE')).toEqual([]);
    for (const f of sent.filter((x) => x.encoding === 'GRAY8')) expect([f.width, f.height, f.data.length]).toEqual([48, 48, 2304]);
    expect(sent.filter((f) => f.encoding === 'GRAY8').length).toBeGreaterThan(sent.length * 0.8);
    const listens = frames.records.filter((r) => r.topic === topicName(topology, 'listens')).map((r) => registry.decode('listen', r.value!));
    expect(listens.map((l) => l.userId)).toEqual(['browser-ana']);
    expect(problems).toEqual([]);
    await page.close();
  }, 300_000);
});
