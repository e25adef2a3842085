import { describe, expect, it } from 'vitest';
import { coalesce } from '../../runtime/coalesce.ts';

/** A batched function that records each run and finishes when told. */
function recorder() {
  const runs: number[][] = [];
  const finish: Array<() => void> = [];
  let active = 0;
  let maxActive = 0;
  const run = async (items: number[]) => {
    runs.push(items);
    active++;
    maxActive = Math.max(maxActive, active);
    await new Promise<void>((r) => finish.push(r));
    active--;
    return items.map((i) => i * 10);
  };
  return { run, runs, finish, maxActive: () => maxActive };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('coalesce', () => {
  it('runs calls of the same turn together and gives each caller its own results in order', async () => {
    const r = recorder();
    const f = coalesce(r.run, 100);
    const a = f([1, 2]);
    const b = f([3]);
    await tick();
    expect(r.runs).toEqual([[1, 2, 3]]);
    r.finish.shift()!();
    expect(await a).toEqual([10, 20]);
    expect(await b).toEqual([30]);
  });

  it('queues calls made while a run is busy and runs them together after it', async () => {
    const r = recorder();
    const f = coalesce(r.run, 100);
    const a = f([1]);
    await tick();
    const b = f([2]);
    const c = f([3, 4]);
    await tick();
    expect(r.runs).toEqual([[1]]);
    r.finish.shift()!();
    await a;
    await tick();
    expect(r.runs).toEqual([[1], [2, 3, 4]]);
    r.finish.shift()!();
    expect(await Promise.all([b, c])).toEqual([[20], [30, 40]]);
  });

  it('starts a second run while the first is busy when concurrency allows, never more', async () => {
    const r = recorder();
    const f = coalesce(r.run, 100, 2);
    const calls = [f([1])];
    await tick();
    calls.push(f([2]));
    await tick();
    calls.push(f([3]));
    await tick();
    expect(r.runs).toEqual([[1], [2]]);
    expect(r.maxActive()).toBe(2);
    r.finish.shift()!();
    await calls[0];
    await tick();
    expect(r.runs).toEqual([[1], [2], [3]]);
    while (r.finish.length > 0) r.finish.shift()!();
    await Promise.all(calls);
    expect(r.maxActive()).toBe(2);
  });

  it('keeps every run within maxItems, cutting a larger call into pieces', async () => {
    const r = recorder();
    const f = coalesce(r.run, 3);
    const calls = [f([1, 2]), f([3, 4]), f([5, 6, 7, 8])];
    for (let i = 0; i < 4; i++) {
      await tick();
      r.finish.shift()?.();
      await tick();
    }
    expect(await Promise.all(calls)).toEqual([[10, 20], [30, 40], [50, 60, 70, 80]]);
    expect(r.runs).toEqual([[1, 2], [3, 4], [5, 6, 7], [8]]);
  });

  it('fails every call of a failed run, and goes on with the next', async () => {
    let fail = true;
    const f = coalesce(async (items: number[]) => {
      if (fail) throw new Error('model away');
      return items;
    }, 10);
    const a = f([1]);
    const b = f([2]);
    await expect(a).rejects.toThrow('model away');
    await expect(b).rejects.toThrow('model away');
    fail = false;
    expect(await f([3])).toEqual([3]);
  });
});
