import { resolveTimings } from '../../src/config/timings.js';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envFileText, pgbouncerExporterScript } from '../../src/components/exporters.js';
import { renderAuthFile, renderPgbouncerIni } from '../../src/components/pgbouncer.js';
import { scramVerifier } from '../../src/components/scram.js';
import { connect } from '../../src/db/client.js';
import { LocalHost } from '../../src/hosts/local.js';
import { serviceManager, type ServiceSpec } from '../../src/hosts/services.js';
import { silentLogger } from '../../src/output/log.js';

/**
 * The rendered pgbouncer.ini is accepted by the real PgBouncer 1.18 (started
 * in a scratch directory, no backend needed for the admin console), and
 * dpgc's PgBouncer exporter serves its metrics, reporting pgbouncer_up 0 when
 * PgBouncer is gone instead of crashing (Debian's exporter 1.7 crashes).
 */
const ADDR = '127.0.20.60';
const PORT = 16432;
const EXPORTER_PORT = 19127;
const password = 'scratch-admin-password-123';
const secrets = { get: async () => password };

let dir: string;
const host = new LocalHost({ name: 'scratch', address: ADDR, dryRun: false, logger: silentLogger });
let services: ReturnType<typeof serviceManager>;
let bouncer: ServiceSpec;
let exporter: ServiceSpec;

const metrics = async () => (await fetch(`http://${ADDR}:${EXPORTER_PORT}/metrics`)).text();

beforeAll(async () => {
  dir = await mkdtemp('/tmp/dpgc-s1-pgb-');
  await chmod(dir, 0o755);
  services = serviceManager(host, { services: 'supervised' }, { runDir: join(dir, 'run'), logDir: join(dir, 'log') });
  const inv = {
    ports: { pgbouncer: PORT } as never,
    pgbouncer: { pool_mode: 'transaction' as const, max_client_conn: 10000, default_pool_size: 25, reserve_pool_size: 5, reserve_pool_timeout: 3 },
    timings: resolveTimings({ profile: 'balanced', rto_budget_s: 30 }),
  };
  const ini = renderPgbouncerIni({ ...inv, ports: { ...(inv.ports as object), pgbouncer: PORT } as never }, { name: 'scratch', address: ADDR }, { pgbouncerDir: join(dir, 'etc'), pgSocketDir: join(dir, 'sock'), tlsDir: join(dir, 'tls') }, [
    { alias: 'app', host: '127.0.20.61', port: 5432, dbname: 'app' },
  ]);
  await host.writeFile(join(dir, 'etc/pgbouncer.ini'), ini, { mode: 0o640, owner: 'root', group: 'postgres' });
  await host.writeFile(join(dir, 'etc/userlist.txt'), renderAuthFile([{ user: 'pgbouncer_admin', verifier: scramVerifier(password) }]), { mode: 0o600, owner: 'postgres' });
  await host.exec(['install', '-d', '-o', 'postgres', '-m', '2775', join(dir, 'sock')]);
  bouncer = { name: 'pgbouncer', user: 'postgres', argv: ['/usr/sbin/pgbouncer', join(dir, 'etc/pgbouncer.ini')], listen: { address: ADDR, port: PORT }, nofile: 10400 };
  await services.start(bouncer);
  await host.writeFile(join(dir, 'exporter.py'), pgbouncerExporterScript(), { mode: 0o755 });
  const env = envFileText({ PGBOUNCER_EXPORTER_LISTEN: `${ADDR}:${EXPORTER_PORT}`, PGHOST: ADDR, PGPORT: String(PORT), PGUSER: 'pgbouncer_admin', PGPASSWORD: password });
  await host.writeFile(join(dir, 'exporter.env'), env, { mode: 0o600 });
  exporter = { name: 'pgbouncer-exporter', user: 'postgres', argv: ['/usr/bin/python3', join(dir, 'exporter.py')], envFile: join(dir, 'exporter.env'), listen: { address: ADDR, port: EXPORTER_PORT } };
  await services.start(exporter);
}, 60_000);

afterAll(async () => {
  await services.stop(exporter).catch(() => {});
  await services.stop(bouncer).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

describe('PgBouncer with the rendered config', () => {
  it('starts with the fd limit raised to fit max_client_conn', async () => {
    const log = await services.logTail('pgbouncer', 50);
    const m = /kernel file descriptor limit: (\d+).*max_client_conn: (\d+)/.exec(log);
    expect(m, log).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(Number(m![2]));
  });

  it('answers SHOW POOLS to pgbouncer_admin over SCRAM and refuses a wrong password', async () => {
    const ep = { name: 'scratch', address: ADDR, port: PORT, database: 'pgbouncer', user: 'pgbouncer_admin', secret: 'pgbouncer_admin' as const };
    const c = await connect(secrets, ep);
    const r = await c.query('SHOW POOLS');
    await c.end();
    expect(r.fields.map((f) => f.name)).toContain('cl_waiting');
    await expect(connect({ get: async () => 'wrong-password-0000' }, ep)).rejects.toThrow(/password authentication failed|SASL/);
  });
});

describe('dpgc pgbouncer-exporter', () => {
  it('exports pools, stats, config and lists', async () => {
    const m = await metrics();
    expect(m).toContain('pgbouncer_up 1');
    expect(m).toMatch(/pgbouncer_pools_cl_waiting\{database="pgbouncer",user="pgbouncer"\} 0/);
    expect(m).toMatch(/pgbouncer_pools_maxwait_seconds\{/);
    expect(m).toMatch(/# TYPE pgbouncer_stats_total_query_count_total counter/);
    expect(m).toMatch(/pgbouncer_stats_total_query_time_seconds_total\{database="pgbouncer"\}/);
    expect(m).toContain('pgbouncer_config_max_client_conn 10000.0');
    expect(m).toMatch(/pgbouncer_lists\{list="free_clients"\}/);
    expect(m).not.toContain(password);
  });

  it('the password is in neither argv nor the log', async () => {
    const st = await services.status(exporter);
    expect(st.running).toBe(true);
    const cmdline = await host.readFile(`/proc/${st.running ? st.pid : 0}/cmdline`);
    expect(cmdline).not.toContain(password);
    expect(await services.logTail('pgbouncer-exporter', 100)).not.toContain(password);
  });

  it('reports pgbouncer_up 0 while PgBouncer is stopped, and recovers', async () => {
    await services.stop(bouncer);
    const m = await metrics();
    expect(m).toContain('pgbouncer_up 0');
    expect((await services.status(exporter)).running).toBe(true);
    await services.start(bouncer);
    expect(await metrics()).toContain('pgbouncer_up 1');
  });
});
