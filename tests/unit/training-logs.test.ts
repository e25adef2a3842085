import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The recommender training toolkit through Python's unittest (Debian's Python, as the toolkit
 * runs): the listening-log loaders (training/emotionmuse_train/logs.py: csv, Spotify MPD slices,
 * Spotify account exports, Last.fm 1K, ListenBrainz) on the project's own fixtures, item-kNN's
 * vectorised co-occurrence against a plain loop, the training time budget, and packed exports.
 */
describe('recommender training toolkit (Python unittest)', () => {
  it('passes: loaders on their fixtures, item-kNN, the time budget, packing', () => {
    const r = spawnSync('bash', ['-c', 'source training/python-env.sh && $PY -W error::ResourceWarning -m unittest discover -s training/tests -v'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr.slice(-3000)).toBe(0);
    expect(r.stderr).toMatch(/Ran (\d+) tests/);
    expect(Number(/Ran (\d+) tests/.exec(r.stderr)![1])).toBeGreaterThanOrEqual(13);
  }, 120_000);
});
