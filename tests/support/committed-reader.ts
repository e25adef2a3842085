import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The folder of the Kafka jars the launcher fetched (infra/local.sh install). */
function kafkaLibs(): string {
  const dir = readdirSync(path.join(ROOT, '.cache')).filter((d) => d.startsWith('kafka-')).map((d) => path.join(ROOT, '.cache', d, 'libs')).find((d) => existsSync(d));
  if (!dir) throw new Error('no Kafka jars under .cache/kafka-*/libs: run bash infra/local.sh install');
  return dir;
}

/**
 * Every record of `topic` as the Java client reads it under read_committed (to each partition's
 * last stable offset): a second opinion beside kafkajs's reader (tests/support/java/CommittedReader.java).
 */
export function readCommittedWithJava(brokers: readonly string[], topic: string): Array<{ partition: number; offset: number; value: Buffer | null }> {
  const r = spawnSync('java', ['-cp', `${kafkaLibs()}/*`, path.join(ROOT, 'tests/support/java/CommittedReader.java'), brokers.join(','), topic], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`the Java reader failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return r.stdout.trim().split('\n').filter(Boolean).map((line) => {
    const [partition, offset, value] = line.split(' ');
    return { partition: Number(partition), offset: Number(offset), value: value === '-' ? null : Buffer.from(value!, 'hex') };
  });
}
