import { describe, expect, it } from 'vitest';
import { ackSeries, checkRows, computeOutage, distinctLost, summarize, verdict, type VerdictInput } from '../../src/drills/analysis.js';
import type { Ack } from '../../src/drills/types.js';

const ack = (writer: number, seq: number, ackAt: number): Ack => ({ writer, seq, sentAt: ackAt - 2, ackAt });

describe('summarize', () => {
  it('gives min/median/p95/max with nearest-rank p95', () => {
    expect(summarize([3, 1, 2, 5, 4])).toEqual({ n: 5, min: 1, median: 3, p95: 5, max: 5 });
    expect(summarize([4, 1, 3, 2])).toEqual({ n: 4, min: 1, median: 2.5, p95: 4, max: 4 });
    const twenty = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(summarize(twenty)?.p95).toBe(19);
  });
  it('ignores missing values and returns null when nothing was measured', () => {
    expect(summarize([null, 2, null])).toEqual({ n: 1, min: 2, median: 2, p95: 2, max: 2 });
    expect(summarize([null])).toBeNull();
    expect(summarize([])).toBeNull();
  });
});

describe('computeOutage', () => {
  it('is the gap from the last ack before the fault to the first after', () => {
    const acks = [ack(0, 1, 1000), ack(1, 1, 1010), ack(0, 2, 1020), ack(1, 2, 9020), ack(0, 3, 9030)];
    const o = computeOutage(acks, 1500, 9040);
    expect(o.seconds).toBeCloseTo(8.0);
    expect(o.lastAckBefore).toBe(1020);
    expect(o.firstAckAfter).toBe(9020);
    expect(o.baselineGapSeconds).toBeCloseTo(0.01);
    // writer 0 waited 9030 - 1020.
    expect(o.worstWriterSeconds).toBeCloseTo(8.01);
  });

  it('finds a gap that starts after the fault (switchover: writes continue on the old primary first)', () => {
    const acks = [ack(0, 1, 1000), ack(0, 2, 1100), ack(0, 3, 1200), ack(0, 4, 3200), ack(0, 5, 3300)];
    const o = computeOutage(acks, 1050, 3310);
    expect(o.seconds).toBeCloseTo(2.0);
    expect(o.lastAckBefore).toBe(1200);
    expect(o.firstAckAfter).toBe(3200);
  });

  it('is null when no write was acknowledged after the fault', () => {
    const o = computeOutage([ack(0, 1, 1000)], 2000, 5000);
    expect(o.seconds).toBeNull();
    expect(o.firstAckAfter).toBeNull();
    expect(o.worstWriterSeconds).toBeNull();
    expect(o.unrecoveredS).toBe(3);
  });

  it('is null when writes stopped again and never came back before the load ended', () => {
    const acks = [ack(0, 1, 1000), ack(0, 2, 1100), ack(0, 3, 2100), ack(0, 4, 2200)];
    const o = computeOutage(acks, 1050, 12_200);
    expect(o.seconds).toBeNull();
    expect(o.unrecoveredS).toBe(10);
    expect(o.lastAckBefore).toBe(2200);
    // A short pause at the very end is just the interval between inserts.
    expect(computeOutage(acks, 1050, 2300).seconds).toBe(1);
  });

  it('counts a writer that never recovered as unbounded', () => {
    const o = computeOutage([ack(0, 1, 1000), ack(1, 1, 1000), ack(0, 2, 3000)], 2000, 3010);
    expect(o.seconds).toBeCloseTo(2);
    expect(o.worstWriterSeconds).toBeNull();
  });
});

describe('checkRows', () => {
  const acks = [ack(0, 1, 1), ack(0, 2, 2), ack(1, 1, 3)];
  const inDoubt = [{ writer: 1, seq: 2, at: 4, error: 'connection terminated' }, { writer: 1, seq: 3, at: 5, error: 'connection terminated' }];

  it('finds nothing wrong when every acknowledged row is there once', () => {
    const r = checkRows('db2', 'leader', acks, inDoubt, [
      { writer: 0, seq: 1, count: 1 },
      { writer: 0, seq: 2, count: 1 },
      { writer: 1, seq: 1, count: 1 },
      { writer: 1, seq: 2, count: 1 },
    ]);
    expect(r).toMatchObject({ lost: [], duplicates: [], unexpected: 0, inDoubtCommitted: 1, rows: 4 });
  });

  it('reports lost, duplicated and unexpected rows', () => {
    const r = checkRows('db3', 'replica', acks, inDoubt, [
      { writer: 0, seq: 1, count: 2 },
      { writer: 1, seq: 1, count: 1 },
      { writer: 7, seq: 7, count: 1 },
    ]);
    expect(r.lost).toEqual([{ writer: 0, seq: 2 }]);
    expect(r.duplicates).toEqual([{ writer: 0, seq: 1, count: 2 }]);
    expect(r.unexpected).toBe(1);
    expect(r.inDoubtCommitted).toBe(0);
    expect(r.rows).toBe(4);
  });
});

describe('verdict', () => {
  const base: VerdictInput = {
    mode: 'kill',
    budgetS: 30,
    outage: { seconds: 9.5, lastAckBefore: 1, firstAckAfter: 2, unrecoveredS: null, worstWriterSeconds: 9.6, baselineGapSeconds: 0.01 },
    nodes: [checkRows('db2', 'leader', [ack(0, 1, 1)], [], [{ writer: 0, seq: 1, count: 1 }])],
    acksAfterFault: 100,
    oldLeader: 'db1',
    newLeader: 'db2',
    healthyAfter: true,
    healthDetail: 'leader db2, 2 replicas streaming',
  };
  const failed = (v: VerdictInput) => verdict(v).filter((c) => !c.ok).map((c) => c.id);

  it('passes a clean failover', () => {
    expect(failed(base)).toEqual([]);
  });
  it('fails on a lost acknowledged write, naming the node', () => {
    const v = { ...base, nodes: [checkRows('db2', 'leader', [ack(0, 1, 1)], [], [])] };
    expect(failed(v)).toEqual(['rpo']);
    expect(verdict(v).find((c) => c.id === 'rpo')?.detail).toContain('db2: 1');
  });
  it('fails an outage over budget, or no recovery at all', () => {
    expect(failed({ ...base, outage: { ...base.outage, seconds: 31 } })).toEqual(['rto']);
    expect(failed({ ...base, outage: { ...base.outage, seconds: null }, acksAfterFault: 0 })).toEqual(['rto', 'writes-resumed']);
  });
  it('wants a new leader for failures and the same one for etcd-member and replica', () => {
    expect(failed({ ...base, newLeader: 'db1' })).toEqual(['leader-changed']);
    expect(failed({ ...base, mode: 'etcd-member', newLeader: 'db1' })).toEqual([]);
    expect(failed({ ...base, mode: 'replica', newLeader: 'db2' })).toEqual(['leader-kept']);
  });
  it('etcd-member and replica fail when the kept leader was demoted and promoted again (a new timeline)', () => {
    const kept = { ...base, mode: 'etcd-member' as const, newLeader: 'db1' };
    expect(failed({ ...kept, leaderRepromotedS: null })).toEqual([]);
    expect(failed({ ...kept, leaderRepromotedS: 6.7 })).toEqual(['primary-undisturbed']);
    expect(verdict({ ...kept, leaderRepromotedS: 6.7 }).find((c) => c.id === 'primary-undisturbed')?.detail).toBe(
      'db1 was demoted and promoted again (new timeline at +6.7 s): Patroni could not reach etcd within retry_timeout',
    );
    expect(failed({ ...kept, mode: 'replica', leaderRepromotedS: 2 })).toEqual(['primary-undisturbed']);
  });
  it('names a leader key taken back by the resumed old leader (patroni/patroni#2689)', () => {
    const v = { ...base, mode: 'freeze' as const, newLeader: 'db1', leaderRetakenFrom: 'db2', oldPrimaryAcceptedWrite: true };
    expect(failed(v)).toEqual(['leader-changed', 'no-split-brain']);
    expect(verdict(v).find((c) => c.id === 'leader-changed')?.detail).toBe('db1 took the leader key back from db2');
    expect(verdict(v).find((c) => c.id === 'no-split-brain')?.detail).toBe('db1 acknowledged a direct write after waking up although db2 had been elected leader');
  });
  it('freeze fails when the woken old primary acknowledged a write, or was never probed', () => {
    expect(failed({ ...base, mode: 'freeze', oldPrimaryAcceptedWrite: false })).toEqual([]);
    expect(failed({ ...base, mode: 'freeze', oldPrimaryAcceptedWrite: true })).toEqual(['no-split-brain']);
    expect(failed({ ...base, mode: 'freeze' })).toEqual(['no-split-brain']);
  });
  it('fails when the cluster is not healthy afterwards', () => {
    expect(failed({ ...base, healthyAfter: false, healthDetail: 'db1 not streaming' })).toEqual(['healthy-after']);
  });
});

describe('distinctLost', () => {
  it('counts a row missing on two nodes once (19 lost rows used to print as 38)', () => {
    const a = { lost: [{ writer: 0, seq: 1 }, { writer: 1, seq: 7 }] };
    const b = { lost: [{ writer: 0, seq: 1 }] };
    expect(distinctLost([a, b])).toEqual([{ writer: 0, seq: 1 }, { writer: 1, seq: 7 }]);
    expect(distinctLost([{ lost: [] }])).toEqual([]);
  });
});

describe('ackSeries', () => {
  it('counts acknowledged writes per 100 ms per writer, bins aligned on the fault', () => {
    // fault at 10_000; load from 9_750 (bin -3 starts at 9_700) to 10_260.
    const acks = [ack(0, 1, 9_760), ack(1, 1, 9_790), ack(0, 2, 9_999), ack(0, 3, 10_000), ack(1, 2, 10_250)];
    const s = ackSeries(acks, 10_000, 9_750, 10_260);
    expect(s.binMs).toBe(100);
    expect(s.fromS).toBeCloseTo(-0.3);
    expect(s.writers).toEqual([
      [1, 0, 1, 1, 0, 0],
      [1, 0, 0, 0, 0, 1],
    ]);
  });
  it('keeps a writer that never acknowledged as a row of zeros, and one bin at least', () => {
    const s = ackSeries([ack(1, 1, 1_050)], 1_000, 1_000, 1_000);
    expect(s.writers).toEqual([[0], [1]]);
    expect(ackSeries([], 1_000, 900, 1_100).writers).toEqual([]);
  });
});
