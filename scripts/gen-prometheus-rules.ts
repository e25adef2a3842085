/**
 * Writes infra/prometheus/rules/*.yml from the metrics table: `npm run prometheus:gen`.
 * A unit test fails when the committed files differ from what this produces.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { prometheusRules } from '../observability/rules.ts';

for (const [name, text] of Object.entries(prometheusRules())) {
  const out = fileURLToPath(new URL(`../infra/prometheus/rules/${name}`, import.meta.url));
  writeFileSync(out, text);
  console.log(`wrote ${out}`);
}
