import { sprint1Checks } from '../src/checks/sprint1.js';
import { ensureLoginRole } from '../src/components/databases.js';
import { firstPostgres, ROLES_DB, superuserOn } from '../src/components/endpoints.js';
import {
  ensureExporter,
  ensurePostgresExporter,
  exporterFiles,
  nodeExporterService,
  pgbouncerExporterEnv,
  pgbouncerExporterScript,
  pgbouncerExporterService,
} from '../src/components/exporters.js';
import { ensureGrafanaFiles } from '../src/components/grafana.js';
import { disableDistroUnit } from '../src/components/ha-packages.js';
import { ensurePgbouncer } from '../src/components/pgbouncer.js';
import { pgbouncerTargets } from '../src/components/haproxy.js';
import { installPackages } from '../src/components/packages.js';
import { ensurePrometheus, monitoredSprint } from '../src/components/prometheus.js';
import type { RunContext } from '../src/context.js';
import { withClient } from '../src/db/client.js';
import { liveOnly, parallel, perHost, sequence, step, type Task } from '../src/tasks/run.js';
import type { Sprint } from './types.js';

/**
 * Sprint 1: one address for applications (PgBouncer, SCRAM end to end), and
 * eyes on everything (exporters, Prometheus with alert rules that can fire,
 * Grafana dashboards), then a real pool test as the proof.
 */

/** Debian packages per role, and the distribution units that would take our ports on systemd hosts. */
const PACKAGES = {
  all: { pkgs: ['prometheus-node-exporter'], units: ['prometheus-node-exporter.service'] },
  pgbouncer: { pkgs: ['pgbouncer', 'python3', 'python3-psycopg2'], units: ['pgbouncer.service'] },
  base: { pkgs: ['prometheus-postgres-exporter'], units: ['prometheus-postgres-exporter.service'] },
  monitoring: { pkgs: ['prometheus'], units: ['prometheus.service'] },
};

function packagesFor(inv: RunContext['inventory'], host: { name: string; roles: string[] }) {
  const sets = [PACKAGES.all];
  if (host.roles.includes('pgbouncer')) sets.push(PACKAGES.pgbouncer);
  if (firstPostgres(inv).name === host.name) sets.push(PACKAGES.base);
  if (host.roles.includes('monitoring')) sets.push(PACKAGES.monitoring);
  return { pkgs: sets.flatMap((s) => s.pkgs), units: sets.flatMap((s) => s.units) };
}

export const sprint1: Sprint = {
  id: 1,
  title: 'PgBouncer, Prometheus with exporters and alert rules, Grafana dashboards, pool capacity',
  roles: ['postgres', 'pgbouncer', 'monitoring'],

  tasks(ctx) {
    const inv = ctx.inventory;
    const base = firstPostgres(inv);
    const node = (name: string) => ctx.pool.node(name);
    const hosts = ctx.pool.specs();
    const installs = perHost(inv);
    const live = liveOnly(ctx.options.dryRun);

    return [
      installs(
        'Packages: PgBouncer, Prometheus and exporters',
        hosts.map((h) => {
          const p = packagesFor(inv, h);
          return step(`Install ${p.pkgs.join(', ')} on ${h.name}`, async () => {
            const n = await node(h.name);
            const r = await installPackages(n.host, p.pkgs);
            // dpgc runs these as its own services; Debian's units would bind the same ports.
            const units = await disableDistroUnit(n, p.units);
            return { changed: r.changed || units, ...(r.note ? { note: r.note } : {}) };
          });
        }),
      ),

      step(
        `Create the monitoring role ${ROLES_DB.monitoring.user} (pg_monitor, never superuser) on ${base.name}`,
        live(() =>
          withClient(ctx.secrets, superuserOn(inv, base), async (c) => {
            const login = await ensureLoginRole(c, ROLES_DB.monitoring.user, ctx.secrets, ROLES_DB.monitoring.secret);
            const r = await c.query<{ sup: boolean; mon: boolean }>(
              "SELECT rolsuper AS sup, pg_has_role(oid, 'pg_monitor', 'MEMBER') AS mon FROM pg_roles WHERE rolname = $1",
              [ROLES_DB.monitoring.user],
            );
            const cur = r.rows[0]!;
            if (cur.sup) await c.query(`ALTER ROLE ${ROLES_DB.monitoring.user} NOSUPERUSER`);
            if (!cur.mon) await c.query(`GRANT pg_monitor TO ${ROLES_DB.monitoring.user}`);
            return { changed: login.changed || cur.sup || !cur.mon };
          }),
        ),
      ),

      parallel(
        'PgBouncer in front of the base instance',
        ctx.pool.specs('pgbouncer').map((h) =>
          // After sprint 3, PgBouncer stays pointed at HAProxy (the base host may be a replica by then).
          step(`Configure PgBouncer on ${h.name} (SCRAM, both databases) and start or reload it`, live(async () => ensurePgbouncer(ctx, await node(h.name), await pgbouncerTargets(inv)))),
        ),
      ),

      parallel('Exporters', [
        ...hosts.map((h) => step(`Start node_exporter on ${h.name}`, async () => ensureExporter(await node(h.name), nodeExporterService(inv, await node(h.name)), []))),
        step(`Start postgres_exporter on ${base.name}`, async () => ensurePostgresExporter(inv, await node(base.name), ctx.secrets)),
        ...ctx.pool.specs('pgbouncer').map((h) =>
          step(`Start the PgBouncer exporter on ${h.name}`, async () => {
            const n = await node(h.name);
            const f = exporterFiles(n);
            return ensureExporter(n, pgbouncerExporterService(inv, n), [
              { path: f.pgbouncerScript, content: pgbouncerExporterScript(), mode: 0o755 },
              { path: f.pgbouncerEnv, content: await pgbouncerExporterEnv(inv, n, ctx.secrets), mode: 0o600 },
            ]);
          }),
        ),
      ]),

      ...ctx.pool.specs('monitoring').map(
        (h): Task =>
          sequence(`Monitoring on ${h.name}`, [
            step(`Validate the alert rules and scrape config with promtool, install them on ${h.name}, start or reload Prometheus`, async () =>
              ensurePrometheus(inv, await node(h.name), await monitoredSprint(inv.file, 1)),
            ),
            step(`Render the Grafana datasource and dashboards on ${h.name}`, async () => ensureGrafanaFiles(inv, await node(h.name))),
          ]),
      ),
    ];
  },

  criteria: (_ctx: RunContext) => sprint1Checks(),
};
