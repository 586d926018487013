import { grafanaApiProblems } from './grafana-api.js';
import { dashboards, dashboardSprint, panelQueries } from '../components/grafana.js';
import { SCRAPE_INTERVAL_S } from '../components/prometheus.js';
import { prometheusApi, promGet, promQuery } from './prom-api.js';
import { fail, pass, type Check } from './types.js';
import { sleep } from '../wait.js';
import {  } from './common.js';

/** Grafana's criteria: every panel of the sprint's dashboards returns data from Prometheus. */

/**
 * Every panel query of a sprint's dashboards returns data, or, with
 * `grafana.url`, Grafana serves them. Each sprint judges the dashboards of
 * what it deploys, so the backup dashboard never holds sprint 1 back.
 */
export function dashboardsCheck(id: string, sprint: number, title: string): Check {
  return {
    id,
    title,
    sprint,
    kind: 'read',
    async run(ctx) {
      const mine = dashboards().filter((d) => dashboardSprint(d.file) === sprint);
      const url = ctx.inventory.grafana.url;
      if (url) {
        const uids = mine.map((d) => d.dashboard.uid);
        const problems = await grafanaApiProblems(url, await ctx.secrets.get('grafana_admin'), 'admin', uids);
        const value = `${uids.length} dashboards via ${url}`;
        return problems.length ? fail(problems.join('\n'), { value, threshold: 'healthy, datasource and dashboards present' }) : pass(value, 'Grafana API');
      }
      const base = await prometheusApi(ctx);
      const all = mine.flatMap((d) => panelQueries(d.dashboard).map((q) => ({ ...q, dashboard: d.dashboard.title })));
      // A target that just came back has data after its next scrape, and a rate after two: give empty
      // panels two scrape intervals, longer right after Prometheus itself started.
      const up = Date.now() - Date.parse((await promGet<{ startTime: string }>(base, '/api/v1/status/runtimeinfo')).startTime);
      const attempts = 1 + Math.ceil(Math.max(2 * SCRAPE_INTERVAL_S * 1000 + 5000, 90_000 - up) / 5000);
      let problems: string[] = [];
      for (let attempt = 0; attempt < attempts; attempt++) {
        // Every panel's query at once (Prometheus answers them concurrently), problems in the dashboards' order.
        const answers = await Promise.all(all.map((q) => promQuery(base, q.expr)));
        problems = all.flatMap((q, i) => {
          const r = answers[i]!;
          if (r.error) return [`${q.dashboard} / ${q.panel} [${q.refId}]: query error: ${r.error}`];
          return r.result.length ? [] : [`${q.dashboard} / ${q.panel} [${q.refId}]: no data for ${q.expr}`];
        });
        if (!problems.length || problems.some((p) => p.includes('query error'))) break;
        await sleep(5000);
      }
      const value = `${all.length - problems.length}/${all.length} panel queries with data`;
      return problems.length ? fail(problems.join('\n'), { value, threshold: 'all' }) : pass(value, 'all');
    },
  };
}

export const dashboardQueries: Check = dashboardsCheck('s1.grafana.dashboards', 1, 'Dashboards: every panel query returns data (or Grafana serves them)');
