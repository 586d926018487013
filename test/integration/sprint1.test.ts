import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardQueries } from '../../src/checks/grafana.js';
import { pgbouncerPools, pgbouncerScram, poolTestCheck } from '../../src/checks/pgbouncer.js';
import { prometheusTargets, rulesLoaded, scrapeInterval } from '../../src/checks/prometheus.js';
import type { Check } from '../../src/checks/types.js';
import { alertmanagerUp, alertsReachPerson, alertsRouted } from '../../src/checks/alerting.js';
import { alertmanagerTarget, ensureAlertmanager, labNotifications } from '../../src/components/alertmanager.js';
import { exporterFiles, postgresExporterService, pgbouncerExporterService } from '../../src/components/exporters.js';
import { pgbouncerFiles } from '../../src/components/pgbouncer.js';
import { prometheusFiles } from '../../src/components/prometheus.js';
import type { RunContext } from '../../src/context.js';
import { createLab, type TestLab } from '../helpers/lab.js';
import { explain } from '../helpers/cli.js';

/**
 * Sprint 1 on a real lab (127.0.20.x): sprint 0 first (the gate), then
 * sprint 1 twice (the second changes nothing), the pool test command, and
 * for each criterion a real breakage that makes its check fail.
 */
let lab: TestLab;
let ctx: RunContext;

const run = async (c: Check) => c.run(ctx);

/** Restore with the product itself: a re-run of sprint 1 must repair what a test broke. */
async function repair(): Promise<{ code: number; json: { tasks: { changed: number } } }> {
  const r = await lab.cli(['--yes', '--json', 'sprint', '1']);
  expect(r.code, explain(r)).toBe(0);
  return { code: r.code, json: JSON.parse(r.stdout) };
}

beforeAll(async () => {
  lab = await createLab('127.0.20');
  const s0 = await lab.cli(['--yes', 'sprint', '0']);
  expect(s0.code, s0.stderr).toBe(0);
  ctx = await lab.context();
});

afterAll(async () => {
  await lab?.down();
});

describe('dpgc sprint 1', () => {
  it('gates on sprint 0, deploys, and passes every criterion', async () => {
    const r = await lab.cli(['--yes', '--json', 'sprint', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Re-verifying sprint 0');
    const doc = JSON.parse(r.stdout) as { passed: boolean; tasks: { changed: number }; results: { id: string; verdict: string }[] };
    expect(doc.passed).toBe(true);
    expect(doc.tasks.changed).toBeGreaterThan(5);
    expect(doc.results.map((x) => x.id).sort()).toEqual(
      [
        's1.alertmanager.routes',
        's1.alertmanager.up',
        's1.grafana.dashboards',
        's1.pgbouncer.pools',
        's1.pgbouncer.scram',
        's1.pool.test',
        's1.prometheus.interval',
        's1.prometheus.rules',
        's1.prometheus.targets',
      ].sort(),
    );
    expect(doc.results.every((x) => x.verdict === 'pass')).toBe(true);
  });

  it('a second run changes nothing', async () => {
    const r = await lab.cli(['--yes', '--json', 'sprint', '1']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { tasks: { changed: number; unchanged: number } };
    expect(doc.tasks).toMatchObject({ changed: 0 });
    expect(r.stderr).toContain('Nothing to change');
  });

  it('keeps secrets in 0600 files only: auth file, exporter env files; none in configs or argv', async () => {
    const ctl = await ctx.pool.node('ctl');
    const db1 = await ctx.pool.node('db1');
    const stat = async (n: typeof ctl, p: string) => (await n.host.exec(['stat', '-c', '%a %U', p])).stdout.trim();
    expect(await stat(ctl, pgbouncerFiles(ctl.paths).authFile)).toBe('600 postgres');
    expect(await stat(ctl, exporterFiles(ctl).pgbouncerEnv)).toBe('600 root');
    expect(await stat(db1, exporterFiles(db1).postgresEnv)).toBe('600 root');
    const secrets = await Promise.all(['pgbouncer_admin', 'monitoring', 'dpg_cluster', 'shared_user'].map((s) => ctx.secrets.get(s as never)));
    const ini = (await ctl.host.readFile(pgbouncerFiles(ctl.paths).ini))!;
    const auth = (await ctl.host.readFile(pgbouncerFiles(ctl.paths).authFile))!;
    const prom = (await ctl.host.readFile(prometheusFiles(ctl.paths).config))!;
    expect(auth).toMatch(/^"dpg_cluster" "SCRAM-SHA-256\$4096:/m);
    for (const s of secrets) {
      for (const text of [ini, auth, prom]) expect(text).not.toContain(s);
    }
    for (const [n, spec] of [
      [ctl, pgbouncerExporterService(ctx.inventory, ctl)],
      [db1, postgresExporterService(ctx.inventory, db1)],
    ] as const) {
      const st = await n.services.status(spec);
      expect(st.running).toBe(true);
      const argv = (await n.host.readFile(`/proc/${st.running ? st.pid : 0}/cmdline`))!;
      for (const s of secrets) expect(argv).not.toContain(s);
    }
  });
});

describe('dpgc pool-test', () => {
  it('runs N agents through PgBouncer, shows progress on stderr and one JSON document on stdout', async () => {
    const r = await lab.cli(['--json', 'pool-test', '--agents', '60', '--duration', '6s']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/agents 60\/60 +ops \d+/);
    const doc = JSON.parse(r.stdout) as Record<string, unknown> & { latencyMs: Record<string, number>; pgbouncer: Record<string, number>; byOp: Record<string, number> };
    expect(doc).toMatchObject({ agents: 60, agentsSustained: 60, errors: 0, connectTimeouts: 0, timeouts: 0, poolExhausted: 0, passed: true });
    expect(doc['ops'] as number).toBeGreaterThan(100);
    expect(doc.latencyMs.p99).toBeGreaterThan(0);
    expect(doc.pgbouncer.samples).toBeGreaterThan(2);
    expect(doc.pgbouncer.svActivePeak).toBeGreaterThan(0);
    expect(Object.keys(doc.byOp).sort()).toEqual(['read', 'search', 'upsert']);
  });

  it('fails, with a reason, when fewer agents than the criterion are asked for', async () => {
    const r = await lab.cli(['--json', 'pool-test', '--agents', '5', '--duration', '2s']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).reasons).toContain('5 agents is fewer than the 40 the criterion asks for');
  });
});

describe('each check fails when its property is broken', () => {
  it('PgBouncer stopped: SHOW POOLS, SCRAM and the pool test fail; a re-run restarts it', async () => {
    const ctl = await ctx.pool.node('ctl');
    await ctl.services.stop({ name: 'pgbouncer' });
    const pools = await run(pgbouncerPools).catch((e: Error) => ({ verdict: 'fail', detail: e.message }));
    expect(pools.verdict).toBe('fail');
    expect(pools.detail).toMatch(/cannot connect to pgbouncer_admin@127\.0\.20\.10:6432\/pgbouncer/);
    const scram = await run(pgbouncerScram).catch((e: Error) => ({ verdict: 'fail', detail: e.message }));
    expect(scram.verdict).toBe('fail');
    const pool = await run(poolTestCheck).catch((e: Error) => ({ verdict: 'fail', detail: e.message }));
    expect(pool.verdict).toBe('fail');
    expect(pool.detail).toMatch(/ECONNREFUSED|cannot connect/);
    const fix = await repair();
    expect(fix.json.tasks.changed).toBe(1);
    expect((await run(pgbouncerPools)).verdict).toBe('pass');
  });

  it('a wrong password accepted (auth_type trust) fails the SCRAM check', async () => {
    const ctl = await ctx.pool.node('ctl');
    const f = pgbouncerFiles(ctl.paths).ini;
    const ini = (await ctl.host.readFile(f))!;
    await ctl.host.writeFile(f, ini.replace('auth_type = scram-sha-256', 'auth_type = trust'), { mode: 0o640, owner: 'root', group: 'postgres' });
    await ctl.services.reload({ name: 'pgbouncer' });
    await new Promise((r) => setTimeout(r, 500));
    const r = await run(pgbouncerScram);
    expect(r.verdict).toBe('fail');
    expect(r.detail).toMatch(/auth_type = trust|accepted a wrong password/);
    const fix = await repair();
    expect(fix.json.tasks.changed).toBe(1);
    expect((await run(pgbouncerScram)).verdict).toBe('pass');
  });

  it('an exporter stopped: the targets check names it, its dashboard panels go empty', async () => {
    const ctl = await ctx.pool.node('ctl');
    const db1 = await ctx.pool.node('db1');
    const stoppedAt = Date.now();
    await db1.services.stop({ name: 'postgres-exporter' });
    await ctl.services.stop({ name: 'pgbouncer-exporter' });
    const r = await run(prometheusTargets);
    expect(r.verdict).toBe('fail');
    expect(r.value).toBe('5/7 up');
    expect(r.detail).toContain('postgres on db1 (127.0.20.11:9187) is down');
    expect(r.detail).toContain('pgbouncer on ctl (127.0.20.10:9127) is down');
    const d = await run(dashboardQueries);
    expect(d.verdict).toBe('fail');
    expect(d.detail).toMatch(/dpgc: PgBouncer pools \/ Clients active and waiting, per pool \[A\]: no data/);
    expect(d.detail).toMatch(/dpgc: PostgreSQL \/ Connections by state \[A\]: no data/);
    // End to end, in the same outage: TargetDown fires (its `for: 1m`), Prometheus sends it to
    // Alertmanager, which notifies the lab inventory's receiver; the lab receiver writes it down.
    const started = Date.now();
    const arrived = async () =>
      (await labNotifications(ctl)).flatMap((n) => n.alerts.map((a) => ({ receiver: n.receiver, ...a }))).find((a) => a.status === 'firing' && a.labels['alertname'] === 'TargetDown' && a.labels['instance'] === '127.0.20.11:9187');
    let alert = await arrived();
    while (!alert && Date.now() - started < 120_000) {
      await new Promise((res) => setTimeout(res, 2000));
      alert = await arrived();
    }
    expect(alert, 'TargetDown for the stopped postgres_exporter reached the lab receiver within 2 minutes').toBeDefined();
    expect(alert).toMatchObject({ receiver: 'lab', labels: { job: 'postgres', host: 'db1', severity: 'critical', cluster: 'dpgc-lab' } });
    expect(alert!.annotations['summary']).toContain('127.0.20.11:9187');
    console.info(`TargetDown reached the lab receiver ${((Date.now() - stoppedAt) / 1000).toFixed(0)} s after the exporter stopped, ${((Date.now() - started) / 1000).toFixed(0)} s after the dashboards check failed`);
    await repair();
    expect((await run(prometheusTargets)).verdict).toBe('pass');
  });

  it('a rule broken: one that fails to evaluate, and one that fails to load', async () => {
    const ctl = await ctx.pool.node('ctl');
    const f = prometheusFiles(ctl.paths).rule('postgres.yml');
    const good = (await ctl.host.readFile(f))!;
    // Valid PromQL that fails at evaluation: one pg_up matched against many activity series.
    await ctl.host.writeFile(f, good.replace('expr: pg_up == 0', 'expr: pg_up * on () pg_stat_activity_count == 0'), { mode: 0o644 });
    await ctl.services.reload({ name: 'prometheus' });
    // The installed promtool tests fail at once; Prometheus's own evaluation error comes with its next round.
    let r = await run(rulesLoaded);
    for (let i = 0; i < 30 && !/fails to evaluate/.test(r.detail ?? ''); i++) {
      await new Promise((res) => setTimeout(res, 1000));
      r = await run(rulesLoaded);
    }
    expect(r.verdict).toBe('fail');
    expect(r.detail).toMatch(/fails to evaluate: PostgresDown .*(many-to-many|many-to-one|multiple matches)/);
    expect(r.detail).toMatch(/^promtool tests of postgres\.yml fail on ctl /m);
    // Unparseable: Prometheus refuses the reload and keeps the old rules.
    await ctl.host.writeFile(f, good.replace('expr: pg_up == 0', 'expr: pg_up =='), { mode: 0o644 });
    await ctl.services.reload({ name: 'prometheus' });
    await new Promise((res) => setTimeout(res, 1000));
    r = await run(rulesLoaded);
    expect(r.verdict).toBe('fail');
    expect(r.detail).toMatch(/failed to load its configuration or rule files/);
    const fix = await repair();
    expect(fix.json.tasks.changed).toBe(1);
    expect((await run(rulesLoaded)).verdict).toBe('pass');
  });

  it('a scrape interval other than 15 s fails the interval check', async () => {
    const ctl = await ctx.pool.node('ctl');
    const f = prometheusFiles(ctl.paths).config;
    const good = (await ctl.host.readFile(f))!;
    await ctl.host.writeFile(f, good.replace(/scrape_interval: "?15s"?/, 'scrape_interval: 30s'), { mode: 0o644 });
    await ctl.services.reload({ name: 'prometheus' });
    await new Promise((res) => setTimeout(res, 1000));
    const r = await run(scrapeInterval);
    expect(r.verdict).toBe('fail');
    expect(r.detail).toContain('configured scrape interval is 30s');
    await repair();
    expect((await run(scrapeInterval)).verdict).toBe('pass');
  });

  it('alerts that reach nobody: a rule no route claims is named, a stopped Alertmanager fails; one re-run repairs both', async () => {
    const ctl = await ctx.pool.node('ctl');
    // The inventory an operator might write: warnings to the lab receiver, no default receiver.
    const inv = { ...ctx.inventory, alerting: { ...ctx.inventory.alerting, receiver: undefined, routes: [{ receiver: 'lab', matchers: ['severity="warning"'], continue: false }] } };
    await ensureAlertmanager({ ...ctx, inventory: inv }, ctl);
    const r = await run(alertsRouted);
    expect(r.verdict).toBe('fail');
    expect(r.detail).toContain('TargetDown (severity=critical) → nobody');
    expect(r.detail).toContain('PostgresDown (severity=critical) → nobody');
    expect(r.detail).not.toContain('DiskSpaceLow');
    expect(r.remedy).toContain('alerting.receiver');

    await ctl.services.stop({ name: 'alertmanager' });
    const up = await run(alertmanagerUp);
    expect(up.verdict).toBe('fail');
    expect(up.detail).toMatch(/Alertmanager on ctl \(127\.0\.20\.10:9093\) is not ready: .*ECONNREFUSED/);
    await expect(run(alertsRouted)).rejects.toThrow(/Alertmanager at http:\/\/127\.0\.20\.10:9093 does not answer/);

    const fix = await repair();
    expect(fix.json.tasks.changed).toBe(1);
    expect((await run(alertmanagerUp)).verdict).toBe('pass');
    expect(await run(alertsRouted)).toMatchObject({ verdict: 'pass', value: expect.stringMatching(/^(\d+)\/\1 rules routed$/) });
  });

  it('a silence muting a rule fails readiness\'s "alerts reach a person"; expiring it passes', async () => {
    const ctl = await ctx.pool.node('ctl');
    // Before sprint 5: plaintext, no credentials.
    const url = `--alertmanager.url=${alertmanagerTarget(ctx.inventory, undefined).base}`;
    expect((await run(alertsReachPerson)).verdict).toBe('pass');
    const id = (await ctl.host.exec(['amtool', 'silence', 'add', url, '--comment=maintenance window', '--author=sre', '--duration=10m', 'alertname=PostgresDown'])).stdout.trim();
    try {
      const r = await run(alertsReachPerson);
      expect(r.verdict).toBe('fail');
      expect(r.detail).toContain(`PostgresDown (severity=critical) is muted by silence ${id} (sre: "maintenance window")`);
      expect(r.remedy).toContain('amtool silence expire');
    } finally {
      await ctl.host.exec(['amtool', 'silence', 'expire', url, id]);
    }
    expect((await run(alertsReachPerson)).verdict).toBe('pass');
  });

  it('verify --sprint 1 passes again after every repair', async () => {
    const r = await lab.cli(['--json', 'verify', '--sprint', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).passed).toBe(true);
  });
});
