import { readFileSync } from 'node:fs';
import type { FaceTrack } from '../vision/face-crop.ts';
import type { PublisherStats } from './publisher.ts';

const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); undefined elsewhere or once it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * What an edge client cost and sent: its own CPU (this process: detection, crop, CNN, Kafka) and
 * that of its ffmpeg decoder, each as a share of one core over the run, and the records it sent.
 */
export class EdgeStats {
  private started = performance.now();
  private cpu0 = process.cpuUsage();
  private childPid: number | undefined;
  private childCpu = 0;
  private childCpu0 = 0;
  private frames = 0;

  /**
   * Counts a frame taken from the source. The first one starts the measurement, so that the
   * figures are those of streaming, without loading the models and connecting.
   */
  frame(): void {
    if (this.frames++ > 0) return;
    this.started = performance.now();
    this.cpu0 = process.cpuUsage();
    this.sample();
    this.childCpu0 = this.childCpu;
  }
  private timer: NodeJS.Timeout | undefined;

  /** Follows a child process (ffmpeg), sampling its CPU until it exits. */
  follow(pid: number): void {
    this.childPid = pid;
    this.timer ??= setInterval(() => this.sample(), 250).unref();
  }

  private sample(): void {
    if (this.childPid === undefined) return;
    const s = processCpuSeconds(this.childPid);
    if (s !== undefined) this.childCpu = s;
  }

  report(counters: PublisherStats, track?: FaceTrack): string {
    this.sample();
    if (this.timer) clearInterval(this.timer);
    // From the first frame to the last: n frames span n - 1 intervals.
    const frames = this.frames;
    const wall = (performance.now() - this.started) / 1000;
    const used = process.cpuUsage(this.cpu0);
    const self = (used.user + used.system) / 1e6;
    const child = this.childCpu - this.childCpu0;
    const pct = (s: number) => `${((s / wall) * 100).toFixed(1)}% of one core`;
    const lines = [
      `frames:            ${frames} in ${wall.toFixed(1)} s (${(Math.max(0, frames - 1) / Math.max(0.001, wall)).toFixed(1)}/s), measured from the first frame (models loaded)`,
      `edge client CPU:   ${pct(self)} (${((self * 1000) / Math.max(1, frames)).toFixed(2)} ms per frame)`,
    ];
    if (this.childPid !== undefined) lines.push(`ffmpeg CPU:        ${pct(child)} (decoding the source)`);
    const kinds = Object.entries(counters.byEncoding).map(([k, n]) => `${n} ${k}`).join(', ');
    lines.push(`sent:              ${counters.sent} records (${kinds || 'none'}), ${counters.errors} errors`);
    if (track) lines.push(`face search:       ${track.counts.window} frames in the window around the last face, ${track.counts.whole} in the whole frame`);
    lines.push(`bytes per record:  ${(counters.bytes / Math.max(1, counters.queued)).toFixed(0)} on average, ${counters.largest} at most (before compression)`);
    return lines.join('\n');
  }
}
