/** A histogram read from Prometheus text: cumulative bucket counts by upper bound. */
export interface Histogram {
  readonly buckets: Array<{ le: number; count: number }>;
  readonly count: number;
  readonly sum: number;
}

function labelsOf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = m[2]!;
  return out;
}

/** The label sets of the series `name` (exactly) in Prometheus exposition text whose labels match `where`. */
export function seriesLabels(text: string, name: string, where: Record<string, string>): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{([^}]*)\}\s/.exec(line);
    if (m?.[1] !== name) continue;
    const labels = labelsOf(m[2]!);
    if (Object.entries(where).every(([k, v]) => labels[k] === v)) out.push(labels);
  }
  return out;
}

/** The sum of the counter or gauge `name` over the series whose labels match `where` (0 when none does). */
export function sumSeries(text: string, name: string, where: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (m?.[1] !== name) continue;
    const labels = labelsOf(m[2] ?? '');
    if (Object.entries(where).every(([k, v]) => labels[k] === v)) total += Number(m[3]);
  }
  return total;
}

/** Collects the histogram `name` from Prometheus exposition text, merged over the series whose labels match `where`. */
export function readHistogram(text: string, name: string, where: Record<string, string>): Histogram {
  const buckets = new Map<number, number>();
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m || !m[1]!.startsWith(name)) continue;
    const labels = labelsOf(m[2]!);
    if (!Object.entries(where).every(([k, v]) => labels[k] === v)) continue;
    const value = Number(m[3]);
    if (m[1] === `${name}_bucket`) {
      const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + value);
    } else if (m[1] === `${name}_count`) count += value;
    else if (m[1] === `${name}_sum`) sum += value;
  }
  return { buckets: [...buckets].map(([le, c]) => ({ le, count: c })).sort((a, b) => a.le - b.le), count, sum };
}

/** The q-quantile as Prometheus's histogram_quantile computes it (linear within the bucket). */
export function quantile(h: Histogram, q: number): number {
  if (h.count === 0 || h.buckets.length === 0) return NaN;
  const rank = q * h.buckets[h.buckets.length - 1]!.count;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      return prevLe + ((b.le - prevLe) * (rank - prevCount)) / Math.max(1e-12, b.count - prevCount);
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}
