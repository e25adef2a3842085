import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from './log.ts';

const BIN = fileURLToPath(new URL('../bin/emotionmuse.js', import.meta.url));

interface Child {
  readonly name: string;
  proc: ChildProcess | undefined;
  restarts: number;
}

/**
 * Runs each processor as its own OS process (`emotionmuse run <name>`), so that a crash is
 * visible, logged and followed by a restart with backoff; `stop` sends SIGTERM to all and waits.
 */
export class Supervisor {
  private readonly children: Child[] = [];
  private stopping = false;

  constructor(private readonly options: { logger: Logger; env: NodeJS.ProcessEnv; onOutput?: (name: string, line: string) => void; maxRestarts?: number }) {}

  /** Starts `emotionmuse run <name> [args]`. */
  start(name: string, args: readonly string[] = []): void {
    this.startCommand(name, ['run', name, ...args]);
  }

  /** Starts `emotionmuse <argv>` under `name` (for a process that is not a stage, like the gateway). */
  startCommand(name: string, argv: readonly string[]): void {
    const child: Child = { name, proc: undefined, restarts: 0 };
    this.children.push(child);
    this.spawn(child, argv);
  }

  private spawn(child: Child, argv: readonly string[]): void {
    const proc = spawn(process.execPath, [BIN, ...argv], { env: this.options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.proc = proc;
    for (const stream of [proc.stdout, proc.stderr]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          this.options.onOutput?.(child.name, buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      });
    }
    proc.on('exit', (code, signal) => {
      if (this.stopping) return;
      child.restarts++;
      const max = this.options.maxRestarts ?? 10;
      this.options.logger.error(`processor ${child.name} exited (code ${code}, signal ${signal})`, { restarts: child.restarts });
      if (child.restarts > max) {
        this.options.logger.error(`processor ${child.name} restarted ${max} times; giving up`);
        return;
      }
      const delay = Math.min(30_000, 500 * 2 ** (child.restarts - 1));
      setTimeout(() => !this.stopping && this.spawn(child, argv), delay);
    });
  }

  /** Ends every child at once (SIGKILL), restarting none. */
  kill(): void {
    this.stopping = true;
    for (const c of this.children) if (c.proc && c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  }

  async stop(timeoutMs = 12_000): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            const proc = c.proc;
            if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
            const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
            proc.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            proc.kill('SIGTERM');
          }),
      ),
    );
  }
}
