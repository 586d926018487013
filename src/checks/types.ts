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

export type CheckKind = 'state' | 'read' | 'load';

export interface Check {
  /** Stable id for --json and JUnit, e.g. `s0.pg.reachable`. */
  id: string;
  title: string;
  sprint: number;
  /** A failing optional check is reported but does not fail verify (default true). */
  required?: boolean;
  /**
   * What measuring it does, which decides what may run beside it and what
   * `dpgc verify --quick` runs (every check says, so a new one cannot slip
   * into the wrong group by default):
   * - `state`: reads what is there now (processes, roles, routing, replication
   *   state, what exists), answers in well under a second: `verify --quick`;
   * - `read`: reads only, but waits, validates or exercises behaviour (a login,
   *   a rejected insert, Prometheus's data);
   * - `load`: applies load or writes test data, so it is exclusive.
   */
  kind: CheckKind;
  /**
   * Never runs at the same time as another exclusive check. Every `load`
   * check is (two loads would measure each other); so is a read that a
   * concurrent load would falsify, such as comparing every node's data while
   * another check's test rows replicate.
   */
  exclusive?: boolean;
  run(ctx: RunContext): Promise<CheckResult>;
}

export interface CheckOutcome extends CheckResult {
  id: string;
  title: string;
  sprint: number;
  required: boolean;
  kind: CheckKind;
  /** Milliseconds since the run began at which it started: with durationMs, what ran beside what. */
  startedMs: number;
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

export const isExclusive = (c: Pick<Check, 'kind' | 'exclusive'>): boolean => c.exclusive ?? c.kind === 'load';
