import { DATASOURCE_UID, dashboards } from '../components/grafana.js';

/**
 * Grafana read through its HTTP API (when `grafana.url` is in the
 * inventory): healthy, dpgc's datasource provisioned and reaching
 * Prometheus, every dpgc dashboard loaded. Returns problems, one line each.
 */
export const DASHBOARD_UIDS = dashboards().map((d) => d.dashboard.uid);

export async function grafanaApiProblems(url: string, adminPassword: string, user = 'admin', uids: readonly string[] = DASHBOARD_UIDS): Promise<string[]> {
  const base = url.replace(/\/+$/, '');
  const auth = `Basic ${Buffer.from(`${user}:${adminPassword}`).toString('base64')}`;
  const get = async (path: string, withAuth = true): Promise<{ status: number; body: Record<string, unknown> }> => {
    try {
      const r = await fetch(`${base}${path}`, { headers: withAuth ? { authorization: auth } : {}, signal: AbortSignal.timeout(10_000) });
      return { status: r.status, body: ((await r.json().catch(() => ({}))) ?? {}) as Record<string, unknown> };
    } catch (e) {
      return { status: 0, body: { message: (e as Error).message } };
    }
  };
  const health = await get('/api/health', false);
  if (health.status !== 200 || health.body['database'] !== 'ok') return [`Grafana at ${base} is not healthy: /api/health answered ${health.status} ${JSON.stringify(health.body)}`];
  const problems: string[] = [];
  const ds = await get(`/api/datasources/uid/${DATASOURCE_UID}`);
  if (ds.status === 401 || ds.status === 403) return [`Grafana refused the admin credential (HTTP ${ds.status}): set grafana_admin in the secrets file to Grafana's admin password`];
  if (ds.status !== 200) problems.push(`datasource ${DATASOURCE_UID} is not provisioned (HTTP ${ds.status}); is ${'provisioning/datasources/dpgc.yml'} in Grafana's provisioning folder?`);
  else {
    const dh = await get(`/api/datasources/uid/${DATASOURCE_UID}/health`);
    if (dh.status !== 200) problems.push(`datasource ${DATASOURCE_UID} cannot reach Prometheus: ${typeof dh.body['message'] === 'string' ? dh.body['message'] : `HTTP ${dh.status}`}`);
  }
  for (const uid of uids) {
    const d = await get(`/api/dashboards/uid/${uid}`);
    if (d.status !== 200) problems.push(`dashboard ${uid} is not loaded (HTTP ${d.status})`);
  }
  return problems;
}
