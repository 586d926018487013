import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { allowedAgeSeconds, parseSchedule, renderScheduledBackup, renderTimerUnits } from '../../src/components/backup-schedule.js';
import { backupRows, chooseType } from '../../src/components/backups.js';
import { certDecision, extensionsFor, requestProblem, type CertFacts, type CertRequest } from '../../src/components/ca.js';
import { desiredDynamicConfig, renderPatroniConfig } from '../../src/components/patroni.js';
import { certRequest, parseInfo, renderPgbackrestConf, type StanzaInfo } from '../../src/components/pgbackrest.js';
import { lsnBytes, parseTargetTime, pgTimestamp, recoveryWindow, replayedFromLog, scratchHba, scratchService, targetArgs } from '../../src/components/pitr.js';
import { formatRows } from '../../src/cli/commands/backup.js';
import { hostPaths } from '../../src/config/paths.js';
import { parseInventory } from '../../src/config/load.js';
import { UsageError } from '../../src/errors.js';
import { labInventoryYaml } from '../../src/lab/inventory.js';
import { labInv } from '../helpers/lab-inventory.js';

const now = new Date('2026-12-02T08:00:00Z');
const want: CertRequest = { name: 'pgbackrest', cn: 'db1', dns: ['db1', '10.0.0.11'], ips: ['10.0.0.11'], usage: ['server', 'client'], identity: true };
const good: CertFacts = { cn: 'db1', dns: ['10.0.0.11', 'db1'], ips: ['10.0.0.11'], usage: ['client', 'server'], notAfter: new Date('2027-06-01T00:00:00Z'), notBefore: new Date('2026-11-01T00:00:00Z'), signedByCa: true, keyMatches: true };

describe('certDecision: what the CA issues', () => {
  it('keeps a valid, matching certificate of this CA (order of names does not matter)', () => {
    expect(certDecision(good, want, now)).toEqual({ issue: false });
  });
  it.each<[string, Partial<CertFacts> | undefined, RegExp]>([
    ['none yet', undefined, /no certificate yet/],
    ['another CA', { signedByCa: false }, /not signed by this cluster's CA/],
    ['a key that does not match', { keyMatches: false }, /does not match the key/],
    ['another CN', { cn: 'db2' }, /CN is db2, want db1/],
    ['a changed address', { ips: ['10.0.0.99'] }, /names changed/],
    ['a missing DNS name', { dns: ['db1'] }, /names changed/],
    ['server only', { usage: ['server'] }, /usage changed/],
    ['expiring in 29 days', { notAfter: new Date(now.getTime() + 29 * 86_400_000) }, /expires in 29 days/],
    ['expired', { notAfter: new Date(now.getTime() - 1000) }, /expired/],
  ])('re-issues with %s', (_what, change, reason) => {
    const d = certDecision(change === undefined ? undefined : { ...good, ...change }, want, now);
    expect(d.issue).toBe(true);
    expect(d.issue && d.reason).toMatch(reason);
  });
  it('rotation (--certs): re-issues one issued before the run, keeps one this run issued in the same second', () => {
    const start = new Date('2026-12-02T08:00:00.700Z');
    expect(certDecision(good, want, now, start)).toEqual({ issue: true, reason: 'rotation: issued 2026-11-01T00:00:00.000Z, before this run' });
    expect(certDecision({ ...good, notBefore: new Date('2026-12-02T08:00:00Z') }, want, now, start)).toEqual({ issue: false });
    expect(certDecision({ ...good, notBefore: new Date('2026-12-02T07:59:59Z') }, want, now, start).issue).toBe(true);
  });
  it('keeps one expiring in 31 days', () => {
    expect(certDecision({ ...good, notAfter: new Date(now.getTime() + 31 * 86_400_000) }, want, now).issue).toBe(false);
  });
  it('writes SANs, key usage and both EKUs; refuses names openssl would read as syntax', () => {
    const ext = extensionsFor(want);
    expect(ext).toContain('subjectAltName = DNS:10.0.0.11, DNS:db1, IP:10.0.0.11');
    expect(ext).toContain('extendedKeyUsage = serverAuth, clientAuth');
    expect(ext).toContain('basicConstraints = critical, CA:FALSE');
    expect(requestProblem(want)).toBeUndefined();
    expect(requestProblem({ ...want, cn: 'db1/O=evil' })).toMatch(/CN/);
    expect(requestProblem({ ...want, dns: ['a,DNS:b'] })).toMatch(/alternative/);
    expect(requestProblem({ ...want, ips: ['10.0.0'] })).toMatch(/alternative/);
  });
  it("pgBackRest's request names the address as a DNS name too (2.45 matches CN and DNS names only)", () => {
    expect(certRequest({ name: 'db1', address: '10.0.0.11' })).toEqual(want);
  });
});

describe('pgbackrest.conf', () => {
  const inv = labInv();
  const host = (n: string) => inv.hosts.find((h) => h.name === n)!;
  it('the repository host: encrypted repository, retention, backups from a standby, each database host over TLS with its own config', () => {
    const c = renderPgbackrestConf(inv, host('ctl'), 'PASSPHRASE_abcdefghijkl');
    expect(c).toContain('repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=PASSPHRASE_abcdefghijkl');
    expect(c).toContain('repo1-retention-full=2\nrepo1-retention-diff=6');
    expect(c).toContain('backup-standby=y');
    expect(c).toContain('tls-server-auth=db1=dpgc-lab\ntls-server-auth=db2=dpgc-lab\ntls-server-auth=db3=dpgc-lab');
    expect(c).toContain('pg3-host=127.0.30.13\npg3-host-type=tls');
    expect(c).toContain('pg2-host-config=/lab/db2/etc/pgbackrest/pgbackrest.conf');
    expect(c).toContain('pg1-path=/lab/db1/var/lib/postgresql/15/main');
  });
  it('a database host: the repository over TLS, asynchronous archiving, no passphrase', () => {
    const c = renderPgbackrestConf(inv, host('db2'), undefined);
    expect(c).not.toContain('cipher');
    expect(c).toContain('repo1-host=127.0.30.10\nrepo1-host-type=tls');
    expect(c).toContain('repo1-host-config=/lab/ctl/etc/pgbackrest/pgbackrest.conf');
    expect(c).toContain('archive-async=y');
    expect(c).toContain('tls-server-auth=ctl=dpgc-lab');
    expect(c).toContain('[dpgc-lab]\npg1-path=/lab/db2/var/lib/postgresql/15/main');
    expect(c).not.toContain('pg1-host=');
  });
  it('refuses a repository on a database host', () => {
    const r = parseInventory(labInventoryYaml({ dir: '/lab', subnet: '127.0.30' }).replace('roles:\n      - postgres\n      - etcd', 'roles:\n      - postgres\n      - etcd\n      - backup'), '/lab/dpgc.yaml');
    const i = r.inventory!;
    expect(() => renderPgbackrestConf({ ...i, hosts: i.hosts.map((h) => (h.name === 'ctl' ? { ...h, roles: h.roles.filter((x) => x !== 'backup') } : h)) }, i.hosts[1]!)).toThrow(/both the backup and the postgres roles/);
  });
});

describe('archiving and replicas from the repository', () => {
  it('sprint 4 adds archiving to the dynamic configuration; earlier sprints leave it alone', () => {
    const inv = labInv();
    expect(desiredDynamicConfig(inv).postgresql.parameters).not.toHaveProperty('archive_mode');
    expect(desiredDynamicConfig(inv, { archiving: true }).postgresql.parameters).toMatchObject({
      archive_mode: 'on',
      archive_command: 'pgbackrest --stanza=dpgc-lab archive-push %p',
      archive_timeout: 60,
    });
  });
  it('Patroni tries pgbackrest restore --delta before basebackup', () => {
    const inv = labInv();
    const h = inv.hosts.find((x) => x.name === 'db2')!;
    const creds = { username: 'u', password: 'p' };
    const y = parse(renderPatroniConfig(inv, h, hostPaths(inv, h), { rest: creds, superuser: creds, replication: creds, rewind: creds })) as { postgresql: Record<string, unknown> };
    expect(y.postgresql['create_replica_methods']).toEqual(['pgbackrest', 'basebackup']);
    expect(y.postgresql['pgbackrest']).toEqual({ command: 'pgbackrest --config=/lab/db2/etc/pgbackrest/pgbackrest.conf --stanza=dpgc-lab --delta restore', keep_data: true, no_params: true });
  });
});

describe('the schedule', () => {
  it('reads intervals and calendar expressions, and how old a backup may get', () => {
    expect(parseSchedule('90s')).toMatchObject({ kind: 'interval', seconds: 90 });
    expect(parseSchedule('6h')).toMatchObject({ kind: 'interval', seconds: 21_600 });
    expect(parseSchedule('daily')).toMatchObject({ kind: 'calendar', seconds: 86_400 });
    expect(parseSchedule('*-*-* 01:30:00')).toMatchObject({ kind: 'calendar', expr: '*-*-* 01:30:00' });
    expect(() => parseSchedule('5s')).toThrow(/shorter than 30 s/);
    expect(allowedAgeSeconds(parseSchedule('30s'))).toBe(90);
    expect(allowedAgeSeconds(parseSchedule('1d'))).toBe(86_400 + 21_600);
  });
  it('rejects a bad schedule in the inventory, naming the field', () => {
    const r = parseInventory(`${labInventoryYaml({ dir: '/lab', subnet: '127.0.30' }).replace('backup:\n', 'backup:\n  schedule: "daily; rm -rf /"\n')}`, '/lab/dpgc.yaml');
    expect(r.issues.map((i) => `${i.path}: ${i.message}`).join('\n')).toMatch(/backup\.schedule: .*interval such as 6h/);
  });
  const timerDir = mkdtempSync(join(tmpdir(), 'dpgc-timer-'));
  afterAll(() => rmSync(timerDir, { recursive: true, force: true }));
  it.skipIf(!existsSync('/usr/bin/systemd-analyze'))('renders timer units that systemd-analyze verify accepts', () => {
    for (const schedule of ['6h', 'daily']) {
      const inv = labInv(`\n`);
      inv.backup.schedule = schedule;
      const ctl = { paths: hostPaths(inv, { root: timerDir, name: 'ctl' }) };
      const u = renderTimerUnits(inv, ctl);
      mkdirSync(ctl.paths.libexecDir, { recursive: true });
      const script = join(ctl.paths.libexecDir, 'pgbackrest-scheduled-backup');
      writeFileSync(script, renderScheduledBackup(inv, ctl));
      chmodSync(script, 0o755);
      execFileSync('sh', ['-n', script]);
      writeFileSync(join(timerDir, 'dpgc-pgbackrest-backup.service'), u.service.replace('User=pgbackrest\nGroup=pgbackrest\n', ''));
      writeFileSync(join(timerDir, 'dpgc-pgbackrest-backup.timer'), u.timer);
      expect(u.timer).toContain(schedule === 'daily' ? 'OnCalendar=daily' : 'OnUnitActiveSec=21600s');
      execFileSync('systemd-analyze', ['verify', join(timerDir, 'dpgc-pgbackrest-backup.service'), join(timerDir, 'dpgc-pgbackrest-backup.timer')], { stdio: 'pipe' });
    }
  });
});

const info: StanzaInfo = parseInfo(
  JSON.stringify([
    {
      name: 'dpgc-lab',
      status: { code: 0, message: 'ok' },
      backup: [
        { label: '20261202-075317F', type: 'full', timestamp: { start: 1_796_198_000, stop: 1_796_198_027 }, archive: { start: '000000030000000000000017', stop: '000000030000000000000018' }, info: { size: 46_766_080, repository: { delta: 8_178_892 } } },
        { label: '20261202-075317F_20261202-075733I', type: 'incr', timestamp: { start: 1_796_198_253, stop: 1_796_198_260 }, info: { size: 46_766_080, repository: { delta: 99_430 } } },
      ],
    },
  ]),
  'dpgc-lab',
)!;

describe('the scratch copy of a restore', () => {
  const inv = { network: { allowed_cidrs: ['10.0.0.0/24'] } };
  it('takes logins over TLS only when the cluster has a CA, and serves its own certificate', () => {
    expect(scratchHba(inv, true)).toBe('local all all peer map=scratch\nhostssl all all 10.0.0.0/24 scram-sha-256\nhostnossl all all all reject\n');
    expect(scratchHba(inv)).toBe('local all all peer map=scratch\nhost all all 10.0.0.0/24 scram-sha-256\n');
    const node = { spec: { name: 'ctl', address: '10.0.0.10', roles: [] }, paths: { pgBin: '/usr/lib/postgresql/15/bin', tlsDir: '/etc/dpgc/tls' } } as unknown as Parameters<typeof scratchService>[1];
    const argv = scratchService({ ports: { restore_scratch: 5499 } } as Parameters<typeof scratchService>[0], node, '/s', true).argv.join(' ');
    expect(argv).toContain('-c ssl=on -c ssl_cert_file=/s/pitr-scratch.crt -c ssl_key_file=/s/pitr-scratch.key -c ssl_ca_file= -c ssl_min_protocol_version=TLSv1.2');
    expect(scratchService({ ports: { restore_scratch: 5499 } } as Parameters<typeof scratchService>[0], node, '/s').argv.join(' ')).toContain('-c ssl=off');
  });
});

describe('backups and restores from pgbackrest info', () => {
  it('a backup is full when the repository has none, else what was asked (incremental by default)', () => {
    expect(chooseType(undefined, 'incr')).toBe('full');
    expect(chooseType({ ...info, backup: [] }, 'diff')).toBe('full');
    expect(chooseType(info, undefined)).toBe('incr');
    expect(chooseType(info, 'diff')).toBe('diff');
  });
  it('lists rows with times, sizes and the WAL range', () => {
    const rows = backupRows(info);
    expect(rows[0]).toMatchObject({ label: '20261202-075317F', type: 'full', durationS: 27, sizeBytes: 46_766_080, repoBytes: 8_178_892, walStart: '000000030000000000000017' });
    expect(formatRows(rows).split('\n')[1]).toMatch(/^20261202-075317F\s+full\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+27 s\s+44\.6 MiB\s+7\.8 MiB\s+000000030000000000000017/);
  });
  it('the recovery window runs from the end of the oldest backup to now', () => {
    const w = recoveryWindow(info, now)!;
    expect(w.earliest.toISOString()).toBe(new Date(1_796_198_027_000).toISOString());
    expect(recoveryWindow({ ...info, backup: [] }, now)).toBeUndefined();
  });
  it('reads target times with offsets (UTC without one) and refuses what is outside the window, naming it', () => {
    const w = { earliest: new Date('2026-12-01T00:00:00Z'), latest: now };
    expect(parseTargetTime('2026-12-02T07:15:00Z', w).toISOString()).toBe('2026-12-02T07:15:00.000Z');
    expect(parseTargetTime('2026-12-02 08:15:00+01:00', w).toISOString()).toBe('2026-12-02T07:15:00.000Z');
    expect(parseTargetTime('2026-12-02 07:15:00.250', w).toISOString()).toBe('2026-12-02T07:15:00.250Z');
    const refusal = (t: string) => {
      try {
        parseTargetTime(t, w);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        return `${(e as UsageError).message} | ${(e as UsageError).hint}`;
      }
      throw new Error('accepted');
    };
    expect(refusal('2026-11-30T23:59:59Z')).toMatch(/before the end of the oldest backup \| Recoverable: from 2026-12-01T00:00:00.000Z .* to 2026-12-02T08:00:00.000Z/);
    expect(refusal('2026-12-02T08:00:01Z')).toMatch(/is in the future/);
    expect(refusal('last tuesday')).toMatch(/not a time dpgc can read/);
    expect(refusal('2026-13-45T00:00:00Z')).toMatch(/not a time dpgc can read/);
  });
  it('passes targets to pgBackRest in UTC, and reads the WAL replayed from the log', () => {
    expect(pgTimestamp(new Date('2026-12-02T07:15:00.250Z'))).toBe('2026-12-02 07:15:00.250+00');
    expect(targetArgs({ type: 'time', time: new Date('2026-12-02T07:15:00Z'), text: '' })).toEqual(['--type=time', '--target=2026-12-02 07:15:00.000+00']);
    expect(targetArgs({ type: 'name', name: 'm1' })).toEqual(['--type=name', '--target=m1']);
    expect(lsnBytes('0/23000028', '0/26000148')).toBe(0x3000120);
    expect(lsnBytes('0/FF000000', '1/01000000')).toBe(0x2000000);
    const log = 'LOG:  redo starts at 0/23000028\nLOG:  consistent\nLOG:  redo done at 0/26000148 system usage';
    expect(replayedFromLog(log)).toEqual({ from: '0/23000028', to: '0/26000148', bytes: 0x3000120 });
    expect(replayedFromLog('nothing')).toEqual({});
  });
});
