import { describe, expect, it } from 'vitest';
import { formatDrill, formatSummary, summarizeDrills } from '../../src/drills/report.js';
import type { DrillResult } from '../../src/drills/result.js';

function drill(outage: number | null, lost = 0): DrillResult {
  return {
    mode: 'kill',
    run: 'r1',
    victim: 'db1',
    oldLeader: 'db1',
    newLeader: 'db2',
    fault: 'SIGKILL patroni (pid 1) and postgres (pid 2 + 5 children) on db1',
    stallS: null,
    restore: 'started Patroni on db1 again',
    timings: { ttl: 10, loop_wait: 1, retry_timeout: 4, check_inter_ms: 1000, check_fall: 2, check_rise: 1, rto_budget_s: 30, profile: 'balanced', worstCaseS: 15 },
    timeline: { faultAt: '2026-01-01T00:00:00.000Z', detectedS: 8.1, newLeaderSeenS: 9.2, promotedS: 9, lastAckBeforeS: -0.01, firstWriteS: outage, syncMovedS: null, restoredS: 9.3, rejoinedS: 15.5, healthyS: 16 },
    outage: { seconds: outage, lastAckBefore: 0, firstAckAfter: outage === null ? null : outage * 1000, unrecoveredS: null, worstWriterSeconds: outage, baselineGapSeconds: 0.03 },
    writes: { acknowledged: 1000, acknowledgedAfterFault: 500, lost, lostSample: [], inDoubt: 2, refused: 30, errors: {} },
    reads: { ok: 900, failed: 3, maxGapMs: 1200 },
    series: { binMs: 100, fromS: -0.2, writers: [[3, 2, 0, 4], [2, 3, 0, 3]] },
    nodes: [
      { node: 'db2', role: 'leader', rows: 1001, lost, lostSample: [], duplicates: 0, unexpected: 0, inDoubtCommitted: 1 },
      { node: 'db1', role: 'replica', rows: 1001, lost, lostSample: [], duplicates: 0, unexpected: 0, inDoubtCommitted: 1 },
    ],
    unchecked: [],
    after: 'leader db2, replicas: db1 (streaming/sync), db3 (streaming/async)',
    repair: null,
    leaderRetakenFrom: null,
    notes: [],
    criteria: [{ id: 'rpo', ok: lost === 0, detail: lost ? `acknowledged writes missing (db2: ${lost})` : 'ok' }],
    passed: lost === 0,
  };
}

describe('drill report', () => {
  it('tells the timeline of one drill, relative to the fault', () => {
    const text = formatDrill(drill(9.5), 30);
    expect(text).toContain('kill drill on db1: PASS');
    expect(text).toMatch(/detection\s+\+8\.10 s/);
    expect(text).toMatch(/promotion\s+\+9\.00 s\s+db2 promoted/);
    expect(text).toMatch(/rejoin\s+\+15\.50 s/);
    expect(text).toContain('write outage 9.50 s');
  });

  it('shouts about lost writes, each counted once although two nodes miss them, and lists failed criteria', () => {
    const text = formatDrill(drill(9.5, 3), 30);
    expect(text).toContain('db2 (leader) 1001 rows, 3 missing');
    expect(text).toContain('db1 (replica) 1001 rows, 3 missing');
    expect(text).toContain('— 3 ACKNOWLEDGED WRITES LOST');
    expect(text).toContain('FAIL rpo: acknowledged writes missing (db2: 3)');
  });

  it('summarizes repeated drills per figure, with the method', () => {
    const ds = [drill(9.5), drill(11), drill(8), drill(10), drill(12.5)];
    const sum = summarizeDrills(ds);
    expect(sum.outageS).toEqual({ n: 5, min: 8, median: 10, p95: 12.5, max: 12.5 });
    expect(sum.lostAcknowledged).toEqual({ n: 5, min: 0, median: 0, p95: 0, max: 0 });
    const text = formatSummary(ds);
    expect(text).toContain('5 kill drills: 5 passed, 0 failed');
    expect(text).toContain('method: write outage (RTO) = longest span');
  });
});
