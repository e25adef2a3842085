import { describe, expect, it } from 'vitest';
import { quantile, readHistogram, seriesLabels, sumSeries } from '../../observability/histogram.ts';

const text = `# HELP x_seconds x
# TYPE x_seconds histogram
x_seconds_bucket{le="0.01",stage="a",step="s"} 10
x_seconds_bucket{le="0.02",stage="a",step="s"} 30
x_seconds_bucket{le="+Inf",stage="a",step="s"} 40
x_seconds_sum{stage="a",step="s"} 1
x_seconds_count{stage="a",step="s"} 40
x_seconds_bucket{le="0.01",stage="b",step="s"} 5
x_seconds_bucket{le="0.02",stage="b",step="s"} 5
x_seconds_bucket{le="+Inf",stage="b",step="s"} 5
x_seconds_count{stage="b",step="s"} 5
`;

describe('histogram quantiles from Prometheus text', () => {
  it('reads the matching series and interpolates inside the bucket like histogram_quantile', () => {
    const h = readHistogram(text, 'x_seconds', { stage: 'a' });
    expect(h.count).toBe(40);
    expect(quantile(h, 0.25)).toBeCloseTo(0.01, 9);
    expect(quantile(h, 0.5)).toBeCloseTo(0.015, 9);
    // Above the last finite bucket Prometheus answers with that bucket's bound.
    expect(quantile(h, 0.99)).toBeCloseTo(0.02, 9);
  });

  it('merges series when the filter leaves several, and gives NaN for none', () => {
    expect(readHistogram(text, 'x_seconds', { step: 's' }).count).toBe(45);
    expect(Number.isNaN(quantile(readHistogram(text, 'x_seconds', { stage: 'zzz' }), 0.5))).toBe(true);
  });

  it('lists the label sets of one exact series name, filtered', () => {
    const info = `${text}m_info{stage="a",version="v1",provider="cpu"} 1\nm_info{stage="b",version="v2",provider="cuda"} 1\n`;
    expect(seriesLabels(info, 'm_info', { stage: 'b' })).toEqual([{ stage: 'b', version: 'v2', provider: 'cuda' }]);
    expect(seriesLabels(info, 'x_seconds', {})).toEqual([]);
  });

  it('sums a counter over the series that match, and not the ones whose name only starts the same', () => {
    const counters = `${text}c_total{stage="a",topic="t1"} 7\nc_total{stage="a",topic="t2"} 5\nc_total{stage="b",topic="t1"} 100\nc_total_other{stage="a"} 9\nplain 3\n`;
    expect(sumSeries(counters, 'c_total', { stage: 'a' })).toBe(12);
    expect(sumSeries(counters, 'c_total', { topic: 't1' })).toBe(107);
    expect(sumSeries(counters, 'c_total', { stage: 'z' })).toBe(0);
    expect(sumSeries(counters, 'plain', {})).toBe(3);
  });
});
