import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LABELS, METRICS } from '../../runtime/metrics.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOURCE_DIRS = ['runtime', 'processors', 'cli', 'gateway', 'observability', 'bench', 'edge', 'vision', 'sessions'];

function files(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p, ext));
    else if (ext.test(name)) out.push(p);
  }
  return out;
}

/** `label="v"` and `label=~"a|b"` values in PromQL text, for the given label names. */
function selectorValues(text: string, label: string): string[] {
  return [...text.matchAll(new RegExp(`${label}=~?\\\\?"([^"\\\\]+)\\\\?"`, 'g'))].flatMap((m) => m[1]!.split('|'));
}

describe('label values are written once (runtime/metrics.ts LABELS)', () => {
  const sources = SOURCE_DIRS.flatMap((d) => files(path.join(ROOT, d), /\.ts$/)).map((f) => ({ f: path.relative(ROOT, f), text: readFileSync(f, 'utf8') }));

  it('the code counts only listed steps, skip reasons and triggers', () => {
    const bad: string[] = [];
    for (const { f, text } of sources) {
      for (const m of text.matchAll(/stepSeconds\.observe\(\{[^}]*step: '([^']+)'/g)) if (!(LABELS.step as readonly string[]).includes(m[1]!)) bad.push(`${f}: step ${m[1]}`);
      for (const m of text.matchAll(/skipped\.inc\(\{[^}]*reason: '([^']+)'/g)) if (!(LABELS.skipReason as readonly string[]).includes(m[1]!)) bad.push(`${f}: skip reason ${m[1]}`);
      for (const m of text.matchAll(/trigger: '([A-Z_]+)'/g)) if (!(LABELS.trigger as readonly string[]).includes(m[1]!)) bad.push(`${f}: trigger ${m[1]}`);
    }
    expect(bad).toEqual([]);
    // the check sees the calls it is meant to see
    expect(sources.some(({ text }) => /stepSeconds\.observe\(\{[^}]*step: 'fetch'/.test(text))).toBe(true);
    expect(sources.some(({ text }) => /skipped\.inc\(\{[^}]*reason: 'repeated-change'/.test(text))).toBe(true);
  });

  it('the dashboards and the alert and recording rules select only listed values', () => {
    const texts = [...files(path.join(ROOT, 'grafana', 'dashboards'), /\.json$/), ...files(path.join(ROOT, 'infra', 'prometheus', 'rules'), /\.ya?ml$/)].map((f) => ({ f: path.relative(ROOT, f), text: readFileSync(f, 'utf8') }));
    expect(texts.length).toBeGreaterThanOrEqual(6);
    const bad: string[] = [];
    let seen = 0;
    for (const { f, text } of texts) {
      for (const expr of text.split('\n').filter((l) => l.includes('emotionmuse_'))) {
        const check = (label: string, allowed: readonly string[]) => {
          for (const v of selectorValues(expr, label)) {
            seen++;
            if (!allowed.includes(v)) bad.push(`${f}: ${label}="${v}"`);
          }
        };
        check('step', LABELS.step);
        check('path', LABELS.path);
        check('trigger', LABELS.trigger);
        if (expr.includes(METRICS.skipped.name)) check('reason', LABELS.skipReason);
        if (expr.includes(METRICS.stateResets.name)) check('reason', LABELS.resetReason);
        if (expr.includes(METRICS.facelessFrames.name)) check('source', LABELS.faceSource);
      }
    }
    expect(bad).toEqual([]);
    expect(seen, 'the check found selectors to check').toBeGreaterThan(5);
  });

  it('the metrics\' help texts name the listed values', () => {
    expect(METRICS.stepSeconds.help).toContain(LABELS.step.join(', '));
    expect(METRICS.skipped.help).toContain(LABELS.skipReason.join(', '));
    expect(METRICS.recommendations.help).toContain(LABELS.trigger.join(', '));
  });
});
