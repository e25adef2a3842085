import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DASHBOARDS, dashboardExpressions, dashboardJson } from '../../observability/dashboards.ts';
import { prometheusRules, ruleExpressions } from '../../observability/rules.ts';
import { METRICS } from '../../runtime/metrics.ts';

const names = Object.values(METRICS).map((m) => m.name);

describe('metrics table, Prometheus rules and Grafana dashboards', () => {
  it('keeps the generated rule files in step with the metrics table', () => {
    for (const [file, text] of Object.entries(prometheusRules())) {
      expect(readFileSync(new URL(`../../infra/prometheus/rules/${file}`, import.meta.url), 'utf8'), `run npm run prometheus:gen (${file})`).toBe(text);
    }
  });

  it('keeps the provisioned dashboards in step with the metrics table', () => {
    for (const key of Object.keys(DASHBOARDS)) {
      expect(readFileSync(new URL(`../../grafana/dashboards/${key}.json`, import.meta.url), 'utf8'), `run npm run grafana:gen (${key})`).toBe(dashboardJson(key));
    }
  });

  it('queries only metrics of the table (or up), and no user id', () => {
    for (const expr of [...dashboardExpressions().map((d) => d.expr), ...ruleExpressions()]) {
      const used = [...expr.matchAll(/\b(emotionmuse_[a-z_]+?)(_bucket|_sum|_count)?\b/g)].map((mm) => mm[1]!);
      expect(used.length > 0 || expr.includes('up{'), expr).toBe(true);
      for (const u of used) expect(names, `${u} in ${expr}`).toContain(u);
      expect(expr).not.toMatch(/user/i);
    }
    for (const m of Object.values(METRICS)) expect(m.labels as readonly string[]).not.toContain('user');
  });

  it('has the dashboards the users asked for: pipeline, models, gateway, recommender', () => {
    expect(Object.keys(DASHBOARDS)).toEqual(['pipeline-overview', 'model', 'gateway', 'recommender']);
  });
});
