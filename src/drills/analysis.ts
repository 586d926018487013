import type { Ack, Criterion, DrillMode, InDoubt, NodeRows, Outage, RowCount } from './types.js';
import { LEADER_CHANGING } from './types.js';

/**
 * The arithmetic of a drill, kept pure: everything here is a function of
 * what the clients recorded and what was read back, so it is unit-tested
 * without a cluster.
 */

export interface Summary {
  n: number;
  min: number;
  median: number;
  p95: number;
  max: number;
}

/**
 * min/median/p95/max. p95 is nearest-rank (the ceil(0.95·n)-th smallest):
 * with few drills it is the worst one, never an interpolation below it, so a
 * claimed "p95 ≤ x" holds for the samples actually seen.
 */
export function summarize(values: readonly (number | null)[]): Summary | null {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const at = (rank: number) => v[Math.min(v.length, Math.max(1, rank)) - 1]!;
  const mid = v.length / 2;
  const median = v.length % 2 === 1 ? v[Math.floor(mid)]! : (v[mid - 1]! + v[mid]!) / 2;
  return { n: v.length, min: v[0]!, median, p95: at(Math.ceil(0.95 * v.length)), max: v[v.length - 1]! };
}

/**
 * The client-visible write outage: the longest span with no acknowledged
 * write (across all writers) that ends after the fault. A planned switchover
 * keeps acknowledging writes on the old primary for a while after the fault
 * is injected, so "last ack before the fault" alone would overstate it. The
 * span from the last acknowledgement to the end of the load counts too: when
 * it is the longest, writes had not recovered (`unrecoveredS`, and no RTO).
 */
export function computeOutage(acks: readonly Ack[], faultAt: number, endAt: number): Outage {
  const times = acks.map((a) => a.ackAt).sort((a, b) => a - b);
  const merged = longestGapEndingAfter(times, faultAt, endAt);
  const byWriter = new Map<number, number[]>();
  for (const a of acks) byWriter.set(a.writer, [...(byWriter.get(a.writer) ?? []), a.ackAt]);
  let worst: number | null = null;
  let writerStuck = false;
  for (const ts of byWriter.values()) {
    const g = longestGapEndingAfter(ts.sort((a, b) => a - b), faultAt, endAt);
    if (g.seconds === null) writerStuck = true;
    else worst = Math.max(worst ?? 0, g.seconds);
  }
  let baseline: number | null = null;
  for (let i = 1; i < times.length && times[i]! <= faultAt; i++) baseline = Math.max(baseline ?? 0, (times[i]! - times[i - 1]!) / 1000);
  return {
    ...merged,
    worstWriterSeconds: writerStuck || byWriter.size === 0 ? null : worst,
    baselineGapSeconds: baseline,
  };
}

/** A trailing gap shorter than this is the pause between two inserts, not an outage. */
const TRAILING_SLACK_MS = 1000;

function longestGapEndingAfter(sorted: readonly number[], faultAt: number, endAt: number): Pick<Outage, 'seconds' | 'lastAckBefore' | 'firstAckAfter' | 'unrecoveredS'> {
  const last = sorted.length ? sorted[sorted.length - 1]! : null;
  const firstAfter = sorted.findIndex((t) => t > faultAt);
  if (firstAfter === -1) return { seconds: null, lastAckBefore: last, firstAckAfter: null, unrecoveredS: (endAt - Math.max(last ?? faultAt, faultAt)) / 1000 };
  // The gap that straddles the fault counts from the last ack before it (or from the fault itself when there was none).
  let best = { seconds: (sorted[firstAfter]! - (firstAfter > 0 ? sorted[firstAfter - 1]! : faultAt)) / 1000, lastAckBefore: firstAfter > 0 ? sorted[firstAfter - 1]! : null, firstAckAfter: sorted[firstAfter]! };
  for (let i = firstAfter + 1; i < sorted.length; i++) {
    const g = (sorted[i]! - sorted[i - 1]!) / 1000;
    if (g > best.seconds) best = { seconds: g, lastAckBefore: sorted[i - 1]!, firstAckAfter: sorted[i]! };
  }
  const trailing = endAt - last!;
  if (trailing > TRAILING_SLACK_MS && trailing / 1000 > best.seconds) return { seconds: null, lastAckBefore: last, firstAckAfter: null, unrecoveredS: trailing / 1000 };
  return { ...best, unrecoveredS: null };
}

const key = (writer: number, seq: number) => `${writer}:${seq}`;

/** Compares what one node holds with what the clients were told. */
export function checkRows(node: string, role: string, acks: readonly Ack[], inDoubt: readonly InDoubt[], rows: readonly RowCount[]): NodeRows {
  const present = new Map<string, number>();
  for (const r of rows) present.set(key(r.writer, r.seq), (present.get(key(r.writer, r.seq)) ?? 0) + r.count);
  const acked = new Set(acks.map((a) => key(a.writer, a.seq)));
  const doubt = new Set(inDoubt.map((d) => key(d.writer, d.seq)));
  const lost = acks.filter((a) => !present.has(key(a.writer, a.seq))).map((a) => ({ writer: a.writer, seq: a.seq }));
  const duplicates: RowCount[] = [];
  let unexpected = 0;
  let inDoubtCommitted = 0;
  let total = 0;
  for (const [k, count] of present) {
    total += count;
    const [w, s] = k.split(':').map(Number) as [number, number];
    if (count > 1) duplicates.push({ writer: w, seq: s, count });
    if (doubt.has(k)) inDoubtCommitted++;
    else if (!acked.has(k)) unexpected++;
  }
  return { node, role, lost, duplicates, unexpected, inDoubtCommitted, rows: total };
}

export interface VerdictInput {
  mode: DrillMode;
  budgetS: number;
  outage: Outage;
  nodes: readonly NodeRows[];
  acksAfterFault: number;
  /** Leader before and after; for leader-changing modes they must differ (switchover, kill, …). */
  oldLeader: string;
  newLeader: string | null;
  /** freeze only: did the old primary acknowledge a direct write after it woke up? */
  oldPrimaryAcceptedWrite?: boolean | undefined;
  /**
   * Modes that keep the leader: seconds after the fault at which it started a
   * new timeline (Patroni demoted it and promoted it again), or null if it did not.
   */
  leaderRepromotedS?: number | null | undefined;
  /** Leader-changing modes: the new leader whose key the old one overwrote on resuming (patroni/patroni#2689). */
  leaderRetakenFrom?: string | null | undefined;
  healthyAfter: boolean;
  healthDetail: string;
}

/**
 * Acknowledged writes missing on at least one node, each counted once: a row
 * missing on two nodes is one lost write, not two. Where they are missing
 * (per-node divergence) is reported beside it.
 */
export function distinctLost(nodes: readonly Pick<NodeRows, 'lost'>[]): { writer: number; seq: number }[] {
  const seen = new Map<string, { writer: number; seq: number }>();
  for (const n of nodes) for (const l of n.lost) seen.set(key(l.writer, l.seq), l);
  return [...seen.values()];
}

/** Pass/fail against RPO = 0, the RTO budget, and the mode's own promise. */
export function verdict(v: VerdictInput): Criterion[] {
  const c: Criterion[] = [];
  const lost = distinctLost(v.nodes).length;
  const dups = v.nodes.reduce((n, x) => n + x.duplicates.length, 0);
  const lostWhere = v.nodes.filter((x) => x.lost.length > 0).map((x) => `missing on ${x.node}: ${x.lost.length}`);
  c.push({ id: 'rpo', ok: lost === 0, detail: lost === 0 ? `every acknowledged write is on all ${v.nodes.length} nodes` : `${lost} acknowledged writes lost (${lostWhere.join(', ')})` });
  c.push({ id: 'duplicates', ok: dups === 0, detail: dups === 0 ? 'no row appears twice' : `${dups} (writer, seq) pairs appear more than once` });
  const rto = v.outage.seconds;
  c.push({
    id: 'rto',
    ok: rto !== null && rto <= v.budgetS,
    detail:
      rto !== null
        ? `write outage ${rto.toFixed(2)} s (budget ${v.budgetS} s)`
        : v.outage.unrecoveredS !== null
          ? `writes had not recovered when the drill ended: none acknowledged in its last ${v.outage.unrecoveredS.toFixed(2)} s`
          : 'no write was acknowledged after the fault',
  });
  c.push({ id: 'writes-resumed', ok: v.acksAfterFault > 0, detail: `${v.acksAfterFault} writes acknowledged after the fault` });
  if (LEADER_CHANGING.has(v.mode)) {
    c.push({
      id: 'leader-changed',
      ok: v.newLeader !== null && v.newLeader !== v.oldLeader,
      detail:
        v.newLeader === null
          ? 'no leader after the drill'
          : v.leaderRetakenFrom
            ? `${v.oldLeader} took the leader key back from ${v.leaderRetakenFrom}`
            : v.newLeader === v.oldLeader
              ? `${v.oldLeader} is still the leader`
              : `${v.oldLeader} → ${v.newLeader}`,
    });
  } else {
    c.push({ id: 'leader-kept', ok: v.newLeader === v.oldLeader, detail: `leader ${v.oldLeader} → ${v.newLeader ?? 'none'}` });
    // Keeping the name is not enough: a leader that lost etcd for longer than retry_timeout demotes
    // itself and, once etcd answers, promotes again under the same name, on a new timeline, after
    // seconds without writes. These faults must not reach the primary at all.
    if (v.leaderRepromotedS !== undefined) {
      c.push({
        id: 'primary-undisturbed',
        ok: v.leaderRepromotedS === null,
        detail:
          v.leaderRepromotedS === null
            ? `${v.oldLeader} stayed primary on its timeline`
            : `${v.oldLeader} was demoted and promoted again (new timeline at +${v.leaderRepromotedS.toFixed(1)} s): Patroni could not reach etcd within retry_timeout`,
      });
    }
  }
  if (v.mode === 'freeze') {
    c.push({
      id: 'no-split-brain',
      ok: v.oldPrimaryAcceptedWrite === false,
      detail:
        v.oldPrimaryAcceptedWrite === undefined
          ? 'the old primary was not probed'
          : v.oldPrimaryAcceptedWrite
            ? `${v.oldLeader} acknowledged a direct write after waking up although ${v.leaderRetakenFrom ?? (v.newLeader !== v.oldLeader ? v.newLeader : null) ?? 'another node'} had been elected leader`
            : `${v.oldLeader} refused a direct write after waking up`,
    });
  }
  c.push({ id: 'healthy-after', ok: v.healthyAfter, detail: v.healthDetail });
  return c;
}

/**
 * Acknowledged writes per bin per writer, relative to the fault: the drill's
 * timeline as the clients lived it, compact enough for the drill log's JSON
 * (a 60 s drill with 4 writers is 2,400 small numbers). `fromS` is the first
 * bin's start in seconds after the fault (negative: the warm-up before it).
 */
export interface AckSeries {
  binMs: number;
  fromS: number;
  /** One array per writer (index = writer number), one count per bin. */
  writers: number[][];
}

export const SERIES_BIN_MS = 100;

export function ackSeries(acks: readonly Pick<Ack, 'writer' | 'ackAt'>[], faultAt: number, startAt: number, endAt: number, binMs = SERIES_BIN_MS): AckSeries {
  // Bins are aligned on the fault, so the fault is always on a bin boundary.
  const first = Math.floor((Math.min(startAt, faultAt) - faultAt) / binMs);
  const bins = Math.max(1, Math.ceil((Math.max(endAt, faultAt) - faultAt) / binMs) - first);
  const nWriters = acks.reduce((n, a) => Math.max(n, a.writer + 1), 0);
  const writers = Array.from({ length: nWriters }, () => new Array<number>(bins).fill(0));
  for (const a of acks) {
    const i = Math.floor((a.ackAt - faultAt) / binMs) - first;
    if (i >= 0 && i < bins) writers[a.writer]![i]!++;
  }
  return { binMs, fromS: (first * binMs) / 1000, writers };
}
