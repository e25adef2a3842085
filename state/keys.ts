/**
 * The one key scheme of all EmotionMuse state in Redis (the recommender's user state, its
 * remembered outputs, the gateway's session sequence numbers):
 *
 *     <prefix>{u:<user>}:<what>
 *
 * - `<user>` is the user id escaped by {@link escapeId}: every byte outside `[A-Za-z0-9._~-]` of
 *   its UTF-8 form becomes `%XX`. The escape is injective and leaves no `:`, `{`, `}`, `*`, `?`,
 *   `[` or `%` of the id itself in the key, so no user's keys can be another user's (`a:b` is
 *   `{u:a%3Ab}`, never `{u:a}:b`), and a SCAN pattern of one user matches no other.
 * - `{u:<user>}` is a Redis Cluster hash tag: every key of a user lies in one slot, so the
 *   multi-key scripts and transactions of one user run on a cluster.
 * - `<what>` names the key within the user: `state` (hash), `history` (list), `list` (string),
 *   `o:<source>:<offset>` (a record's remembered output), `gw:s:<session>` (a session's last
 *   sequence number); a session id and a source are escaped the same way.
 *
 * Keys of the layout before this one (`<prefix>u:<user>`, `<prefix>u:<user>:history`, ...) are
 * moved by {@link ../state/migrate.ts}.
 */

const SAFE = /^[A-Za-z0-9._~-]$/;

/** An id with every byte outside `[A-Za-z0-9._~-]` of its UTF-8 form written `%XX`: injective, and free of Redis' glob, hash-tag and separator characters. */
export function escapeId(id: string): string {
  let out = '';
  for (const ch of id) {
    if (SAFE.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of {@link escapeId}. */
export function unescapeId(escaped: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < escaped.length; i++) {
    if (escaped[i] === '%') {
      bytes.push(parseInt(escaped.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(escaped.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** `s` with Redis' glob characters escaped, for a SCAN MATCH pattern. */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** A key prefix is fixed text before every key: no hash-tag braces (they would put every key in one slot). */
export function checkPrefix(prefix: string): string {
  if (/[{}]/.test(prefix)) throw new Error(`the Redis key prefix ${JSON.stringify(prefix)} may not contain { or }: they would make it the hash tag of every key`);
  return prefix;
}

export interface UserKeys {
  /** The hash tag every key of the user starts with (after the prefix). */
  readonly tag: string;
  /** Hash: emotion, change, listAtMs and one `at:<source>` offset fence per source partition. */
  readonly state: string;
  /** List: the last listened track ids, most recent first. */
  readonly history: string;
  /** String: the last published list, as JSON. */
  readonly list: string;
  /** String: what the record at a source offset produced (a list as JSON, `none`, or `pending`). */
  output(source: string, offset: string): string;
  /** String: the last sequence number the gateway accepted in a session. */
  session(sessionId: string): string;
  /** The SCAN pattern of every key of this user, and of no other user. */
  readonly pattern: string;
}

/** Every Redis key of `user` under `prefix`. */
export function userKeys(prefix: string, user: string): UserKeys {
  const tag = `${prefix}{u:${escapeId(user)}}`;
  return {
    tag,
    state: `${tag}:state`,
    history: `${tag}:history`,
    list: `${tag}:list`,
    output: (source, offset) => `${tag}:o:${escapeId(source)}:${escapeId(offset)}`,
    session: (sessionId) => `${tag}:gw:s:${escapeId(sessionId)}`,
    pattern: `${globEscape(tag)}:*`,
  };
}
