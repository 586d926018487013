import { parse } from 'yaml';
import { appViaPgbouncer, DATABASES, type DatabaseKey } from '../components/endpoints.js';
import { DASHBOARD_UIDS, grafanaApiProblems } from './grafana-api.js';
import { dashboards, panelQueries, prometheusUrl } from '../components/grafana.js';
import { expectedAlertNames, monitoredSprint, SCRAPE_INTERVAL_S, SCRAPE_JOBS, scrapeTargets } from '../components/prometheus.js';
import type { RunContext } from '../context.js';
import { connect, withClient } from '../db/client.js';
import { formatReport, pgbouncerAdmin, poolTest } from '../pooltest/run.js';
import { activeTargets, healthy, medianSpacingS, promGet, promQuery, ruleGroups } from './prom-api.js';
import { fail, pass, type Check, type CheckResult } from './types.js';

/**
 * Sprint 1's success criteria, measured live: PgBouncer through its own
 * admin console and as applications connect, Prometheus through its API,
 * the dashboards by running their queries, and the pool under real load.
 */
const DBS = Object.keys(DATABASES) as DatabaseKey[];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run per pgbouncer host; the first failure wins, passes are joined. */
async function perPgbouncer(ctx: RunContext, fn: (h: { name: string; address: string }) => Promise<CheckResult>): Promise<CheckResult> {
  const out: CheckResult[] = [];
  for (const h of ctx.pool.specs('pgbouncer')) {
    const r = await fn(h);
    if (r.verdict === 'fail') return r;
    out.push(r);
  }
  return pass(out.map((r) => r.value).join('; '), out[0]?.threshold);
}

export const pgbouncerPools: Check = {
  id: 's1.pgbouncer.pools',
  title: 'PgBouncer listens and answers SHOW POOLS, both databases routed',
  sprint: 1,
  run: (ctx) =>
    perPgbouncer(ctx, async (h) => {
      const where = `${h.name} ${h.address}:${ctx.inventory.ports.pgbouncer}`;
      const { pools, dbs } = await withClient(ctx.secrets, pgbouncerAdmin(ctx.inventory, h), async (c) => ({
        pools: (await c.query('SHOW POOLS')).rows.length,
        dbs: (await c.query<{ name: string }>('SHOW DATABASES')).rows.map((r) => r.name),
      }));
      const missing = DBS.map((k) => DATABASES[k].name).filter((d) => !dbs.includes(d));
      if (missing.length) return fail(`PgBouncer on ${where} does not route ${missing.join(', ')}`, { remedy: 'Run `dpgc sprint 1` to rewrite its configuration.' });
      return pass(`${where}: ${pools} pools, ${DBS.length} databases`, 'answers SHOW POOLS');
    }),
};

export const pgbouncerScram: Check = {
  id: 's1.pgbouncer.scram',
  title: 'Clients authenticate to PgBouncer with SCRAM; a wrong password is refused',
  sprint: 1,
  run: (ctx) =>
    perPgbouncer(ctx, async (h) => {
      const authType = await withClient(ctx.secrets, pgbouncerAdmin(ctx.inventory, h), async (c) =>
        String((await c.query<{ key: string; value: string }>('SHOW CONFIG')).rows.find((r) => r.key === 'auth_type')?.value),
      );
      if (authType !== 'scram-sha-256') return fail(`PgBouncer on ${h.name} has auth_type = ${authType}`, { value: authType, threshold: 'scram-sha-256' });
      for (const k of DBS) {
        const ep = appViaPgbouncer(ctx.inventory, h, k);
        await withClient(ctx.secrets, ep, (c) => c.query('SELECT 1'));
        const wrong = await connect({ get: async () => `wrong-${Date.now()}-password` }, ep, { timeoutMs: 5000 }).then(
          async (c) => {
            await c.end();
            return 'accepted';
          },
          (e: Error) => e.message,
        );
        if (wrong === 'accepted') return fail(`PgBouncer on ${h.name} accepted a wrong password for ${ep.user}@${ep.database}`, { remedy: 'Check auth_type and the auth file; never trust or md5.' });
        if (!/password authentication failed|SASL|SCRAM/i.test(wrong)) return fail(`a wrong password for ${ep.user}@${ep.database} failed for another reason: ${wrong}`);
      }
      return pass(`${h.name}: scram-sha-256, ${DBS.length} owners in, wrong password refused`, 'SCRAM only');
    }),
};

/**
 * Each sprint judges the targets its own components add (jobs whose
 * sinceSprint is that sprint, sprint 1 everything before), so a dead etcd
 * member fails sprint 2's criteria and never locks `dpgc sprint 2`, the
 * command that restarts it, behind sprint 1's gate.
 */
export function targetsUpCheck(id: string, sprint: number, title: string): Check {
  return {
  id,
  title,
  sprint,
  async run(ctx) {
    const base = prometheusUrl(ctx.inventory);
    if (!(await healthy(base))) return fail(`Prometheus at ${base} is not healthy (/-/healthy)`, { remedy: 'Run `dpgc sprint 1`; it starts Prometheus on the monitoring host.' });
    const mine = (job: string) => {
      const since = SCRAPE_JOBS.find((j) => j.job === job)?.sinceSprint ?? 1;
      return sprint === 1 ? since <= 1 : since === sprint;
    };
    const expected = scrapeTargets(ctx.inventory, await monitoredSprint(ctx.inventory.file, sprint)).filter((t) => mine(t.job));
    // Judge fresh scrapes only: wait (at most two intervals) until every target was scraped after this check began.
    const since = Date.now();
    let targets = await activeTargets(base);
    const fresh = () => expected.every((e) => targets.some((t) => t.labels['instance'] === e.instance && Date.parse(t.lastScrape) >= since));
    for (let waited = 0; !fresh() && waited < 2 * SCRAPE_INTERVAL_S * 1000 + 5000; waited += 1000) {
      await sleep(1000);
      targets = await activeTargets(base);
    }
    const problems = expected.flatMap((e) => {
      const t = targets.find((x) => x.labels['instance'] === e.instance && x.labels['job'] === e.job);
      if (!t) return [`${e.job} on ${e.host} (${e.instance}) is not in Prometheus's configuration`];
      return t.health === 'up' ? [] : [`${e.job} on ${e.host} (${e.instance}) is ${t.health}${t.lastError ? `: ${t.lastError}` : ''}`];
    });
    const value = `${expected.length - problems.length}/${expected.length} up`;
    if (problems.length) return fail(problems.join('\n'), { value, threshold: 'all up', remedy: `Start what is down (\`dpgc sprint ${sprint}\` is safe to re-run) and look at its log on that host.` });
    return pass(value, 'all up');
  },
  };
}

export const prometheusTargets: Check = targetsUpCheck('s1.prometheus.targets', 1, 'Prometheus is healthy and every expected target is up');

export const scrapeInterval: Check = {
  id: 's1.prometheus.interval',
  title: `Prometheus scrapes every ${SCRAPE_INTERVAL_S} s`,
  sprint: 1,
  async run(ctx) {
    const base = prometheusUrl(ctx.inventory);
    const cfg = parse((await promGet<{ yaml: string }>(base, '/api/v1/status/config')).yaml) as {
      global?: { scrape_interval?: string };
      scrape_configs?: { job_name: string; scrape_interval?: string }[];
    };
    const want = `${SCRAPE_INTERVAL_S}s`;
    const off = (cfg.scrape_configs ?? []).filter((j) => j.scrape_interval && j.scrape_interval !== want).map((j) => `${j.job_name}: ${j.scrape_interval}`);
    if (cfg.global?.scrape_interval !== want || off.length) {
      return fail(`configured scrape interval is ${cfg.global?.scrape_interval}${off.length ? `; jobs overriding it: ${off.join(', ')}` : ''}`, { value: cfg.global?.scrape_interval ?? '?', threshold: want });
    }
    // Measured: spacing of Prometheus's own `up` samples over the last two minutes.
    let spacing: number | undefined;
    for (let i = 0; i < 40 && spacing === undefined; i++) {
      const r = await promQuery(base, 'up{job="prometheus"}[2m]');
      spacing = medianSpacingS(r.result[0]?.values ?? []);
      if (spacing === undefined) await sleep(1000);
    }
    if (spacing === undefined) return fail('Prometheus has fewer than two samples of its own `up` yet', { threshold: want });
    const value = `${spacing.toFixed(1)} s measured`;
    return Math.abs(spacing - SCRAPE_INTERVAL_S) <= 1 ? pass(value, want) : fail(`samples arrive every ${spacing.toFixed(1)} s`, { value, threshold: want });
  },
};

export const rulesLoaded: Check = {
  id: 's1.prometheus.rules',
  title: 'Alert rules are loaded and evaluate without error',
  sprint: 1,
  async run(ctx) {
    const base = prometheusUrl(ctx.inventory);
    const info = await promGet<{ reloadConfigSuccess: boolean }>(base, '/api/v1/status/runtimeinfo');
    if (!info.reloadConfigSuccess) {
      return fail('Prometheus failed to load its configuration or rule files at the last reload: it runs on an older version', {
        remedy: 'Read the prometheus log on the monitoring host; `dpgc sprint 1` validates with promtool before installing.',
      });
    }
    const rules = (await ruleGroups(base)).flatMap((g) => g.rules.filter((r) => r.type === 'alerting').map((r) => ({ ...r, file: g.file })));
    const expected = expectedAlertNames();
    const missing = expected.filter((n) => !rules.some((r) => r.name === n));
    const broken = rules.filter((r) => r.health === 'err').map((r) => `${r.name} (${r.file}): ${r.lastError ?? 'error'}`);
    const value = `${rules.length} alerting rules`;
    if (missing.length || broken.length) {
      return fail([...(missing.length ? [`not loaded: ${missing.join(', ')}`] : []), ...broken.map((b) => `fails to evaluate: ${b}`)].join('\n'), { value, threshold: `${expected.length} rules, none failing` });
    }
    return pass(value, `${expected.length} rules, none failing`);
  },
};

export const dashboardQueries: Check = {
  id: 's1.grafana.dashboards',
  title: 'Dashboards: every panel query returns data (or Grafana serves them)',
  sprint: 1,
  async run(ctx) {
    const url = ctx.inventory.grafana.url;
    if (url) {
      const problems = await grafanaApiProblems(url, await ctx.secrets.get('grafana_admin'));
      const value = `${DASHBOARD_UIDS.length} dashboards via ${url}`;
      return problems.length ? fail(problems.join('\n'), { value, threshold: 'healthy, datasource and dashboards present' }) : pass(value, 'Grafana API');
    }
    const base = prometheusUrl(ctx.inventory);
    const all = dashboards().flatMap((d) => panelQueries(d.dashboard).map((q) => ({ ...q, dashboard: d.dashboard.title })));
    // A target that just came back has data after its next scrape, and a rate after two: give empty
    // panels two scrape intervals, longer right after Prometheus itself started.
    const up = Date.now() - Date.parse((await promGet<{ startTime: string }>(base, '/api/v1/status/runtimeinfo')).startTime);
    const attempts = 1 + Math.ceil(Math.max(2 * SCRAPE_INTERVAL_S * 1000 + 5000, 90_000 - up) / 5000);
    let problems: string[] = [];
    for (let attempt = 0; attempt < attempts; attempt++) {
      problems = [];
      for (const q of all) {
        const r = await promQuery(base, q.expr);
        if (r.error) problems.push(`${q.dashboard} / ${q.panel} [${q.refId}]: query error: ${r.error}`);
        else if (!r.result.length) problems.push(`${q.dashboard} / ${q.panel} [${q.refId}]: no data for ${q.expr}`);
      }
      if (!problems.length || problems.some((p) => p.includes('query error'))) break;
      await sleep(5000);
    }
    const value = `${all.length - problems.length}/${all.length} panel queries with data`;
    return problems.length ? fail(problems.join('\n'), { value, threshold: 'all' }) : pass(value, 'all');
  },
};

export const VERIFY_POOL = { agents: 40, durationS: 10 };

export const poolTestCheck: Check = {
  id: 's1.pool.test',
  title: `${VERIFY_POOL.agents} concurrent agents through PgBouncer: no timeouts, no pool exhaustion, no errors`,
  sprint: 1,
  async run(ctx) {
    const r = await poolTest(ctx, VERIFY_POOL);
    const value = `${r.agentsSustained}/${r.agents} agents, ${r.opsPerSecond} ops/s, p99 ${r.latencyMs.p99} ms, ${r.errors} errors`;
    return r.passed ? pass(value, `${VERIFY_POOL.agents} agents, 0 errors`) : fail(formatReport(r), { value, threshold: `${VERIFY_POOL.agents} agents, 0 errors` });
  },
};

export function sprint1Checks(): Check[] {
  return [pgbouncerPools, pgbouncerScram, prometheusTargets, scrapeInterval, rulesLoaded, dashboardQueries, poolTestCheck];
}
