/** Summary statistics over a benchmark's samples. */

export interface Summary {
  readonly n: number
  readonly median: number
  /** 95th percentile of the samples, whatever the metric's direction (for a rate, its fast end). */
  readonly p95: number
  /** 5th percentile: the slow end of a rate. */
  readonly p5: number
  readonly mean: number
  readonly min: number
  readonly max: number
}

/**
 * The p-th percentile (0 ≤ p ≤ 100) by linear interpolation between closest ranks
 * (the same definition as NumPy's default). Empty input gives NaN.
 */
export const percentile = (samples: ReadonlyArray<number>, p: number): number => {
  if (samples.length === 0) return NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = (p / 100) * (sorted.length - 1)
  const lower = Math.floor(rank)
  const upper = Math.ceil(rank)
  return sorted[lower] + (sorted[upper] - sorted[lower]) * (rank - lower)
}

export const median = (samples: ReadonlyArray<number>): number => percentile(samples, 50)

export const summarize = (samples: ReadonlyArray<number>): Summary => ({
  n: samples.length,
  median: median(samples),
  p95: percentile(samples, 95),
  p5: percentile(samples, 5),
  mean: samples.length === 0 ? NaN : samples.reduce((sum, x) => sum + x, 0) / samples.length,
  min: samples.length === 0 ? NaN : Math.min(...samples),
  max: samples.length === 0 ? NaN : Math.max(...samples)
})

/** library / baseline, of the medians; undefined when either side is missing or the baseline is 0. */
export const ratio = (library: Summary | undefined, baseline: Summary | undefined): number | undefined =>
  library === undefined || baseline === undefined || baseline.median === 0
    ? undefined
    : library.median / baseline.median
