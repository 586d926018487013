import { TIMING_PROFILES, type Timings } from './schema.js';

/**
 * Patroni 3.0.2 validates no timing at all (LAB.md: ttl=2 made the leader
 * demote itself in a loop), so dpgc does, before anything reaches a host.
 */

/** Seconds a replica needs after it decides to promote until it accepts writes (measured 1–3 s in the lab). */
export const PROMOTION_ALLOWANCE_S = 3;
export const MIN_TTL_S = 5;

export type TimingProblem = { field: keyof Timings; message: string };

export function validateTimings(t: Timings): TimingProblem[] {
  const problems: TimingProblem[] = [];
  if (t.ttl < MIN_TTL_S) {
    problems.push({ field: 'ttl', message: `ttl ${t.ttl}s is below ${MIN_TTL_S}s: the leader cannot renew its lock in time and demotes itself in a loop` });
  }
  if (t.loop_wait + 2 * t.retry_timeout > t.ttl) {
    problems.push({
      field: 'ttl',
      message:
        `loop_wait + 2 × retry_timeout = ${t.loop_wait} + 2 × ${t.retry_timeout} = ${t.loop_wait + 2 * t.retry_timeout}s exceeds ttl ${t.ttl}s: ` +
        'a leader riding out one etcd hiccup would lose its lock (Patroni requires loop_wait + 2*retry_timeout <= ttl); raise ttl or lower the others',
    });
  }
  if (t.check_inter_ms < 100) problems.push({ field: 'check_inter_ms', message: 'HAProxy check interval below 100 ms floods the Patroni REST API' });
  return problems;
}

export interface FailoverBudget {
  /** Leader lock expiry after the last renewal: the leader can die just after renewing. */
  detectionS: number;
  /** A replica notices the expired lock on its next HA loop. */
  loopS: number;
  promotionS: number;
  /** HAProxy must see `rise` successful checks of the new primary, plus one interval of phase. */
  haproxyS: number;
  totalS: number;
}

/** Worst-case client-visible write outage after a hard primary failure that these settings allow. */
export function worstCaseFailover(t: Timings): FailoverBudget {
  const detectionS = t.ttl;
  const loopS = t.loop_wait;
  const promotionS = PROMOTION_ALLOWANCE_S;
  const haproxyS = ((t.check_rise + 1) * t.check_inter_ms) / 1000;
  return { detectionS, loopS, promotionS, haproxyS, totalS: detectionS + loopS + promotionS + haproxyS };
}

export function resolveTimings(input: {
  profile: keyof typeof TIMING_PROFILES;
  rto_budget_s: number;
  ttl?: number | undefined;
  loop_wait?: number | undefined;
  retry_timeout?: number | undefined;
  check_inter_ms?: number | undefined;
  check_fall?: number | undefined;
  check_rise?: number | undefined;
}): Timings {
  const base = TIMING_PROFILES[input.profile];
  const keys = ['ttl', 'loop_wait', 'retry_timeout', 'check_inter_ms', 'check_fall', 'check_rise'] as const;
  const custom = keys.some((k) => input[k] !== undefined);
  const out: Timings = { ...base, rto_budget_s: input.rto_budget_s, profile: custom ? 'custom' : input.profile };
  for (const k of keys) {
    const v = input[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
