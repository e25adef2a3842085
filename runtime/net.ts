import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';

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
