// The shape of a figure in bench/results.json, and the arithmetic the figures share.

/**
 * One figure: `value` in `unit`; `baseline` the same quantity measured in the same run for the bare
 * counterpart; `ratio` the server's speed as a fraction of the baseline's (1 = as fast, 0.1 = ten times
 * slower), whichever way round the unit runs. Further keys explain the figure.
 */
export interface Figure {
  value: number | null;
  unit: string;
  baseline?: number;
  ratio?: number;
  [detail: string]: unknown;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Rounds to `digits` significant digits, so results.json stays readable. */
export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const scale = 10 ** (digits - 1 - Math.floor(Math.log10(Math.abs(x))));
  return Math.round(x * scale) / scale;
}

/** Largest deviation from the median, as a fraction of it: how much the rounds of one run disagree. */
export function spread(xs: number[]): number {
  const m = median(xs);
  if (!(m > 0)) return NaN;
  return Math.max(...xs.map((x) => Math.abs(x - m))) / m;
}
