import { describe, expect, it } from 'vitest';
import { parseDf, poolCapacity, prefixOf, weakAuth } from '../../src/checks/readiness.js';
import type { CheckOutcome } from '../../src/checks/types.js';
import { areaOf, assessReadiness } from '../../src/checks/waivers.js';

const outcome = (id: string, verdict: CheckOutcome['verdict'], required = true): CheckOutcome => ({ id, title: id, sprint: 3, required, kind: 'state', verdict, startedMs: 0, durationMs: 1, detail: `${id} detail`, remedy: 'do it' });

describe('assessReadiness (waivers)', () => {
  const waiver = (id: string, expires: string) => ({ id, reason: 'the lab has no watchdog device', expires });

  it('is ready when every required item passes; a warning does not block, an optional failure does not count', () => {
    const r = assessReadiness([outcome('s3.patroni.topology', 'pass'), outcome('s3.patroni.watchdog', 'warn'), outcome('s1.grafana.api', 'fail', false)], [], '2026-12-02');
    expect(r).toMatchObject({ ready: true, required: 2, passed: 2, waived: 0 });
  });

  it('a failing item with a waiver valid through today is WAIVED and the cluster is ready', () => {
    const r = assessReadiness([outcome('r.drills.kill', 'fail'), outcome('s3.patroni.topology', 'pass')], [waiver('r.drills.kill', '2026-12-02')], '2026-12-02');
    expect(r.items[0]).toMatchObject({ verdict: 'waived', waiver: { expires: '2026-12-02' } });
    expect(r).toMatchObject({ ready: true, passed: 1, waived: 1 });
  });

  it('an expired waiver fails the item and says when it expired and why it was given', () => {
    const r = assessReadiness([outcome('r.drills.kill', 'fail')], [waiver('r.drills.kill', '2026-12-01')], '2026-12-02');
    expect(r.ready).toBe(false);
    expect(r.items[0]!.verdict).toBe('fail');
    expect(r.items[0]!.detail).toMatch(/^the waiver expired on 2026-12-01 \("the lab has no watchdog device"\)\nr\.drills\.kill detail/);
    expect(r.items[0]!.remedy).toContain('renew the waiver');
  });

  it('reports waivers that name nothing measured, and waivers of items that pass now', () => {
    const r = assessReadiness([outcome('s3.patroni.topology', 'pass')], [waiver('s3.patroni.topolgy', '2027-01-01'), waiver('s3.patroni.topology', '2027-01-01')], '2026-12-02');
    expect(r.unknownWaivers.map((w) => w.id)).toEqual(['s3.patroni.topolgy']);
    expect(r.unneededWaivers.map((w) => w.id)).toEqual(['s3.patroni.topology']);
    expect(r.items[0]!.verdict).toBe('pass');
  });

  it('groups by the system in the id', () => {
    expect(areaOf('s3.patroni.topology')).toBe('patroni');
    expect(areaOf('r.drills.kill')).toBe('drills');
  });
});

describe('production items (pure parts)', () => {
  it('weakAuth names every trust, md5, password and ident rule with its line, and lets scram and peer be', () => {
    const rule = (line_number: number, type: string, auth_method: string, address: string | null = '10.0.0.0') => ({ type, database: ['all'], user_name: ['all'], address, netmask: address ? '255.255.255.0' : null, auth_method, line_number });
    expect(weakAuth([rule(1, 'local', 'peer', null), rule(2, 'host', 'scram-sha-256'), rule(3, 'host', 'trust'), rule(4, 'host', 'md5'), rule(5, 'hostssl', 'password'), rule(6, 'host', 'ident')])).toEqual([
      'pg_hba.conf line 3: host all all 10.0.0.0/24 trust',
      'pg_hba.conf line 4: host all all 10.0.0.0/24 md5',
      'pg_hba.conf line 5: hostssl all all 10.0.0.0/24 password',
      'pg_hba.conf line 6: host all all 10.0.0.0/24 ident',
    ]);
  });

  it('prefixOf turns a netmask into its prefix length', () => {
    expect([prefixOf('255.255.255.255'), prefixOf('255.255.255.0'), prefixOf('0.0.0.0'), prefixOf('ffff:ffff:ffff:ffff::'), prefixOf('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')]).toEqual([32, 24, 0, 64, 128]);
  });

  it('poolCapacity: pools plus reserves against max_connections less superuser and dpgc headroom', () => {
    const pools = [
      { host: 'ctl', alias: 'distributed_postgres_cluster', size: 30 },
      { host: 'ctl', alias: 'claude_flow_shared', size: 30 },
    ];
    expect(poolCapacity({ maxConnections: 200, reserved: 3, headroom: 10, pools })).toEqual({ need: 60, room: 187, ok: true });
    expect(poolCapacity({ maxConnections: 70, reserved: 3, headroom: 10, pools })).toEqual({ need: 60, room: 57, ok: false });
  });

  it('parseDf reads df -P, mount points with spaces included', () => {
    const text = 'Filesystem     1024-blocks     Used Available Capacity Mounted on\n/dev/vda         264212084 26041344  80349568      25% /\n/dev/vdb 100 90 10 90% /mnt/wal disk\n';
    expect(parseDf(text)).toEqual([
      { size: 264212084, avail: 80349568, mount: '/' },
      { size: 100, avail: 10, mount: '/mnt/wal disk' },
    ]);
  });
});
