#!/usr/bin/env node
// The container image's health check: GET /readyz of this container's process, on the port it
// wrote to EM_HTTP_PORT_FILE once it listened (a stage or the gateway; replicas on a host network
// may each have taken another port). Exit 0 when ready, 1 otherwise, with the reason on stdout.
import { readFileSync } from 'node:fs';

const file = process.env.EM_HTTP_PORT_FILE || '/tmp/emotionmuse-http.port';
let port;
try {
  port = Number(readFileSync(file, 'utf8').trim());
} catch {
  console.log(`not listening yet (no ${file})`);
  process.exit(1);
}
const host = !process.env.EM_HTTP_HOST || process.env.EM_HTTP_HOST === '0.0.0.0' ? '127.0.0.1' : process.env.EM_HTTP_HOST;
try {
  const res = await fetch(`http://${host}:${port}/readyz`, { signal: AbortSignal.timeout(4000) });
  const body = await res.text();
  console.log(`${res.status} ${body}`);
  process.exit(res.ok ? 0 : 1);
} catch (err) {
  console.log(`/readyz on ${host}:${port} did not answer: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
