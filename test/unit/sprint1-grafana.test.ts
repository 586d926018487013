import { execa } from 'execa';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { DASHBOARD_UIDS, grafanaApiProblems } from '../../src/checks/grafana-api.js';
import { medianSpacingS } from '../../src/checks/prom-api.js';
import { DATASOURCE_UID, dashboards, panelQueries, renderDashboardProvider, renderDatasource } from '../../src/components/grafana.js';
import { parseInventory } from '../../src/config/load.js';
import { labInventoryYaml } from '../../src/lab/inventory.js';

const inv = parseInventory(labInventoryYaml({ dir: '/tmp/dpgc-unit', subnet: '127.0.20' }), '/tmp/dpgc-unit.yaml').inventory!;

describe('Grafana provisioning', () => {
  it('points the datasource at the monitoring host, with a fixed uid the dashboards use', () => {
    const ds = parse(renderDatasource(inv)).datasources[0];
    expect(ds).toMatchObject({ uid: DATASOURCE_UID, url: 'http://127.0.20.10:9090', jsonData: { timeInterval: '15s' } });
    expect(parse(renderDashboardProvider({ grafanaDashboards: '/var/lib/grafana/dashboards' })).providers[0].options.path).toBe('/var/lib/grafana/dashboards');
  });

  it('four dashboards, every panel on dpgc datasource with at least one query', () => {
    const ds = dashboards();
    expect(ds.map((d) => d.dashboard.title)).toEqual(['dpgc: cluster overview', 'dpgc: PostgreSQL', 'dpgc: PgBouncer pools', 'dpgc: backups']);
    for (const { dashboard } of ds) {
      for (const p of dashboard.panels as unknown as { datasource: { uid: string }; targets: unknown[] }[]) {
        expect(p.datasource.uid).toBe(DATASOURCE_UID);
        expect(p.targets.length).toBeGreaterThan(0);
      }
    }
  });

  it('every panel query is valid PromQL (promtool parses it as a recording rule)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dpgc-dash-'));
    try {
      const rules = dashboards().flatMap((d) => panelQueries(d.dashboard).map((q, i) => ({ record: `dpgc:${d.dashboard.uid.replace(/-/g, '_')}:${i}`, expr: q.expr })));
      await writeFile(join(dir, 'q.yml'), stringify({ groups: [{ name: 'dashboards', rules }] }));
      const r = await execa('promtool', ['check', 'rules', join(dir, 'q.yml')], { reject: false });
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Grafana is not installable here (docs/lab-facts.md), so the API check is exercised
 * against a stand-in that answers the four endpoints it reads, with
 * Grafana's status codes; on real hosts it runs against Grafana itself.
 */
describe('Grafana API check', () => {
  let server: Server;
  let url: string;
  const state = { dashboards: new Set(DASHBOARD_UIDS), datasource: true, password: 'right-password-1' };
  beforeAll(async () => {
    server = createServer((req, res) => {
      const send = (code: number, body: unknown) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (req.url === '/api/health') return send(200, { database: 'ok', version: '10.4.0' });
      if (req.headers.authorization !== `Basic ${Buffer.from(`admin:${state.password}`).toString('base64')}`) return send(401, { message: 'Unauthorized' });
      if (req.url === `/api/datasources/uid/${DATASOURCE_UID}`) return state.datasource ? send(200, { uid: DATASOURCE_UID }) : send(404, { message: 'Data source not found' });
      if (req.url === `/api/datasources/uid/${DATASOURCE_UID}/health`) return send(200, { status: 'OK' });
      const m = /^\/api\/dashboards\/uid\/(.+)$/.exec(req.url ?? '');
      if (m && state.dashboards.has(m[1]!)) return send(200, { dashboard: { uid: m[1] } });
      return send(404, { message: 'Dashboard not found' });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.20.70', r));
    url = `http://127.0.20.70:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('passes when healthy with datasource and every dashboard', async () => {
    expect(await grafanaApiProblems(url, state.password)).toEqual([]);
  });
  it('names a missing dashboard and a missing datasource', async () => {
    state.dashboards.delete('dpgc-pgbouncer');
    state.datasource = false;
    const p = await grafanaApiProblems(url, state.password);
    state.dashboards.add('dpgc-pgbouncer');
    state.datasource = true;
    expect(p.join('\n')).toMatch(/datasource dpgc-prometheus is not provisioned \(HTTP 404\)/);
    expect(p.join('\n')).toMatch(/dashboard dpgc-pgbouncer is not loaded \(HTTP 404\)/);
  });
  it('says what to do about a refused credential', async () => {
    expect((await grafanaApiProblems(url, 'wrong'))[0]).toMatch(/set grafana_admin in the secrets file/);
  });
  it('reports an unreachable Grafana', async () => {
    expect((await grafanaApiProblems('http://127.0.20.71:1', 'x'))[0]).toMatch(/not healthy/);
  });
});

it('measures the scrape interval as the median sample spacing', () => {
  expect(medianSpacingS([[0, '1'], [15, '1'], [30, '1'], [60, '1'], [75, '1']])).toBe(15);
  expect(medianSpacingS([[0, '1']])).toBeUndefined();
});
