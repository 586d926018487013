/**
 * The pool test's arithmetic, pure: a latency histogram of bounded size
 * (a 300 s run at thousands of ops/s must not keep every sample), error
 * classification, and the verdict.
 */

/** Log-spaced buckets, 2 % wide, from 10 µs to about 10 min: percentiles within 2 %. */
const BASE = 1.02;
const MIN_MS = 0.01;
const BUCKETS = Math.ceil(Math.log(600_000 / MIN_MS) / Math.log(BASE)) + 1;

export class LatencyHistogram {
  private readonly counts = new Uint32Array(BUCKETS);
  count = 0;
  maxMs = 0;
  sumMs = 0;

  record(ms: number): void {
    const i = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / Math.log(BASE)));
    this.counts[i]! += 1;
    this.count += 1;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  merge(o: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += o.counts[i]!;
    this.count += o.count;
    this.sumMs += o.sumMs;
    this.maxMs = Math.max(this.maxMs, o.maxMs);
  }

  /** Upper edge of the bucket holding the q-quantile (never above the true max). */
  percentile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.maxMs, MIN_MS * BASE ** i);
    }
    return this.maxMs;
  }
}

/**
 * What went wrong, in the terms of the criteria: a connection that could
 * not be made in time, an operation without an answer in time, PgBouncer
 * refusing a client because its pools or client slots are used up, or
 * anything else.
 */
export type ErrorKind = 'connect-timeout' | 'timeout' | 'pool-exhausted' | 'error';

const EXHAUSTION = /no more connections allowed|max_client_conn|query_wait_timeout|pool_size|too many (clients|connections)|remaining connection slots|client_login_timeout/i;

export function classifyError(e: unknown, phase: 'connect' | 'op'): ErrorKind {
  const msg = e instanceof Error ? e.message : String(e);
  if (EXHAUSTION.test(msg)) return 'pool-exhausted';
  if (/timeout|timed out|no answer within/i.test(msg)) return phase === 'connect' ? 'connect-timeout' : 'timeout';
  return 'error';
}

export interface PoolView {
  /** Peak clients queued for a server connection, over every sample. */
  clWaitingPeak: number;
  /** Longest wait PgBouncer reported for a queued client, in seconds. */
  maxwaitPeakS: number;
  svActivePeak: number;
  clActivePeak: number;
  samples: number;
}

export interface PoolTestReport {
  agents: number;
  /** Agents that held a connection from start to end. */
  agentsSustained: number;
  durationS: number;
  ops: number;
  opsPerSecond: number;
  byOp: Record<string, number>;
  errors: number;
  connectTimeouts: number;
  timeouts: number;
  poolExhausted: number;
  /** First message of each kind, for the operator. */
  errorSamples: string[];
  latencyMs: { p50: number; p95: number; p99: number; max: number; mean: number };
  connectMs: { p50: number; p99: number; max: number };
  pgbouncer: PoolView;
  passed: boolean;
  /** Why it failed, one line each. */
  reasons: string[];
}

export const round = (n: number, d = 2): number => Math.round(n * 10 ** d) / 10 ** d;

/** The sprint 1 criteria: every agent sustained, no timeout of either kind, no pool exhaustion, no error. */
export function verdict(r: Omit<PoolTestReport, 'passed' | 'reasons'>, minAgents = 40): { passed: boolean; reasons: string[] } {
  const reasons: string[] = [];
  if (r.agents < minAgents) reasons.push(`${r.agents} agents is fewer than the ${minAgents} the criterion asks for`);
  if (r.agentsSustained < r.agents) reasons.push(`${r.agents - r.agentsSustained} of ${r.agents} agents lost their connection`);
  if (r.connectTimeouts) reasons.push(`${r.connectTimeouts} connection timeouts`);
  if (r.timeouts) reasons.push(`${r.timeouts} operations got no answer in time`);
  if (r.poolExhausted) reasons.push(`${r.poolExhausted} clients refused by PgBouncer (pool or client slots exhausted)`);
  const other = r.errors - r.connectTimeouts - r.timeouts - r.poolExhausted;
  if (other > 0) reasons.push(`${other} other errors`);
  if (r.ops === 0) reasons.push('no operation completed');
  return { passed: reasons.length === 0, reasons };
}
