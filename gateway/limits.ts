/**
 * A token bucket: `rate` tokens a second, at most `burst` saved up. One per user, so that a user's
 * frames are limited however many sockets they open on this gateway.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number = rate,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = clock();
  }

  private refill(): void {
    const now = this.clock();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }

  /** Takes a token when there is one. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Whether the bucket has its whole burst again (nothing to remember about its user). */
  get full(): boolean {
    this.refill();
    return this.tokens >= this.burst;
  }

  /** Milliseconds until the next token. */
  waitMs(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.rate) * 1000);
  }
}

/** Counts what is in flight against a bound, with a low-water mark at which a waiter resumes. */
export class InFlight {
  count = 0;
  private readonly waiters = new Set<() => void>();

  constructor(readonly max: number) {}

  get full(): boolean {
    return this.count >= this.max;
  }

  add(n = 1): void {
    this.count += n;
  }

  done(n = 1): void {
    this.count -= n;
    if (this.count <= this.max / 2) for (const w of [...this.waiters]) w();
  }

  /** Calls `resume` once when the count falls to half the bound; returns a function that cancels it. */
  onRoom(resume: () => void): () => void {
    const once = () => {
      this.waiters.delete(once);
      resume();
    };
    this.waiters.add(once);
    return () => this.waiters.delete(once);
  }
}
