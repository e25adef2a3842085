import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { readRecording } from '../../schemas/recording.ts';
import { SchemaRegistry } from '../../schemas/registry.ts';
import { FER_PUBLIC_TEST } from '../../sessions/faces.ts';

describe('labelled sessions and the smoother evaluation (FER-2013 PublicTest images)', () => {
  it('synthesizes a 6-segment session at 10 fps and the smoother cuts label transitions by at least half, with a picture', async () => {
    expect(existsSync(FER_PUBLIC_TEST), `${FER_PUBLIC_TEST} is needed (the shared data beside the repository)`).toBe(true);
    const dir = mkdtempSync(path.join(tmpdir(), 'em-smoother-'));
    const out = path.join(dir, 'session.avro');
    const timeline = 'neutral:8s,happy:6s,sad:10s,surprise:6s,angry:8s,neutral:6s';
    expect(await main(['session', 'synth', '--images', FER_PUBLIC_TEST, '--timeline', timeline, '--fps', '10', '--seed', '7', '--out', out])).toBe(0);

    const { frames, meta } = await readRecording(out, SchemaRegistry.load());
    expect(frames).toHaveLength(440);
    expect(meta).toMatchObject({ kind: 'labelled-session', fps: 10, seed: 7 });
    expect((meta.timeline as unknown[]).length).toBe(6);

    const lines: string[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => lines.push(args.join(' '));
    try {
      expect(await main(['eval', 'smoother', '--recording', out, '--json', '--providers', 'cpu'])).toBe(0);
    } finally {
      console.log = log;
    }
    const report = JSON.parse(lines.join('\n')) as { frameTransitions: number; smoothedTransitions: number; reduction: number; picture: string; delays: Array<{ delayMs: number | null }> };
    expect(report.smoothedTransitions).toBeLessThanOrEqual(report.frameTransitions * 0.5);
    expect(report.reduction).toBeGreaterThanOrEqual(0.5);
    expect(report.delays).toHaveLength(6);
    const svg = readFileSync(report.picture, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('ground truth');
  }, 60_000);
});
