import type { Redis } from 'ioredis';
import { globEscape, userKeys } from './keys.ts';

/**
 * Moves the keys of the layout before state/keys.ts to the current one. That layout wrote
 *
 *     <prefix>u:<user>          hash    (now {u:<user>}:state)
 *     <prefix>u:<user>:history  list    (now {u:<user>}:history)
 *     <prefix>u:<user>:list     string  (now {u:<user>}:list)
 *
 * with the user id as it is, so `u:X:history` could be user X's history or the hash of user
 * `X:history`. The key's type tells them apart (a hash is always a user's state; a list under
 * `:history` and a string under `:list` are a user's history and list), which is how each is
 * moved here. A key the new layout already holds is left alone (the new one is newer). RENAME
 * keeps each key's expiry.
 *
 * Not moved, and why none needs it: `<prefix>o:...` (a record's remembered output, one hour:
 * a redelivery after the upgrade makes its list again), and `<prefix>gw:s:<user>:<session>` (a
 * gateway session's last sequence number, one day; its user and session cannot be told apart, and
 * without it the gateway takes the client's next frames as new, which the smoother handles as
 * repeats). Both expire on their own.
 *
 * The old layout never ran on Redis Cluster (its two-key scripts had no hash tag), so this runs
 * on a single Redis.
 */
export interface MigrationReport {
  readonly moved: number;
  readonly kept: number;
  readonly skipped: ReadonlyArray<{ key: string; why: string }>;
}

export async function migrateLegacyKeys(redis: Redis, prefix: string, options: { dryRun?: boolean; onProgress?: (scanned: number) => void } = {}): Promise<MigrationReport> {
  let moved = 0;
  let kept = 0;
  let scanned = 0;
  const skipped: Array<{ key: string; why: string }> = [];
  const head = `${prefix}u:`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${globEscape(head)}*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      scanned++;
      const rest = key.slice(head.length);
      const type = await redis.type(key);
      let target: string | undefined;
      if (type === 'hash') target = userKeys(prefix, rest).state;
      else if (type === 'list' && rest.endsWith(':history')) target = userKeys(prefix, rest.slice(0, -':history'.length)).history;
      else if (type === 'string' && rest.endsWith(':list')) target = userKeys(prefix, rest.slice(0, -':list'.length)).list;
      if (!target) {
        if (type !== 'none') skipped.push({ key, why: `a ${type} the old layout did not write` });
        continue;
      }
      if (options.dryRun) {
        moved++;
        continue;
      }
      if ((await redis.renamenx(key, target)) === 1) moved++;
      else kept++;
    }
    options.onProgress?.(scanned);
  } while (cursor !== '0');
  return { moved, kept, skipped };
}
