import { describe, expect, it } from 'vitest';
import type { ClusterView } from '../../src/components/cluster.js';
import { assessTopology, leftPausePatch, PAUSED_BY_DPGC, pauseOf, pauseRecord } from '../../src/components/patroni-cluster.js';
import { compareFingerprints, settleComparison } from '../../src/components/replication.js';
import { hasLeaderKeyFix } from '../../src/components/patroni-package.js';
import { percentile } from '../../src/components/replication.js';
import { formatStatus, viewProblems } from '../../src/output/status.js';
import { labInv } from '../helpers/lab-inventory.js';

const member = (name: string, role: string, state = 'running') => ({ name, role, state, host: '', port: 5432 });
const row = (application_name: string, state = 'streaming', sync_state = 'async') => ({ application_name, state, sync_state, lag_bytes: '0', lag_s: '0' });

describe('assessTopology', () => {
  const inv = labInv();
  it('accepts one leader, two streaming replicas, one sync', () => {
    const t = assessTopology(inv, [member('db1', 'leader'), member('db2', 'sync_standby'), member('db3', 'replica')], [row('db2', 'streaming', 'sync'), row('db3')]);
    expect(t).toEqual({ leader: 'db1', streaming: ['db2', 'db3'], sync: ['db2'], problems: [] });
  });
  it('names every way the shape is wrong', () => {
    const t = assessTopology(inv, [member('db1', 'leader'), member('db2', 'replica')], [row('db2', 'catchup')]);
    expect(t.problems).toEqual([
      'db3 is not a member (Patroni not running there, or not registered in etcd)',
      'db2 is catchup, not streaming',
      'db3 is not replicating from the leader db1',
      '0 synchronous standby(s), want 1',
    ]);
    expect(assessTopology(inv, [member('db1', 'replica'), member('db2', 'replica'), member('db3', 'replica')], []).problems[0]).toBe('no leader');
  });
  it('is not whole while Patroni has not yet named the standby PostgreSQL already treats as sync', () => {
    const t = assessTopology(inv, [member('db1', 'leader'), member('db2', 'replica'), member('db3', 'replica')], [row('db2', 'streaming', 'sync'), row('db3')]);
    expect(t.problems).toEqual(['PostgreSQL has a synchronous standby (db2) that Patroni does not name yet']);
  });
});

describe('maintenance mode', () => {
  const inv = labInv();
  const whole = [[member('db1', 'leader'), member('db2', 'sync_standby'), member('db3', 'replica')], [row('db2', 'streaming', 'sync'), row('db3')]] as const;
  it('a paused cluster is not whole however healthy it looks: it would not fail over', () => {
    const [m, r] = whole;
    expect(assessTopology(inv, [...m], [...r], { pause: true }).problems).toEqual([
      'the cluster is paused (maintenance mode): Patroni will not fail over until it is resumed (`patronictl -c <patroni.yml> resume` once the maintenance is over)',
    ]);
    const left = assessTopology(inv, [...m], [...r], { pause: true, [PAUSED_BY_DPGC]: "sprint 5's switch of etcd to TLS, by dpgc ctl:1 at 2026-12-08T03:00:00.000Z" });
    expect(left.problems[0]).toContain("An interrupted dpgc run left it so (sprint 5's switch of etcd to TLS, by dpgc ctl:1");
    expect(left.problems[0]).toContain('`dpgc sprint 3` resumes it');
    expect(assessTopology(inv, [...m], [...r], { pause: false }).problems).toEqual([]);
  });
  it('Patroni stores the flag as given: true, "true" and "on" all pause', () => {
    for (const p of [true, 'true', 'on', 'ON']) expect(pauseOf({ pause: p }).paused).toBe(true);
    for (const p of [false, 'false', undefined, null]) expect(pauseOf({ pause: p }).paused).toBe(false);
  });
  it('resumes only a pause another dpgc run recorded; never the operator’s, never this run’s own', () => {
    const other = { pause: true, [PAUSED_BY_DPGC]: 'x, by dpgc elsewhere:4242 at 2026-12-08T03:00:00.000Z' };
    expect(leftPausePatch(other)).toEqual({ pause: null, [PAUSED_BY_DPGC]: null });
    expect(leftPausePatch({ pause: true })).toBeUndefined();
    expect(leftPausePatch({ pause: true, [PAUSED_BY_DPGC]: pauseRecord('x') })).toBeUndefined();
    expect(pauseOf({ pause: true, [PAUSED_BY_DPGC]: pauseRecord('x') }).ours).toBe(true);
    // Resumed by hand after the run died: only the record goes.
    expect(leftPausePatch({ [PAUSED_BY_DPGC]: other[PAUSED_BY_DPGC] })).toEqual({ [PAUSED_BY_DPGC]: null });
  });
  it('status names a paused cluster and what resumes it', () => {
    const v = { at: '', scope: 'main', leader: 'db1', members: [], paused: true, etcd: { endpoints: [] }, haproxy: [], pgbouncer: [], services: [], certificates: { count: 0, expiring: [] } } as ClusterView;
    expect(viewProblems(v).map((p) => p.what)).toEqual(['the cluster is paused (maintenance mode): Patroni will not fail over']);
  });
});

describe('compareFingerprints and percentile', () => {
  it('reports differing, missing and extra entries', () => {
    expect(compareFingerprints('db2/x', { 'table a': '1 rows, f', 'index i': 'valid' }, { 'table a': '2 rows, g', 'table b': '0 rows, d' })).toEqual([
      'db2/x: table a is 2 rows, g, leader has 1 rows, f',
      'db2/x: index i is missing, leader has valid',
      'db2/x: table b exists only here',
    ]);
  });
  it('takes the nearest-rank percentile', () => {
    expect(percentile([5, 1, 3, 2, 4], 99)).toBe(5);
    expect(percentile([5, 1, 3, 2, 4], 50)).toBe(3);
    expect(Number.isNaN(percentile([], 99))).toBe(true);
  });
});

describe('viewProblems / formatStatus', () => {
  const healthy: ClusterView = {
    at: '2026-01-01T00:00:00Z',
    scope: 'dpgc-lab',
    leader: 'db1',
    members: [
      { name: 'db1', address: '127.0.30.11', role: 'leader', state: 'running', timeline: 2 },
      { name: 'db2', address: '127.0.30.12', role: 'sync_standby', state: 'running', timeline: 2, lagBytes: 0, lagSeconds: 0, replication: 'streaming', syncState: 'sync' },
    ],
    etcd: { endpoints: [{ endpoint: 'http://127.0.30.11:2379', health: true }], leader: 'db1', members: ['db1'] },
    haproxy: [{ host: 'ctl', servers: [{ backend: 'primary', server: 'db1', status: 'UP', checkStatus: 'L7OK', currentSessions: 1, lastChangeS: 5 }] }],
    pgbouncer: [{ host: 'ctl', pools: [] }],
    services: [],
    certificates: { count: 5, nearest: { where: 'db1', file: '/etc/dpgc/tls/postgres.crt', notAfter: '2027-12-01T00:00:00.000Z' }, expiring: [] },
  };
  it('finds nothing wrong with a healthy view', () => {
    expect(viewProblems(healthy)).toEqual([]);
    expect(formatStatus(healthy)).toContain('No problems found.');
    expect(formatStatus(healthy)).toContain('Certificates: 5, the first to end: /etc/dpgc/tls/postgres.crt on db1, 2027-12-01');
  });
  it('names a certificate ending within 30 days as a problem, with the sprint that re-issues it', () => {
    const v: ClusterView = { ...healthy, certificates: { ...healthy.certificates, expiring: ['db1: /etc/dpgc/tls/postgres.crt (CN db1) expires 2026-01-20, in 19 days'] } };
    expect(viewProblems(v)).toEqual([{ what: 'certificates ending within 30 days: db1: /etc/dpgc/tls/postgres.crt (CN db1) expires 2026-01-20, in 19 days', remedy: expect.stringContaining('dpgc sprint 5') }]);
  });
  it('names a dead daemon with its host and remedy, a stray route and a lagging member', () => {
    const v: ClusterView = {
      ...healthy,
      members: [healthy.members[0]!, { ...healthy.members[1]!, replication: 'not connected' }],
      haproxy: [{ host: 'ctl', servers: [{ ...healthy.haproxy[0]!.servers[0]!, server: 'db2' }] }],
      services: [{ host: 'db2', service: 'patroni', problem: 'patroni is not running on db2 (no pid file)', remedy: 'Read /x/patroni.log on db2, then run `dpgc sprint 3`.' }],
    };
    expect(viewProblems(v).map((p) => p.what)).toEqual([
      'patroni is not running on db2 (no pid file)',
      'db2 is running, not connected',
      'HAProxy on ctl routes writes to db2, the leader is db1',
    ]);
  });
});

describe('hasLeaderKeyFix (patroni/patroni#2689, fixed in 3.0.3)', () => {
  it.each([
    ['3.0.2', false],
    ['2.1.7', false],
    ['3.0.3', true],
    ['3.3.2', true],
    ['4.0.7', true],
    ['3.0.2+deb12u1', false],
    ['3.1', true],
  ])('%s → %s', (v, want) => {
    expect(hasLeaderKeyFix(v)).toBe(want);
  });
});

describe('settleComparison (s3.data.identical on a cluster being written)', () => {
  const fp = (rows: number, extra: Record<string, string> = {}) => ({ 'table a': `${rows} rows`, 'table b': '5 rows', 'index i': 'valid', ...extra });
  it('a table the leader did not change while the replicas were read must match exactly', () => {
    expect(settleComparison('d', fp(1), fp(1), { db2: fp(1), db3: { ...fp(1), 'table b': '4 rows' } })).toEqual({
      diffs: ['db3/d: table b is 4 rows, leader has 5 rows'],
      busy: [],
    });
  });
  it('a table written in between is busy, not a difference, and only it is compared again', () => {
    const r = settleComparison('d', fp(1), fp(3), { db2: fp(2), db3: fp(3) });
    expect(r).toEqual({ diffs: [], busy: ['table a'] });
    expect(settleComparison('d', fp(4), fp(4), { db2: { ...fp(4), 'table b': 'x' }, db3: fp(9) }, r.busy)).toEqual({ diffs: ['db3/d: table a is 9 rows, leader has 4 rows'], busy: [] });
  });
  it('a table only a replica has is a difference', () => {
    expect(settleComparison('d', fp(1), fp(1), { db2: fp(1, { 'table z': '1 rows' }) }).diffs).toEqual(['db2/d: table z exists only here']);
  });  it('the PITR drill: the leader just before and just after T against the restored copy', () => {
    // A table written at T is busy even when the copy holds one of its two states: which one T saw is unknown.
    expect(settleComparison('d', fp(1), fp(2), { restored: { ...fp(1), 'table b': '6 rows' } }, undefined, 'at T it was')).toEqual({
      diffs: ['restored/d: table b is 6 rows, at T it was 5 rows'],
      busy: ['table a'],
    });
  });
});
