import { describe, expect, it } from 'vitest';
import { chooseBackupSet, describeTarget, stateAfter } from '../../src/components/pitr-inplace.js';
import type { BackupInfo, StanzaInfo } from '../../src/components/pgbackrest.js';

const backup = (label: string, stop: number, lsnStop?: string, error = false): BackupInfo => ({
  label,
  type: 'full',
  timestamp: { start: stop - 10, stop },
  ...(lsnStop ? { lsn: { start: '0/1000000', stop: lsnStop } } : {}),
  ...(error ? { error } : {}),
});
const info = (...b: BackupInfo[]): StanzaInfo => ({ name: 'c', status: { code: 0, message: 'ok' }, backup: b });

describe('chooseBackupSet', () => {
  const i = info(backup('A', 1000, '0/3000000'), backup('B', 2000, '0/5000000'), backup('C', 3000, '0/9000000', true), backup('D', 4000, '0/B000000'));

  it('takes the newest backup that ended before a target time, skipping failed ones', () => {
    expect(chooseBackupSet(i, { type: 'time', time: new Date(3500_000), text: '' })).toBe('B');
    expect(chooseBackupSet(i, { type: 'time', time: new Date(2000_000), text: '' })).toBe('B');
    expect(chooseBackupSet(i, { type: 'time', time: new Date(1999_000), text: '' })).toBe('A');
    expect(chooseBackupSet(i, { type: 'time', time: new Date(999_000), text: '' })).toBeUndefined();
  });

  it('takes the newest backup that stopped at or before a target LSN', () => {
    expect(chooseBackupSet(i, { type: 'lsn', lsn: '0/5000000' })).toBe('B');
    expect(chooseBackupSet(i, { type: 'lsn', lsn: '0/A000000' })).toBe('B');
    expect(chooseBackupSet(i, { type: 'lsn', lsn: '1/0' })).toBe('D');
  });

  it('leaves a restore point to pgBackRest (the repository does not know where it is)', () => {
    expect(chooseBackupSet(i, { type: 'name', name: 'x' })).toBeUndefined();
  });
});

describe('stateAfter', () => {
  const cmd = 'dpgc restore --target-time T --in-place --yes';
  const r = (phase: Parameters<typeof stateAfter>[0]['phase']) => stateAfter({ phase, leader: 'db1', target: 'T' }, ['db2', 'db3'], cmd);

  it('says before any data changed that nothing did', () => {
    expect(r('stopping')).toContain('no data was changed yet');
  });
  it('says the cluster is down while the leader is restored, and to re-run', () => {
    expect(r('restoring-leader')).toMatch(/The cluster is DOWN.*Re-run `dpgc restore --target-time T --in-place --yes`/);
  });
  it('says the leader takes writes once it leads, and that a re-run keeps it', () => {
    expect(r('leader-up')).toMatch(/db1 is restored to T and leads.*db2, db3 are stopped.*keeps db1 as it is/);
    expect(r('replicas')).toContain('being rebuilt from the repository');
  });
});

describe('describeTarget', () => {
  it('names each kind of target', () => {
    expect(describeTarget({ type: 'time', time: new Date('2026-12-02T08:15:00Z'), text: 'x' })).toBe('2026-12-02T08:15:00.000Z');
    expect(describeTarget({ type: 'lsn', lsn: '0/5A000060' })).toBe('LSN 0/5A000060');
    expect(describeTarget({ type: 'name', name: 'before-42' })).toBe('restore point before-42');
  });
});
