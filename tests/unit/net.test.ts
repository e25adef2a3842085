import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, listenOnFirstFree, writePortFile } from '../../runtime/net.ts';

// Replicas of one stage on a host network (compose) each find a port next to the stage's, and
// write down the one they took for the image's health check.
const servers: Server[] = [];
const server = () => {
  const s = createServer();
  servers.push(s);
  return s;
};
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(() => r(undefined)))));
});

/** A port whose next `n` ports are free now. */
async function freeRun(n: number): Promise<number> {
  for (;;) {
    const p = await freePort();
    const probes = await Promise.all(Array.from({ length: n }, (_, i) => listenOnFirstFree(server(), p + i, '127.0.0.1').then(() => true, () => false)));
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(() => r(undefined)))));
    if (probes.every(Boolean)) return p;
  }
}

describe('listening on the first free port of a range', () => {
  it('takes the next port when the first is taken, and only within the tries given', async () => {
    const p = await freeRun(3);
    expect(await listenOnFirstFree(server(), p, '127.0.0.1')).toBe(p);
    await expect(listenOnFirstFree(server(), p, '127.0.0.1', 1)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(await listenOnFirstFree(server(), p, '127.0.0.1', 3)).toBe(p + 1);
    expect(await listenOnFirstFree(server(), p, '127.0.0.1', 3)).toBe(p + 2);
    await expect(listenOnFirstFree(server(), p, '127.0.0.1', 3)).rejects.toThrow(`ports ${p}-${p + 2} on 127.0.0.1 are all taken`);
  });

  it('takes any free port for 0, and writes the port it took to a file', async () => {
    const port = await listenOnFirstFree(server(), 0, '127.0.0.1', 5);
    expect(port).toBeGreaterThan(0);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'em-port-')), 'sub', 'http.port');
    writePortFile(file, port);
    expect(readFileSync(file, 'utf8')).toBe(`${port}\n`);
    writePortFile('', port); // no file configured: nothing written, no error
  });
});
