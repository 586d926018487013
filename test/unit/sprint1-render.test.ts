import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { hostPaths } from '../../src/config/paths.js';
import { parseInventory } from '../../src/config/load.js';
import type { Inventory } from '../../src/config/schema.js';
import {
  baseInstanceBackends,
  parseAuthFile,
  pgbouncerNofile,
  renderAuthFile,
  renderPgbouncerIni,
} from '../../src/components/pgbouncer.js';
import { RULE_FILES, expectedAlertNames, renderPrometheusYml, ruleFileText, ruleFilesOf, scrapeTargets, SCRAPE_JOBS } from '../../src/components/prometheus.js';
import { envFileText } from '../../src/components/exporters.js';
import { labInventoryYaml } from '../../src/lab/inventory.js';
import { TEMPLATES_DIR } from '../../src/templates.js';

function lab(extra = ''): Inventory {
  const r = parseInventory(labInventoryYaml({ dir: '/tmp/dpgc-unit', subnet: '127.0.20' }) + extra, '/tmp/dpgc-unit.yaml');
  if (!r.inventory) throw new Error(JSON.stringify(r.issues));
  return r.inventory;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dpgc-s1-unit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('pgbouncer.ini', () => {
  const inv = lab();
  const ctl = inv.hosts.find((h) => h.name === 'ctl')!;
  const ini = renderPgbouncerIni(inv, ctl, hostPaths(inv, ctl), baseInstanceBackends(inv));

  it('listens on the host address, SCRAM only, inventory pool settings', () => {
    expect(ini).toContain('listen_addr = 127.0.20.10\n');
    expect(ini).toContain('listen_port = 6432\n');
    expect(ini).toContain('auth_type = scram-sha-256\n');
    expect(ini).not.toMatch(/trust|md5|password=/);
    expect(ini).toContain('pool_mode = transaction\n');
    expect(ini).toContain('max_client_conn = 10000\n');
    expect(ini).toContain('default_pool_size = 25\n');
    expect(ini).toContain('reserve_pool_size = 5\n');
    expect(ini).toContain('reserve_pool_timeout = 3\n');
    expect(ini).toContain('admin_users = pgbouncer_admin\n');
    expect(ini).toContain('stats_users = pgbouncer_admin\n');
  });

  it("retries a failed server login as often as HAProxy re-checks a server coming up (balanced: 250 ms)", () => {
    expect(ini).toContain('server_login_retry = 0.25\n');
  });

  it('routes both databases to the base instance, and the target is a parameter', () => {
    expect(ini).toContain('distributed_postgres_cluster = host=127.0.20.11 port=5432 dbname=distributed_postgres_cluster\n');
    expect(ini).toContain('claude_flow_shared = host=127.0.20.11 port=5432 dbname=claude_flow_shared\n');
    const viaHaproxy = renderPgbouncerIni(inv, ctl, hostPaths(inv, ctl), [
      { alias: 'distributed_postgres_cluster', host: '127.0.20.10', port: 5000, dbname: 'distributed_postgres_cluster' },
      { alias: 'distributed_postgres_cluster_ro', host: '127.0.20.10', port: 5001, dbname: 'distributed_postgres_cluster' },
    ]);
    expect(viaHaproxy).toContain('distributed_postgres_cluster_ro = host=127.0.20.10 port=5001 dbname=distributed_postgres_cluster\n');
  });

  it('takes overrides from the inventory', () => {
    const inv2 = lab('pgbouncer:\n  pool_mode: session\n  default_pool_size: 40\n  max_client_conn: 2000\n');
    const t = renderPgbouncerIni(inv2, ctl, hostPaths(inv2, ctl), baseInstanceBackends(inv2));
    expect(t).toContain('pool_mode = session\n');
    expect(t).toContain('default_pool_size = 40\n');
    expect(t).toContain('max_client_conn = 2000\n');
  });

  it('reaches PostgreSQL over TLS, verify-full against the CA beside it, once the cluster serves TLS (and not before)', () => {
    expect(ini).not.toContain('server_tls');
    const tls = renderPgbouncerIni(inv, ctl, hostPaths(inv, ctl), baseInstanceBackends(inv), { serverTls: true });
    expect(tls).toContain('server_tls_sslmode = verify-full\n');
    expect(tls).toContain(`server_tls_ca_file = ${hostPaths(inv, ctl).pgbouncerDir}/server-ca.crt\n`);
    expect(tls).toContain('server_tls_protocols = secure\n');
  });

  it('refuses a backend that would need quoting', () => {
    expect(() => renderPgbouncerIni(inv, ctl, hostPaths(inv, ctl), [{ alias: 'x y', host: 'h', port: 1, dbname: 'd' }])).toThrow(/quoted/);
  });

  it('raises the fd limit above max_client_conn plus server connections', () => {
    expect(pgbouncerNofile(inv, 2)).toBeGreaterThanOrEqual(10_000 + 2 * 30);
  });
});

describe('auth file', () => {
  it('round-trips, sorted, with quotes doubled', () => {
    const t = renderAuthFile([
      { user: 'b', verifier: 'SCRAM-SHA-256$4096:c2FsdA==$a:b' },
      { user: 'a"q', verifier: 'v' },
    ]);
    expect(t).toBe('"a""q" "v"\n"b" "SCRAM-SHA-256$4096:c2FsdA==$a:b"\n');
    expect([...parseAuthFile(t)]).toEqual([
      ['a"q', 'v'],
      ['b', 'SCRAM-SHA-256$4096:c2FsdA==$a:b'],
    ]);
  });
});

describe('env files', () => {
  it('single-quotes values and refuses a quote', () => {
    expect(envFileText({ A: 'x y$z' })).toBe("A='x y$z'\n");
    expect(() => envFileText({ A: "it's" })).toThrow(/quote/);
  });
});

describe('prometheus.yml', () => {
  const inv = lab();
  const ctl = inv.hosts.find((h) => h.name === 'ctl')!;

  it('sprint 1 scrapes node on every host, postgres on the base instance, pgbouncer, itself', () => {
    const t = scrapeTargets(inv, 1).map((x) => `${x.job} ${x.instance}`);
    expect(t).toEqual([
      'prometheus 127.0.20.10:9090',
      'node 127.0.20.10:9100',
      'node 127.0.20.11:9100',
      'node 127.0.20.12:9100',
      'node 127.0.20.13:9100',
      'postgres 127.0.20.11:9187',
      'pgbouncer 127.0.20.10:9127',
    ]);
  });

  it('later sprints add their jobs without an edit here', () => {
    const jobs = new Set(scrapeTargets(inv, 5).map((x) => x.job));
    expect(jobs).toEqual(new Set(SCRAPE_JOBS.map((j) => j.job)));
    expect(scrapeTargets(inv, 3).filter((x) => x.job === 'postgres')).toHaveLength(3);
  });

  it('passes promtool check config (rule files included)', async () => {
    const paths = { prometheusDir: dir, prometheusData: join(dir, 'data') };
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dir, 'rules'), { recursive: true });
    for (const f of RULE_FILES) await writeFile(join(dir, 'rules', f), ruleFileText(f));
    const yml = renderPrometheusYml(inv, paths, 1);
    expect(parse(yml).global.scrape_interval).toBe('15s');
    await writeFile(join(dir, 'prometheus.yml'), yml);
    const r = await execa('promtool', ['check', 'config', join(dir, 'prometheus.yml')], { reject: false });
    expect(r.stdout + r.stderr).toContain('SUCCESS: 3 rule files found');
    expect(r.exitCode).toBe(0);
    void ctl;
  });
});

describe('alert rules', () => {
  it.each(RULE_FILES)('%s passes promtool check rules', async (f) => {
    const r = await execa('promtool', ['check', 'rules', join(TEMPLATES_DIR, 'prometheus/rules', f)], { reject: false });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  });

  it.each(RULE_FILES)('every alert in %s fires in its promtool unit test', async (f) => {
    const test = join(TEMPLATES_DIR, 'prometheus/tests', f.replace('.yml', '.test.yml'));
    const r = await execa('promtool', ['test', 'rules', test], { reject: false });
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const { readFile } = await import('node:fs/promises');
    const tested = new Set([...(await readFile(test, 'utf8')).matchAll(/alertname:\s*(\S+)/g)].map((m) => m[1]));
    const defined = [...ruleFileText(f).matchAll(/^\s*- alert:\s*(\S+)/gm)].map((m) => m[1]);
    for (const a of defined) expect(tested, `${a} has no promtool test`).toContain(a);
  });

  it('a broken rule is refused by promtool', async () => {
    const bad = ruleFileText('postgres.yml').replace('pg_up == 0', 'pg_up ==');
    await writeFile(join(dir, 'bad.yml'), bad);
    const r = await execa('promtool', ['check', 'rules', join(dir, 'bad.yml')], { reject: false });
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/parse error|unexpected/);
  });

  it('counts every alert: 10 of sprint 1, 6 of sprint 4 (backups), 5 of sprint 5 (security)', () => {
    expect(expectedAlertNames(ruleFilesOf(1))).toHaveLength(10);
    expect(expectedAlertNames(ruleFilesOf(4))).toEqual(['BackupFailed', 'BackupTooOld', 'FullBackupTooOld', 'WalArchivingFailing', 'WalArchiveLagAboveRpo', 'BackupRepositoryNearFull']);
    expect(expectedAlertNames(ruleFilesOf(5))).toEqual(['PostgresAuthFailureBurst', 'PostgresSuperuserNetworkLogin', 'CertificateExpiresSoon', 'PostgresHbaChangedOutsideDpgc', 'PostgresSettingsChangedOutsideDpgc']);
    expect(expectedAlertNames()).toHaveLength(21);
  });

  it('a sprint-1 config names sprint 1 rule files only; the backup rules come with sprint 4', () => {
    const paths = { prometheusDir: '/etc/prometheus', prometheusData: '/var/lib/prometheus' };
    const files = (s: number) => (parse(renderPrometheusYml(lab(), paths, s)) as { rule_files: string[] }).rule_files;
    expect(files(1)).toEqual(['/etc/prometheus/rules/postgres.yml', '/etc/prometheus/rules/pgbouncer.yml', '/etc/prometheus/rules/node.yml']);
    expect(files(4)).toContain('/etc/prometheus/rules/backup.yml');
  });
});
