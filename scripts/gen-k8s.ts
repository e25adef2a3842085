/** Writes the generated files of deploy/k8s/ (scripts/k8s-files.ts): `npm run k8s:gen`. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { k8sFiles } from './k8s-files.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
for (const [file, text] of k8sFiles()) {
  const out = path.join(ROOT, file);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, text);
  console.log(`wrote ${file}`);
}
