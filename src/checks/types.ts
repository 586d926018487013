import type { RunContext } from '../context.js';

/**
 * A check is a live measurement with a verdict. `value` is what was measured
 * and `threshold` what it was held against, so a failure explains itself.
 */
export type Verdict = 'pass' | 'warn' | 'fail';

export interface CheckResult {
  verdict: Verdict;
  /** What was measured, e.g. `0.42 s`, `3/3 members`. */
  value?: string | number;
  threshold?: string;
  detail?: string;
  /** What to do about a warn or fail. */
  remedy?: string;
}

export interface Check {
  /** Stable id for --json and JUnit, e.g. `s0.pg.reachable`. */
  id: string;
  title: string;
  sprint: number;
  /** A failing optional check is reported but does not fail verify (default true). */
  required?: boolean;
  run(ctx: RunContext): Promise<CheckResult>;
}

export interface CheckOutcome extends CheckResult {
  id: string;
  title: string;
  sprint: number;
  required: boolean;
  durationMs: number;
}

export const pass = (value?: string | number, threshold?: string, detail?: string): CheckResult => ({
  verdict: 'pass',
  ...(value === undefined ? {} : { value }),
  ...(threshold === undefined ? {} : { threshold }),
  ...(detail === undefined ? {} : { detail }),
});

export const fail = (detail: string, extra: Omit<CheckResult, 'verdict' | 'detail'> = {}): CheckResult => ({ verdict: 'fail', detail, ...extra });
export const warn = (detail: string, extra: Omit<CheckResult, 'verdict' | 'detail'> = {}): CheckResult => ({ verdict: 'warn', detail, ...extra });
