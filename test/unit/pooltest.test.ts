import { describe, expect, it } from 'vitest';
import { emptyView, foldSample, parsePools } from '../../src/pooltest/pgbouncer-view.js';
import { openFileLimit } from '../../src/pooltest/run.js';
import { LatencyHistogram, classifyError, verdict } from '../../src/pooltest/stats.js';
import { embeddings, MIX, pickOp } from '../../src/pooltest/workload.js';

describe('latency histogram', () => {
  it('percentiles within 2 % of the exact ones', () => {
    const h = new LatencyHistogram();
    const xs = Array.from({ length: 10_000 }, (_, i) => 0.5 + (i % 1000) * 0.1);
    for (const x of xs) h.record(x);
    const exact = (q: number) => [...xs].sort((a, b) => a - b)[Math.ceil(q * xs.length) - 1]!;
    for (const q of [0.5, 0.95, 0.99]) expect(Math.abs(h.percentile(q) - exact(q)) / exact(q)).toBeLessThan(0.021);
    expect(h.percentile(1)).toBe(h.maxMs);
  });
  it('merges and is empty-safe', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    expect(a.percentile(0.99)).toBe(0);
    a.record(1);
    b.record(100);
    a.merge(b);
    expect(a.count).toBe(2);
    expect(a.percentile(0.99)).toBeCloseTo(100, 0);
  });
});

describe('error classification', () => {
  it('tells pool exhaustion, timeouts and the rest apart', () => {
    expect(classifyError(new Error('no more connections allowed (max_client_conn)'), 'connect')).toBe('pool-exhausted');
    expect(classifyError(new Error('query_wait_timeout'), 'op')).toBe('pool-exhausted');
    expect(classifyError(new Error('ctl: cannot connect to x: timeout expired'), 'connect')).toBe('connect-timeout');
    expect(classifyError(new Error('Connection terminated due to connection timeout'), 'connect')).toBe('connect-timeout');
    expect(classifyError(new Error('no answer within 10000 ms'), 'op')).toBe('timeout');
    expect(classifyError(new Error('relation "x" does not exist'), 'op')).toBe('error');
  });
});

describe('verdict', () => {
  const ok = { agents: 40, agentsSustained: 40, ops: 100, errors: 0, connectTimeouts: 0, timeouts: 0, poolExhausted: 0 };
  it('passes a clean run of 40 agents', () => {
    expect(verdict(ok as never)).toEqual({ passed: true, reasons: [] });
  });
  it('names each failure', () => {
    const r = verdict({ ...ok, agents: 10, agentsSustained: 8, errors: 4, connectTimeouts: 1, timeouts: 1, poolExhausted: 1 } as never);
    expect(r.passed).toBe(false);
    expect(r.reasons).toEqual([
      '10 agents is fewer than the 40 the criterion asks for',
      '2 of 10 agents lost their connection',
      '1 connection timeouts',
      '1 operations got no answer in time',
      '1 clients refused by PgBouncer (pool or client slots exhausted)',
      '1 other errors',
    ]);
  });
});

describe('workload', () => {
  it('mix weights sum to 1 and pickOp follows them', () => {
    expect(MIX.reduce((a, m) => a + m.weight, 0)).toBeCloseTo(1);
    expect(pickOp(0)).toBe('search');
    expect(pickOp(0.45)).toBe('upsert');
    expect(pickOp(0.99)).toBe('read');
  });
  it('embeddings are 384-dimension unit vectors, deterministic', () => {
    const v = embeddings(3);
    expect(v[0]).toHaveLength(384);
    expect(Math.hypot(...v[1]!)).toBeCloseTo(1, 9);
    expect(embeddings(3)).toEqual(v);
  });
});

describe('PgBouncer view', () => {
  it('folds SHOW POOLS samples into peaks, for the test databases only', () => {
    const rows = parsePools([
      { database: 'app', user: 'u', cl_active: '30', cl_waiting: '10', sv_active: '25', sv_idle: '0', maxwait: '1', maxwait_us: '500000' },
      { database: 'pgbouncer', user: 'pgbouncer', cl_active: '1', cl_waiting: '99', sv_active: '0', sv_idle: '0', maxwait: '9', maxwait_us: '0' },
    ]);
    const v = foldSample(emptyView(), rows, ['app']);
    expect(v.now).toEqual({ clWaiting: 10, maxwaitS: 1.5, svActive: 25 });
    const v2 = foldSample(v, parsePools([{ database: 'app', user: 'u', cl_active: '5', cl_waiting: '0', sv_active: '5', sv_idle: '20', maxwait: '0', maxwait_us: '0' }]), ['app']);
    expect(v2).toMatchObject({ clWaitingPeak: 10, maxwaitPeakS: 1.5, svActivePeak: 25, clActivePeak: 30, samples: 2 });
  });
});

it('reads the open-file limit', () => {
  expect(openFileLimit('Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n')).toBe(1024);
});
