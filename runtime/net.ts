import { createServer, type Server } from 'node:net';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The kernel's range of ephemeral ports (outgoing connections take theirs from it). */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi) return [lo, hi];
  } catch {
    // not Linux: the IANA range
  }
  return [49152, 65535];
}

const canListen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });

/**
 * A TCP port on loopback that nobody listens on right now, for a process started next to listen
 * on. It is taken below the ephemeral range: a port the kernel handed out would be free only
 * until an outgoing connection (a Kafka client's, say) is given it, and the process that was to
 * listen there then fails with EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  const [lo] = ephemeralRange();
  const from = Math.max(1024, Math.min(20_000, lo - 8192));
  const span = Math.max(1, lo - from);
  for (let i = 0; i < 200; i++) {
    const port = from + Math.floor(Math.random() * span);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port found between ${from} and ${lo}`);
}

/**
 * Listens on `port`, or, when it is taken and `tries` allows, on the ports after it: replicas of
 * one stage on a host network (compose, several processes on one machine) each find a port of
 * their own next to the stage's. Port 0 (any free port) is tried once. Resolves with the port.
 */
export async function listenOnFirstFree(server: Server, port: number, host: string, tries = 1): Promise<number> {
  const last = port === 0 ? 0 : Math.min(65_535, port + Math.max(1, tries) - 1);
  for (let p = port; ; p++) {
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        server.once('error', onError);
        server.listen(p, host, () => {
          server.off('error', onError);
          resolve();
        });
      });
      const address = server.address();
      return typeof address === 'object' && address ? address.port : p;
    } catch (err) {
      const taken = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (!taken || p >= last) {
        if (taken && last > port) throw new Error(`ports ${port}-${last} on ${host} are all taken (raise the port or the number of tries)`);
        throw err;
      }
    }
  }
}

/**
 * Writes the port a process listens on to `file` (written whole, then renamed into place), for a
 * health check that cannot know it in advance: the container image's checks /readyz on it.
 */
export function writePortFile(file: string, port: number): void {
  if (!file) return;
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${port}\n`);
  renameSync(tmp, file);
}
