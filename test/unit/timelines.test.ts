import { describe, expect, it } from 'vitest';
import { assessTimelines, lsnFromNumber, parseDcsHistory, parseHistoryFile, type MemberHistory } from '../../src/checks/timelines.js';

const h1 = '1\t0/65C1748\tno recovery target specified\n';
const member = (name: string, timeline: number, files: Record<number, string>): MemberHistory => ({
  name,
  timeline,
  files: new Map(Object.entries(files).map(([k, v]) => [Number(k), parseHistoryFile(v)])),
});

// What a lab showed after a frozen leader (db1) had its key written back while db3 led timeline 3:
// db1 woke and promoted itself to its own timeline 3; db2 and db3 kept db3's, and Patroni called them streaming.
const dcs = parseDcsHistory([
  [1, 106698568, 'no recovery target specified', '2026-12-02T04:02:23.926718+00:00', 'db1'],
  [2, 171585408, 'no recovery target specified', '2026-12-02T04:03:50.486721+00:00', 'db3'],
]);

describe('timeline history', () => {
  it('parses history files and Patroni’s DCS history into the same LSN form', () => {
    expect(parseHistoryFile(`${h1}\n2\t0/A3A2F80\tno recovery target specified\n`)).toEqual([
      { tli: 1, lsn: '0/65C1748' },
      { tli: 2, lsn: '0/A3A2F80' },
    ]);
    expect(lsnFromNumber(171585408)).toBe('0/A3A2F80');
    expect(lsnFromNumber(2 ** 32 + 255)).toBe('1/FF');
    expect(dcs[1]).toEqual({ tli: 2, lsn: '0/A3A2F80', at: '2026-12-02T04:03:50.486721+00:00', promoted: 'db3' });
    expect(parseDcsHistory('nonsense')).toEqual([]);
  });

  it('passes a cluster whose members and etcd agree with the leader', () => {
    const files = { 2: h1, 3: `${h1}2\t0/A3A2F80\treason\n` };
    expect(assessTimelines(member('db3', 3, files), [member('db1', 3, files), member('db2', 3, files)], dcs)).toEqual([]);
    expect(assessTimelines(member('db1', 1, {}), [member('db2', 1, {})], [])).toEqual([]);
  });

  it('names the abandoned timeline, where it branched, and the members that hold its writes', () => {
    const theirs = { 2: h1, 3: `${h1}2\t0/A3A2F80\tno recovery target specified\n` };
    const leader = member('db1', 3, { 2: h1, 3: `${h1}2\t0/A3A2FB8\tno recovery target specified\n` });
    expect(assessTimelines(leader, [member('db2', 3, theirs), member('db3', 3, theirs)], dcs)).toEqual([
      "timeline 3 (promoted on db3 at 2026-12-02T04:03:50.486721+00:00) was abandoned: it branched from timeline 2 at LSN 0/A3A2F80, the leader db1's at 0/A3A2FB8; writes acknowledged on it after LSN 0/A3A2F80 may be lost",
      "db2 has diverged from the leader db1: its timeline 3 branched from timeline 2 at LSN 0/A3A2F80, the leader's at 0/A3A2FB8",
      "db3 has diverged from the leader db1: its timeline 3 branched from timeline 2 at LSN 0/A3A2F80, the leader's at 0/A3A2FB8",
    ]);
  });

  it('fails when etcd or a member knows a timeline newer than the leader’s (a leader that took its key back without promoting)', () => {
    const leader = member('db1', 2, { 2: h1 });
    const p = assessTimelines(leader, [member('db3', 3, { 2: h1, 3: `${h1}2\t0/A3A2F80\tx\n` })], dcs);
    expect(p[0]).toBe(
      'timeline 3 (promoted on db3 at 2026-12-02T04:03:50.486721+00:00) was abandoned: it branched from timeline 2 at LSN 0/A3A2F80, and the leader db1 is on timeline 2; writes acknowledged on it after LSN 0/A3A2F80 may be lost',
    );
    expect(p[1]).toBe('db3 has diverged from the leader db1: it is on timeline 3, newer than the leader\'s 2; it holds timeline 3, which the leader never had');
  });

  it('still names the abandoned timeline once Patroni 4 has rewritten etcd’s record from the leader’s own history', () => {
    // A second lab run: the woken leader db1 stayed on timeline 2 and rewrote etcd's history to [timeline 1];
    // only db2 and db3 still hold db3's timeline 3.
    const theirs = { 2: h1, 3: `${h1}2\t0/3BC5F80\tno recovery target specified\n` };
    const p = assessTimelines(member('db1', 2, { 2: h1 }), [member('db2', 2, theirs), member('db3', 3, theirs)], parseDcsHistory([[1, 106698568, 'no recovery target specified', '2026-12-02T05:25:45+00:00', 'db1']]));
    expect(p).toEqual([
      'timeline 3 was abandoned: it branched from timeline 2 at LSN 0/3BC5F80, and the leader db1 is on timeline 2; writes acknowledged on it after LSN 0/3BC5F80 may be lost',
      'db2 has diverged from the leader db1: it holds timeline 3, which the leader never had',
      "db3 has diverged from the leader db1: it is on timeline 3, newer than the leader's 2; it holds timeline 3, which the leader never had",
    ]);
  });
});
