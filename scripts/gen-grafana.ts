/** Writes grafana/dashboards/*.json from observability/dashboards.ts: `npm run grafana:gen`. */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DASHBOARDS, dashboardJson } from '../observability/dashboards.ts';

for (const key of Object.keys(DASHBOARDS)) {
  const out = fileURLToPath(new URL(`../grafana/dashboards/${key}.json`, import.meta.url));
  writeFileSync(out, dashboardJson(key));
  console.log(`wrote ${out}`);
}
