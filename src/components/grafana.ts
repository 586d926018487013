import type { Inventory } from '../config/schema.js';
import type { Node } from '../hosts/pool.js';
import { render, templateText } from '../templates.js';
import { prometheusUrl, SCRAPE_INTERVAL_S } from './prometheus.js';

/**
 * Grafana's side of monitoring: a datasource and four dashboards, rendered
 * to the monitoring host's provisioning folders. Grafana itself comes from
 * Grafana's apt repository on real hosts (not in Debian), and reads these at
 * start; dpgc never edits Grafana's database.
 */
export const DATASOURCE_UID = 'dpgc-prometheus';
export const DASHBOARD_FILES = ['cluster-overview.json', 'postgresql.json', 'pgbouncer-pools.json', 'backups.json'] as const;
/** The sprint whose metrics a dashboard shows, and whose criteria run its queries (all are provisioned from sprint 1). */
const DASHBOARD_SPRINT: Record<(typeof DASHBOARD_FILES)[number], number> = { 'cluster-overview.json': 1, 'postgresql.json': 1, 'pgbouncer-pools.json': 1, 'backups.json': 4 };
export const dashboardSprint = (file: string): number => DASHBOARD_SPRINT[file as (typeof DASHBOARD_FILES)[number]] ?? 1;

export interface Dashboard {
  uid: string;
  title: string;
  panels: { id: number; title: string; targets: { refId: string; expr: string }[] }[];
}

export function dashboards(): { file: string; text: string; dashboard: Dashboard }[] {
  return DASHBOARD_FILES.map((file) => {
    const text = templateText(`grafana/dashboards/${file}`);
    return { file, text, dashboard: JSON.parse(text) as Dashboard };
  });
}

/** Every query of every panel, named for a failure message. */
export function panelQueries(d: Dashboard): { panel: string; refId: string; expr: string }[] {
  return d.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));
}

export function grafanaFiles(paths: Pick<Node['paths'], 'grafanaProvisioning' | 'grafanaDashboards'>) {
  return {
    datasource: `${paths.grafanaProvisioning}/datasources/dpgc.yml`,
    provider: `${paths.grafanaProvisioning}/dashboards/dpgc.yml`,
    dashboard: (f: string) => `${paths.grafanaDashboards}/${f}`,
  };
}

export function renderDatasource(inv: Pick<Inventory, 'hosts' | 'ports'>): string {
  return render('grafana/datasource.yml.eta', { uid: DATASOURCE_UID, url: prometheusUrl(inv), scrapeInterval: `${SCRAPE_INTERVAL_S}s` });
}

export function renderDashboardProvider(paths: Pick<Node['paths'], 'grafanaDashboards'>): string {
  return render('grafana/dashboards.yml.eta', { dashboardsDir: paths.grafanaDashboards });
}

/** Provisioning files on the monitoring host; Grafana picks up dashboard changes by itself. */
export async function ensureGrafanaFiles(inv: Inventory, node: Node): Promise<boolean> {
  const f = grafanaFiles(node.paths);
  const files: [string, string][] = [
    [f.datasource, renderDatasource(inv)],
    [f.provider, renderDashboardProvider(node.paths)],
    ...dashboards().map((d): [string, string] => [f.dashboard(d.file), d.text]),
  ];
  let changed = false;
  for (const [path, text] of files) changed = (await node.host.writeFile(path, text, { mode: 0o644 })).changed || changed;
  return changed;
}
