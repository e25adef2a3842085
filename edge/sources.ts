import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

export interface SourceFrame {
  readonly data: Buffer;
  readonly encoding: 'JPEG' | 'PNG';
}

/** Image files of a folder (recursively, sorted), as JPEG or PNG frames. */
export function* folderFrames(dir: string): Generator<SourceFrame> {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(jpe?g|png)$/i.test(name)) files.push(p);
    }
  };
  walk(dir);
  if (files.length === 0) throw new Error(`${dir} holds no JPEG or PNG images`);
  for (const f of files) yield { data: readFileSync(f), encoding: /\.png$/i.test(f) ? 'PNG' : 'JPEG' };
}

export interface FfmpegOptions {
  /** Read a video file at its own frame rate, as a camera would deliver it (ffmpeg -re). @defaultValue false */
  readonly realtime?: boolean;
  /** Called with ffmpeg's process id once it has started (to measure its CPU). */
  readonly onStart?: (pid: number) => void;
}

/**
 * JPEG frames from ffmpeg (Debian package `ffmpeg`): a video file, or a camera device
 * (`/dev/video0` through video4linux), resampled to `fps`.
 */
export async function* ffmpegFrames(input: { video?: string; camera?: string }, fps: number, width = 640, options: FfmpegOptions = {}): AsyncGenerator<SourceFrame> {
  const args = input.camera ? ['-f', 'v4l2', '-i', input.camera] : [...(options.realtime ? ['-re'] : []), '-i', input.video!];
  const proc = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...args, '-vf', `fps=${fps},scale=${width}:-2`, '-f', 'image2pipe', '-vcodec', 'mjpeg', '-q:v', '4', '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (proc.pid !== undefined) options.onStart?.(proc.pid);
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const failed = new Promise<never>((_, reject) => proc.on('error', (err) => reject(new Error(`ffmpeg could not start (install the Debian package ffmpeg): ${err.message}`))));
  let pending = Buffer.alloc(0);
  const iterator = proc.stdout[Symbol.asyncIterator]();
  for (;;) {
    const next = await Promise.race([iterator.next(), failed]);
    if (next.done) break;
    pending = Buffer.concat([pending, next.value as Buffer]);
    // Each JPEG runs from FF D8 to FF D9; ffmpeg's mjpeg frames carry no thumbnails, so the first end marker ends the frame.
    for (;;) {
      const start = pending.indexOf(Buffer.from([0xff, 0xd8]));
      const end = start < 0 ? -1 : pending.indexOf(Buffer.from([0xff, 0xd9]), start + 2);
      if (end < 0) break;
      yield { data: pending.subarray(start, end + 2), encoding: 'JPEG' };
      pending = pending.subarray(end + 2);
    }
  }
  const code = await new Promise<number | null>((resolve) => (proc.exitCode !== null ? resolve(proc.exitCode) : proc.once('exit', resolve)));
  if (code !== 0) throw new Error(`ffmpeg exited with ${code}: ${stderr.trim()}`);
}

/** The pixel size of a video file's or camera's first video stream, from ffprobe (Debian package `ffmpeg`). */
export function probeVideoSize(input: { video?: string; camera?: string }): { width: number; height: number } {
  const args = ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'csv=p=0:s=x'];
  let out: string;
  try {
    out = execFileSync('ffprobe', [...args, ...(input.camera ? ['-f', 'v4l2', input.camera] : [input.video!])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`ffprobe could not read ${input.camera ?? input.video} (install the Debian package ffmpeg): ${(err as Error).message.split('\n')[0]}`);
  }
  const m = /^(\d+)x(\d+)/.exec(out.trim());
  if (!m) throw new Error(`ffprobe found no video stream in ${input.camera ?? input.video}`);
  return { width: Number(m[1]), height: Number(m[2]) };
}

export interface RawFrame {
  readonly rgb: Buffer;
  readonly width: number;
  readonly height: number;
}

/**
 * Raw RGB frames from ffmpeg at `size` (ffmpeg scales them, in C): what an edge client that crops
 * on the device needs, without encoding and decoding a JPEG per frame.
 */
export async function* ffmpegRawFrames(input: { video?: string; camera?: string }, fps: number, size: { width: number; height: number }, options: FfmpegOptions = {}): AsyncGenerator<RawFrame> {
  const args = input.camera ? ['-f', 'v4l2', '-i', input.camera] : [...(options.realtime ? ['-re'] : []), '-i', input.video!];
  const vf = `fps=${fps},scale=${size.width}:${size.height}:flags=area`;
  const proc = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...args, '-vf', vf, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (proc.pid !== undefined) options.onStart?.(proc.pid);
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const failed = new Promise<never>((_, reject) => proc.on('error', (err) => reject(new Error(`ffmpeg could not start (install the Debian package ffmpeg): ${err.message}`))));
  const frameBytes = size.width * size.height * 3;
  // Each frame's bytes are copied once, from the pipe's chunks into the frame's own buffer.
  let frame = Buffer.allocUnsafe(frameBytes);
  let filled = 0;
  const iterator = proc.stdout[Symbol.asyncIterator]();
  for (;;) {
    const next = await Promise.race([iterator.next(), failed]);
    if (next.done) break;
    const chunk = next.value as Buffer;
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(frameBytes - filled, chunk.length - at);
      chunk.copy(frame, filled, at, at + n);
      filled += n;
      at += n;
      if (filled === frameBytes) {
        yield { rgb: frame, width: size.width, height: size.height };
        frame = Buffer.allocUnsafe(frameBytes);
        filled = 0;
      }
    }
  }
  const code = await new Promise<number | null>((resolve) => (proc.exitCode !== null ? resolve(proc.exitCode) : proc.once('exit', resolve)));
  if (code !== 0) throw new Error(`ffmpeg exited with ${code}: ${stderr.trim()}`);
}
