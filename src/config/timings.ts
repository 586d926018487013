import { TIMING_PROFILES, type Timings } from './schema.js';

/**
 * Failover timings, checked before anything reaches a host. Patroni (3.0.3 and
 * later; dpgc installs 4.x) enforces minimums of its own, and does it quietly:
 * `--validate-config` rejects a ttl below 20, but at runtime it *raises* the
 * values a dynamic configuration asks for (log: "ttl=10 can't be smaller than
 * 20, adjusting...") while `GET /config` still shows what was asked. An
 * inventory asking for less would compute a worst case Patroni never runs, so
 * dpgc refuses it and says what Patroni would make of it.
 */

/** Patroni's own minimums (patroni/config.py `_validate_and_adjust_timeouts`). */
export const PATRONI_MIN = { ttl: 20, loop_wait: 1, retry_timeout: 3 } as const;

type PatroniTimings = Pick<Timings, 'ttl' | 'loop_wait' | 'retry_timeout'>;

/**
 * The timings Patroni actually runs with for a dynamic configuration: each
 * value raised to its minimum, then loop_wait (and, when loop_wait is already
 * 1, retry_timeout) lowered until loop_wait + 2 × retry_timeout ≤ ttl. Mirrors
 * Patroni 4.0's `_validate_and_adjust_timeouts` line for line.
 */
export function patroniEffectiveTimings(t: PatroniTimings): PatroniTimings {
  const loop_wait = Math.max(t.loop_wait, PATRONI_MIN.loop_wait);
  const retry_timeout = Math.max(t.retry_timeout, PATRONI_MIN.retry_timeout);
  const ttl = Math.max(t.ttl, PATRONI_MIN.ttl);
  if (PATRONI_MIN.loop_wait + 2 * retry_timeout > ttl) return { ttl, loop_wait: PATRONI_MIN.loop_wait, retry_timeout: Math.floor((ttl - PATRONI_MIN.loop_wait) / 2) };
  if (loop_wait + 2 * retry_timeout > ttl) return { ttl, loop_wait: ttl - 2 * retry_timeout, retry_timeout };
  return { ttl, loop_wait, retry_timeout };
}

/** Seconds a replica needs after it wins the race until it accepts writes (measured 1–3 s in the lab). */
export const PROMOTION_ALLOWANCE_S = 3;
/**
 * etcd's election timeout as dpgc runs it (etcd's default, 1 s). An etcd
 * leader change stalls etcd writes for up to two of these (the timeout is
 * randomised in [T, 2T)), plus a pre-vote round; a Patroni retry window
 * shorter than that turns every etcd election into a demotion of the primary.
 */
export const ETCD_ELECTION_TIMEOUT_S = 1;
/**
 * The shortest retry_timeout that rides out the loss of the etcd leader: two
 * election timeouts and one second of margin. Patroni spends at least 1 s on
 * each member it tries, and on the 2-core lab the election took more than
 * 2.26 s: with retry_timeout 2, 2 of 5 `etcd-member` drills that killed the
 * etcd leader demoted the primary for 4.6 s (bench/failover/FINDINGS.md).
 * Patroni raises a retry_timeout below 3 to 3 for the same reason.
 */
export const MIN_RETRY_TIMEOUT_S = Math.max(2 * ETCD_ELECTION_TIMEOUT_S + 1, PATRONI_MIN.retry_timeout);
/** `timeout check` in HAProxy is one check interval: a hung check counts once, then fails. */
export const checkTimeoutMs = (t: Pick<Timings, 'check_inter_ms'>): number => t.check_inter_ms;
/**
 * HAProxy's `fastinter` and `downinter`: how often it checks a server that is
 * changing state or DOWN. A replica promoted by a switchover is DOWN in the
 * primary backend, so this, not `inter`, sets how soon writes reach it; at
 * `inter` it cost the balanced profile a second of every switchover
 * (bench/failover/FINDINGS.md). A quarter of `inter`, never below 100 ms: the
 * steady-state check load on Patroni's REST API stays that of `inter` for the
 * leader, and 4 × for the members that are DOWN in a backend.
 */
export const transitionCheckMs = (t: Pick<Timings, 'check_inter_ms'>): number => Math.min(t.check_inter_ms, Math.max(100, Math.round(t.check_inter_ms / 4)));

export type TimingProblem = { field: keyof Timings; message: string };

export function validateTimings(t: Timings): TimingProblem[] {
  const problems: TimingProblem[] = [];
  const eff = patroniEffectiveTimings(t);
  const would = `Patroni would run with ttl ${eff.ttl}, loop_wait ${eff.loop_wait}, retry_timeout ${eff.retry_timeout} instead, and failover would not take what dpgc computes`;
  if (t.ttl < PATRONI_MIN.ttl) {
    problems.push({ field: 'ttl', message: `ttl ${t.ttl}s is below Patroni's minimum of ${PATRONI_MIN.ttl}s: ${would}; set timings.ttl to ${PATRONI_MIN.ttl} or more` });
  }
  if (t.retry_timeout < MIN_RETRY_TIMEOUT_S) {
    problems.push({
      field: 'retry_timeout',
      message:
        `retry_timeout ${t.retry_timeout}s is below ${MIN_RETRY_TIMEOUT_S}s, Patroni's minimum and the time an etcd leader election can take (up to ${2 * ETCD_ELECTION_TIMEOUT_S}s, plus a margin): ` +
        `losing the etcd leader would demote the primary, and ${would}; use at least ${MIN_RETRY_TIMEOUT_S}s`,
    });
  }
  if (t.loop_wait + 2 * t.retry_timeout > t.ttl) {
    problems.push({
      field: 'ttl',
      message:
        `loop_wait + 2 × retry_timeout = ${t.loop_wait} + 2 × ${t.retry_timeout} = ${t.loop_wait + 2 * t.retry_timeout}s exceeds ttl ${t.ttl}s: ` +
        `a leader riding out one etcd hiccup would lose its lock (Patroni requires loop_wait + 2*retry_timeout <= ttl, and ${would}); raise ttl or lower the others`,
    });
  }
  if (t.check_inter_ms < 100) problems.push({ field: 'check_inter_ms', message: `check_inter_ms ${t.check_inter_ms} is below 100 ms and would flood the Patroni REST API with checks; use 100 or more` });
  return problems;
}

/**
 * When the primary's host also runs the etcd leader, losing that host costs
 * an etcd election first (up to MIN_RETRY_TIMEOUT_S), and etcd's new leader
 * then extends every lease by one election timeout: the leader lock expires
 * that much later than ttl. Measured in the lab's partition drills: detection
 * 7.9 s instead of 4.4–4.8 s with ttl 5 whenever the victim held the etcd leadership.
 */
export const ETCD_LEADER_LOSS_S = MIN_RETRY_TIMEOUT_S + ETCD_ELECTION_TIMEOUT_S;

/** Whether some host runs both PostgreSQL and an etcd member (dpgc's usual layout). */
export function etcdColocated(inv: { hosts: readonly { roles: readonly string[] }[] }): boolean {
  return inv.hosts.some((h) => h.roles.includes('postgres') && h.roles.includes('etcd'));
}

export interface FailoverBudget {
  /** Leader lock expiry after the last renewal: the leader can die just after renewing. */
  detectionS: number;
  /** The etcd election and lease extension when the lost host also led etcd (0 when etcd runs elsewhere). */
  etcdS: number;
  /** A replica notices the expired lock on its next HA loop at the latest. */
  loopS: number;
  promotionS: number;
  /**
   * HAProxy marks the new primary UP after `rise` good checks; it was DOWN in
   * the primary backend, so they come every `downinter`/`fastinter`:
   * rise × transitionCheckMs.
   */
  haproxyUpS: number;
  /**
   * The old primary must be DOWN in HAProxy too, or new connections are
   * shared with it. A partitioned leader demotes itself before its lock
   * expires (that is what loop_wait + 2 × retry_timeout ≤ ttl buys), then
   * fails `fall` checks: the first within one `inter`, the others every
   * `fastinter`, and the last may hang for the check timeout.
   */
  haproxyDownS: number;
  /** The worst case: ttl (and etcd's recovery), then the slower of "new primary UP" and "old primary DOWN". */
  totalS: number;
}

/**
 * Worst-case client-visible write outage after a hard failure of the primary's
 * host that these settings allow. `etcdColocated`: the host may run the etcd
 * leader too (pass `etcdColocated(inventory)`; true is the cautious default).
 */
export function worstCaseFailover(t: Timings, topology: { etcdColocated: boolean } = { etcdColocated: true }): FailoverBudget {
  const detectionS = t.ttl;
  const etcdS = topology.etcdColocated ? ETCD_LEADER_LOSS_S : 0;
  const loopS = t.loop_wait;
  const promotionS = PROMOTION_ALLOWANCE_S;
  const fast = transitionCheckMs(t);
  const haproxyUpS = (t.check_rise * fast) / 1000;
  const haproxyDownS = (t.check_inter_ms + (t.check_fall - 1) * fast + checkTimeoutMs(t)) / 1000;
  const totalS = detectionS + etcdS + Math.max(loopS + promotionS + haproxyUpS, haproxyDownS);
  return { detectionS, etcdS, loopS, promotionS, haproxyUpS, haproxyDownS, totalS: round(totalS) };
}

/** The worst case for an inventory: its timings, and whether etcd shares the PostgreSQL hosts. */
export function inventoryWorstCase(inv: { timings: Timings; hosts: readonly { roles: readonly string[] }[] }): FailoverBudget {
  return worstCaseFailover(inv.timings, { etcdColocated: etcdColocated(inv) });
}

/** One line for checks and reports: how the worst case adds up. */
export function explainFailover(b: FailoverBudget): string {
  const head = `ttl ${b.detectionS}${b.etcdS ? ` + etcd leader loss ${b.etcdS}` : ''}`;
  const up = `${head} + loop_wait ${b.loopS} + promotion ${b.promotionS} + HAProxy rise ${b.haproxyUpS}`;
  return b.loopS + b.promotionS + b.haproxyUpS >= b.haproxyDownS ? `${up} = ${b.totalS}s` : `${head} + HAProxy fall ${b.haproxyDownS} = ${b.totalS}s`;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
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
