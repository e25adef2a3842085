import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The recommender training toolkit's listening-log loaders (training/emotionmuse_train/logs.py:
 * csv, Spotify MPD slices, Spotify account exports, Last.fm 1K, ListenBrainz) on the project's
 * own fixtures, through Python's unittest (Debian's Python, as the toolkit runs).
 */
describe('listening-log loaders (Python unittest)', () => {
  it('pass on their fixtures', () => {
    const r = spawnSync('bash', ['-c', 'source training/python-env.sh && $PY -W error::ResourceWarning -m unittest discover -s training/tests -v'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr.slice(-3000)).toBe(0);
    expect(r.stderr).toMatch(/Ran (\d+) tests/);
    expect(Number(/Ran (\d+) tests/.exec(r.stderr)![1])).toBeGreaterThanOrEqual(8);
  }, 60_000);
});
