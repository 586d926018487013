import { basename } from 'node:path';
import type { Inventory } from '../config/schema.js';
import type { Credentials } from '../db/client.js';
import { HostError } from '../errors.js';
import type { Node } from '../hosts/pool.js';
import { render, templateText } from '../templates.js';
import { prometheusTarget, SCRAPE_INTERVAL_S } from './prometheus.js';
import { ensureGroupDir, metricsFiles, removeStrayFiles, type MetricsWeb } from './metrics-web.js';

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

/**
 * `tls`: Prometheus serves TLS with basic auth; Grafana verifies it against
 * the CA and sends the password, both read from files when it provisions the
 * datasource (`$__file{}`), so this file holds no secret.
 */
export function renderDatasource(inv: Pick<Inventory, 'hosts' | 'ports'>, tls?: MetricsWeb & { caFile: string; passwordFile: string }): string {
  return render('grafana/datasource.yml.eta', {
    uid: DATASOURCE_UID,
    url: prometheusTarget(inv, tls).base,
    scrapeInterval: `${SCRAPE_INTERVAL_S}s`,
    tls: tls && { username: tls.username, caFile: tls.caFile, passwordFile: tls.passwordFile },
  });
}

export function renderDashboardProvider(paths: Pick<Node['paths'], 'grafanaDashboards'>): string {
  return render('grafana/dashboards.yml.eta', { dashboardsDir: paths.grafanaDashboards });
}

/**
 * Provisioning files on the monitoring host; Grafana picks up dashboard
 * changes by itself. With `tls`, the password for the datasource too, in a
 * file named after its user (the datasource and the password it reads change
 * together), readable by Grafana's group (root's where Grafana is not
 * installed yet: a later run, once the group exists, hands it over). Grafana
 * reads it when it provisions the datasource and keeps it in its database,
 * so another user's file is removed at once.
 */
export async function ensureGrafanaFiles(inv: Inventory, node: Node, tls?: MetricsWeb): Promise<boolean> {
  const f = grafanaFiles(node.paths);
  const m = metricsFiles(node.paths);
  let changed = false;
  if (tls) {
    const group = (await node.host.exec(['getent', 'group', 'grafana'], { mutates: false, allowFailure: true })).exitCode === 0 ? 'grafana' : 'root';
    changed = (await ensureGroupDir(node, m.grafanaDir, group)) || changed;
    changed = (await node.host.writeFile(m.grafanaPassword(tls.username), tls.password, { mode: 0o640, owner: 'root', group })).changed || changed;
    changed = (await removeStrayFiles(node, m.grafanaDir, [basename(m.grafanaPassword(tls.username))], "password of a metrics user Grafana's datasource no longer uses")) || changed;
  }
  const files: [string, string][] = [
    [f.datasource, renderDatasource(inv, tls && { ...tls, caFile: m.ca, passwordFile: m.grafanaPassword(tls.username) })],
    [f.provider, renderDashboardProvider(node.paths)],
    ...dashboards().map((d): [string, string] => [f.dashboard(d.file), d.text]),
  ];
  for (const [path, text] of files) changed = (await node.host.writeFile(path, text, { mode: 0o644 })).changed || changed;
  return changed;
}

/**
 * Grafana provisions its datasources again (Grafana's admin API, the
 * `grafana_admin` password; only with `grafana.url` set): it reads the
 * datasource file and the password file it names, without a restart.
 * Undefined when dpgc has no Grafana to ask.
 */
export async function reloadGrafanaDatasources(inv: Pick<Inventory, 'grafana'>, secrets: Pick<Credentials, 'get'>): Promise<string | undefined> {
  const url = inv.grafana.url;
  if (!url) return undefined;
  const auth = `Basic ${Buffer.from(`admin:${await secrets.get('grafana_admin')}`).toString('base64')}`;
  const res = await fetch(`${url.replace(/\/+$/, '')}/api/admin/provisioning/datasources/reload`, { method: 'POST', headers: { authorization: auth }, signal: AbortSignal.timeout(15_000) });
  if (res.status !== 200) {
    throw new HostError(`Grafana at ${url} did not reload its datasources: HTTP ${res.status}`, { hint: 'Grafana keeps the old metrics credentials until it provisions again: restart Grafana, or fix what it says and run `dpgc rotate` again.' });
  }
  return `Grafana at ${url} provisioned its datasources again`;
}
