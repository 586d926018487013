import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROLES_DB } from '../../src/components/endpoints.js';
import { AUDIT_DEFAULTS } from '../../src/components/audit.js';
import { canonicalHbaRule, hbaHash, MTAIL_PROGRAM, mtailProgram, mtailService, pgLogFiles, renderCertMetrics, renderHbaMetric } from '../../src/components/security-metrics.js';
import { patroniHba } from '../../src/components/patroni.js';
import { hostPaths } from '../../src/config/paths.js';
import { ConfigError } from '../../src/errors.js';
import { labInv } from '../helpers/lab-inventory.js';

/**
 * The mtail program, run by the real mtail (`-one_shot`) over log lines in
 * the format audit logging gives PostgreSQL's log (log_line_prefix
 * '%m [%p] %q%u@%d %h '); the lines a live cluster writes are counted in
 * test/integration/sprint4.test.ts.
 */
describe('the mtail program over PostgreSQL log lines', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dpgc-mtail-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const lines = [
    '2026-12-07 19:00:00.100 UTC [100] @ [unknown] LOG:  connection received: host=127.0.0.1 port=4000',
    // Refused: a wrong password, no pg_hba rule, a reject rule (a replication connection too).
    '2026-12-07 19:00:00.101 UTC [100] app_user@app 127.0.0.1 FATAL:  password authentication failed for user "app_user"',
    '2026-12-07 19:00:00.101 UTC [100] app_user@app 127.0.0.1 DETAIL:  Connection matched pg_hba.conf line 7: "hostssl all all 127.0.0.0/8 scram-sha-256"',
    '2026-12-07 19:00:00.102 UTC [101] x@y 10.0.0.9 FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "x", database "y", no encryption',
    '2026-12-07 19:00:00.102 UTC [102] x@y 10.0.0.9 FATAL:  pg_hba.conf rejects connection for host "10.0.0.9", user "x", database "y", no encryption',
    '2026-12-07 19:00:00.103 UTC [111] replicator@[unknown] 127.0.0.1 FATAL:  pg_hba.conf rejects replication connection for host "127.0.0.1", user "replicator", no encryption',
    // dpgc's own proof that plaintext is refused (s5.tls.required), as a user no role has: not counted.
    '2026-12-07 19:00:00.103 UTC [113] dpgc_plaintext_probe@postgres 127.0.0.1 FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "dpgc_plaintext_probe", database "postgres", no encryption',
    '2026-12-07 19:00:00.103 UTC [114] dpgc_plaintext_probe@[unknown] 127.0.0.1 FATAL:  pg_hba.conf rejects replication connection for host "127.0.0.1", user "dpgc_plaintext_probe", no encryption',
    // Not a login refused: a standby's own connection failing.
    '2026-12-07 19:00:00.104 UTC [112] FATAL:  could not connect to the primary server: connection to server at "127.0.0.12", port 5432 failed: FATAL:  password authentication failed for user "replicator"',
    // The superuser over TCP: dpgc, psql, an unnamed client over IPv6; then the socket and another role (not counted); a name only starting like dpgc's; a dpgc probe.
    '2026-12-07 19:00:00.200 UTC [103] postgres@postgres 127.0.0.1 LOG:  connection authorized: user=postgres database=postgres application_name=dpgc SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)',
    '2026-12-07 19:00:00.200 UTC [104] postgres@postgres 127.0.0.1 LOG:  connection authorized: user=postgres database=postgres application_name=psql SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)',
    '2026-12-07 19:00:00.200 UTC [106] postgres@postgres ::1 LOG:  connection authorized: user=postgres database=postgres',
    '2026-12-07 19:00:00.200 UTC [105] postgres@postgres [local] LOG:  connection authorized: user=postgres database=postgres application_name=Patroni',
    '2026-12-07 19:00:00.200 UTC [107] postgres_x@postgres 127.0.0.1 LOG:  connection authorized: user=postgres_x database=postgres',
    '2026-12-07 19:00:00.200 UTC [109] postgres@postgres 127.0.0.1 LOG:  connection authorized: user=postgres database=postgres application_name=dpgcx',
    '2026-12-07 19:00:00.200 UTC [110] postgres@postgres 127.0.0.1 LOG:  connection authorized: user=postgres database=postgres application_name=dpgc-lag-probe SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)',
    // A statement quoting the messages is not an event.
    "2026-12-07 19:00:00.300 UTC [108] app_user@app 127.0.0.1 LOG:  AUDIT: SESSION,1,1,DDL,CREATE TABLE,,,\"create table t (c text default ' FATAL:  password authentication failed for user')\",<not logged>",
  ];

  function counters(): Record<string, number> {
    const progs = join(dir, 'progs');
    mkdirSync(progs, { recursive: true });
    writeFileSync(join(progs, MTAIL_PROGRAM), mtailProgram());
    writeFileSync(join(dir, 'postgresql-Mon.log'), `${lines.join('\n')}\n`);
    // -port=0: one-shot mode still opens its listener; never on a port a lab uses.
    const out = execFileSync('mtail', ['-one_shot', '-one_shot_format=prometheus', `-progs=${progs}`, `-logs=${join(dir, 'postgresql-Mon.log')}`, '-emit_prog_label=false', '-address=127.0.0.1', '-port=0'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return Object.fromEntries([...out.matchAll(/^(postgresql_\w+) (\S+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
  }

  it('counts refused logins, and superuser logins over TCP by dpgc and by any other client', () => {
    expect(counters()).toEqual({
      postgresql_auth_failures_total: 4,
      postgresql_superuser_network_logins_total: 3,
      postgresql_superuser_network_logins_dpgc_total: 2,
    });
  });

  it("matches dpgc's superuser and the line prefix audit logging sets", () => {
    expect(mtailProgram()).toContain(`user=${ROLES_DB.superuser.user} database=`);
    expect(AUDIT_DEFAULTS['log_line_prefix']).toBe('%m [%p] %q%u@%d %h ');
  });
});

describe('the log files mtail follows', () => {
  const inv = labInv('\n');
  const node = { paths: hostPaths(inv, { root: '/lab/db1', name: 'db1' }), spec: inv.hosts.find((h) => h.name === 'db1')! };

  it("one per weekday in the data directory's log/, made before mtail starts", () => {
    const l = pgLogFiles(inv, node);
    expect(l.glob).toBe('/lab/db1/var/lib/postgresql/15/main/log/postgresql-*.log');
    expect(l.files).toHaveLength(7);
    expect(l.files[0]).toBe('/lab/db1/var/lib/postgresql/15/main/log/postgresql-Mon.log');
    expect(mtailService(inv, node).argv).toContain(`-logs=${l.glob}`);
    expect(mtailService(inv, node).argv).toContain(`-address=${node.spec.address}`);
  });

  it('an absolute log_directory and a fixed name are followed too; a name varying by date is refused, naming the setting', () => {
    const own = (settings: Record<string, string>) => ({ ...inv, postgres: { ...inv.postgres, settings } });
    expect(pgLogFiles(own({ log_directory: '/var/log/pg', log_filename: 'pg.log' }), node)).toEqual({ files: ['/var/log/pg/pg.log'], glob: '/var/log/pg/pg.log' });
    expect(() => pgLogFiles(own({ log_filename: 'postgresql-%Y-%m-%d.log' }), node)).toThrow(ConfigError);
    expect(() => pgLogFiles(own({ log_filename: 'postgresql-%Y-%m-%d.log' }), node)).toThrow(/postgres\.settings\.log_filename/);
  });
});

describe("certificate ends for node_exporter's textfile collector", () => {
  it('one series per certificate, its end in Unix seconds, 0 when unreadable; promtool accepts the text', () => {
    const text = renderCertMetrics([
      { file: '/etc/dpgc/tls/postgres.crt', cn: 'db1', notAfter: new Date('2027-01-10T12:00:00Z') },
      { file: '/lab/db1/etc/dpgc/tls/odd "name".crt', cn: undefined, notAfter: undefined },
    ]);
    expect(text).toContain('dpgc_certificate_not_after_seconds{file="/etc/dpgc/tls/postgres.crt",cn="db1"} 1799582400\n');
    expect(text).toContain('dpgc_certificate_not_after_seconds{file="/lab/db1/etc/dpgc/tls/odd \\"name\\".crt",cn=""} 0\n');
    expect(execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })).toBe('');
  });
});

describe("the rendered pg_hba's hash, as postgres_exporter's query computes the live one", () => {
  // pg_local_config (templates/prometheus/postgres-exporter-queries.yml) run by PostgreSQL 15 over a
  // pg_hba.conf of exactly these lines (Patroni's header above them) gave 214183632988061.
  const lines = [
    'local all postgres peer',
    'local all all scram-sha-256',
    'hostnossl all all all reject',
    'hostnossl replication all all reject',
    'host replication replicator 127.0.0.0/8 scram-sha-256',
    'host all all 127.0.0.0/8 scram-sha-256',
    'host all all 10.1.2.3/32 scram-sha-256',
    'host all all 10.1.2.3/8 md5',
  ];
  it('hashes as PostgreSQL does; whitespace and leading zeros are not a change, a rule is', () => {
    expect(hbaHash(lines)).toBe(214183632988061);
    expect(hbaHash(lines.map((l) => l.replace(/ /g, '\t  ').replace('10.1.2.3/8', '10.01.2.3/08')))).toBe(214183632988061);
    expect(hbaHash([...lines, 'host all all 127.0.0.0/8 trust'])).not.toBe(214183632988061);
    expect(canonicalHbaRule('local   all  postgres   peer')).toBe('local all postgres peer');
  });
  it("is a float64 Prometheus keeps exactly; promtool accepts the textfile", () => {
    const h = hbaHash(patroniHba(labInv(), { requireTls: true }));
    expect(Number.isSafeInteger(h) && h < 2 ** 52).toBe(true);
    const text = renderHbaMetric(patroniHba(labInv(), { requireTls: true }));
    expect(text).toContain(`\ndpgc_pg_hba_rendered_hash ${h}\n`);
    expect(execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })).toBe('');
  });
});
