import { describe, expect, it } from 'vitest';
import { assessHealth, describeSnapshot, type Snapshot } from '../../src/drills/health.js';

const healthy: Snapshot = {
  at: 0,
  from: 'db1',
  leader: 'db1',
  members: [
    { name: 'db1', role: 'leader', state: 'running' },
    { name: 'db2', role: 'sync_standby', state: 'running', lag: 0 },
    { name: 'db3', role: 'replica', state: 'running', lag: 0 },
  ],
  replication: [
    { application_name: 'db2', state: 'streaming', sync_state: 'sync' },
    { application_name: 'db3', state: 'streaming', sync_state: 'async' },
  ],
};
const all = ['db1', 'db2', 'db3'];

describe('assessHealth', () => {
  it('accepts one leader, every replica streaming, a sync standby', () => {
    expect(assessHealth(healthy, all)).toEqual({ healthy: true, problems: [], syncStandbys: ['db2'] });
    expect(describeSnapshot(healthy)).toBe('leader db1, replicas: db2 (streaming/sync), db3 (streaming/async)');
  });

  it('never calls a member ahead of the leader’s timeline healthy, whatever Patroni says of it', () => {
    // Seen after a freeze drill on Patroni 3.0.2: "highest timeline 13 of the primary is behind recovery timeline 14", state running.
    const members = [
      { name: 'db1', role: 'leader', state: 'running', timeline: 13 },
      { name: 'db2', role: 'sync_standby', state: 'running', lag: 0, timeline: 13 },
      { name: 'db3', role: 'replica', state: 'running', timeline: 14 },
    ];
    const s = { ...healthy, members, replication: healthy.replication!.slice(0, 1) };
    expect(assessHealth(s, all).problems).toEqual(["db3 is on timeline 14, ahead of the leader db1's 13: it has diverged and needs a re-clone"]);
  });

  it('says what is wrong', () => {
    const noSync = { ...healthy, replication: healthy.replication!.map((r) => ({ ...r, sync_state: 'async' })) };
    expect(assessHealth(noSync, all).problems).toEqual(['no synchronous standby: acknowledged writes are not yet protected by a second copy']);

    const missing = { ...healthy, members: healthy.members.slice(0, 2), replication: healthy.replication!.slice(0, 1) };
    expect(assessHealth(missing, all).problems).toEqual(['db3 is not a member of the cluster (Patroni not running there?)']);

    const catchingUp = { ...healthy, replication: [healthy.replication![0]!, { application_name: 'db3', state: 'catchup', sync_state: 'async' }] };
    expect(assessHealth(catchingUp, all).problems).toEqual(['db3 replication is catchup, not streaming']);

    const notReplicating = { ...healthy, replication: [healthy.replication![0]!] };
    expect(assessHealth(notReplicating, all).problems).toEqual(['db3 is not replicating from db1 (member state: running)']);
  });

  it('refuses a cluster without a leader or with two', () => {
    const none = { ...healthy, leader: undefined, members: healthy.members.map((m) => ({ ...m, role: 'replica' })), replication: undefined };
    expect(assessHealth(none, all).problems[0]).toBe('the cluster has no leader');
    const two = { ...healthy, members: healthy.members.map((m) => (m.name === 'db3' ? { ...m, role: 'leader' } : m)) };
    expect(assessHealth(two, all).problems).toContain('more than one leader: db1, db3');
    expect(assessHealth({ ...healthy, from: undefined, error: 'connection refused' }, all)).toMatchObject({ healthy: false, problems: ['no Patroni member answers: connection refused'] });
  });
});
