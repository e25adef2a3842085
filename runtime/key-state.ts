/**
 * A task's key state (what a stateful core keeps per key), in the order of each key's last
 * change, with the time of that change: the keys left unchanged for longer than a limit are the
 * first ones, found without a pass over every key.
 */
export class KeyState<S> extends Map<string, S> {
  /** Last change per key (the wall clock of this process), oldest first. */
  private readonly touched = new Map<string, number>();

  constructor(private readonly clock: () => number = Date.now) {
    super();
  }

  /** A key state holding `entries`, each as changed now (a restored changelog). */
  static of<S>(entries: Iterable<readonly [string, S]>, clock: () => number = Date.now): KeyState<S> {
    const state = new KeyState<S>(clock);
    for (const [key, value] of entries) state.set(key, value);
    return state;
  }

  override set(key: string, value: S): this {
    this.touched.delete(key);
    this.touched.set(key, this.clock());
    return super.set(key, value);
  }

  override delete(key: string): boolean {
    this.touched.delete(key);
    return super.delete(key);
  }

  override clear(): void {
    this.touched.clear();
    super.clear();
  }

  /** The keys unchanged for at least `idleMs`, oldest first, at most `limit` of them. */
  idle(idleMs: number, limit = Infinity): string[] {
    const cutoff = this.clock() - idleMs;
    const out: string[] = [];
    for (const [key, at] of this.touched) {
      if (at > cutoff || out.length >= limit) break;
      out.push(key);
    }
    return out;
  }
}

/**
 * Adds to a batch's staged changes the deletion of every key of `state` idle for `idleMs` that the
 * batch does not touch (at most `limit` a batch, so one batch never writes a flood of tombstones):
 * the commit then writes their tombstones to the changelog in the same transaction as the batch,
 * and drops them from memory. Returns how many keys go. `idleMs` 0 keeps every key.
 */
export function stageIdleEvictions<S>(state: ReadonlyMap<string, S>, staged: Map<string, S | undefined>, idleMs: number, limit = 1000): number {
  if (idleMs <= 0 || !(state instanceof KeyState)) return 0;
  let evicted = 0;
  for (const key of (state as KeyState<S>).idle(idleMs, limit)) {
    if (staged.has(key)) continue;
    staged.set(key, undefined);
    evicted++;
  }
  return evicted;
}
