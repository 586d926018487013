import { dashboardQueries } from '../src/checks/grafana.js';
import { pgbouncerPools, pgbouncerScram, poolTestCheck } from '../src/checks/pgbouncer.js';
import { prometheusTargets, rulesLoaded, scrapeInterval } from '../src/checks/prometheus.js';
import { alertmanagerUp, alertsRouted } from '../src/checks/alerting.js';
import { ensureAlertmanager, ensureLabReceiver } from '../src/components/alertmanager.js';
import { ensureMonitoringRole } from '../src/components/databases.js';
import { firstPostgres, ROLES_DB, superuserOn } from '../src/components/endpoints.js';
import { ensureNodeExporter, ensurePgbouncerExporter, ensurePostgresExporter } from '../src/components/exporters.js';
import { ensureGrafanaFiles } from '../src/components/grafana.js';
import { ensureMetricsWeb } from '../src/components/metrics-web.js';
import { disableDistroUnit } from '../src/components/ha-packages.js';
import { ensurePgbouncer } from '../src/components/pgbouncer.js';
import { pgbouncerTargets } from '../src/components/haproxy.js';
import { installPackages } from '../src/components/packages.js';
import { ensurePrometheus, monitoredSprint } from '../src/components/prometheus.js';
import type { RunContext } from '../src/context.js';
import { readsLive, sqlStep } from '../src/plan/sql.js';
import { onHost, parallel, perHost, sequence, type PlanNode } from '../src/plan/step.js';
import type { Sprint } from './types.js';

/**
 * Sprint 1: one address for applications (PgBouncer, SCRAM end to end), and
 * eyes on everything (exporters, Prometheus with alert rules that can fire,
 * Alertmanager sending them to the inventory's receivers, Grafana dashboards), then a real pool test as the proof.
 * On a cluster sprint 5 has secured, the metrics endpoints stay behind TLS and basic auth (components/metrics-web.ts).
 */

/** Debian packages per role, and the distribution units that would take our ports on systemd hosts. */
const PACKAGES = {
  all: { pkgs: ['prometheus-node-exporter'], units: ['prometheus-node-exporter.service'] },
  pgbouncer: { pkgs: ['pgbouncer', 'python3', 'python3-psycopg2'], units: ['pgbouncer.service'] },
  base: { pkgs: ['prometheus-postgres-exporter'], units: ['prometheus-postgres-exporter.service'] },
  monitoring: { pkgs: ['prometheus', 'prometheus-alertmanager'], units: ['prometheus.service', 'prometheus-alertmanager.service'] },
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
  title: 'PgBouncer, Prometheus with exporters and alert rules, Alertmanager, Grafana dashboards, pool capacity',
  roles: ['postgres', 'pgbouncer', 'monitoring'],

  tasks(ctx) {
    const inv = ctx.inventory;
    const base = firstPostgres(inv);
    const node = (name: string) => ctx.pool.node(name);
    const hosts = ctx.pool.specs();
    const installs = perHost(inv);

    return [
      installs(
        'Packages: PgBouncer, Prometheus, Alertmanager and exporters',
        hosts.map((h) => {
          const p = packagesFor(inv, h);
          return onHost('package', `Install ${p.pkgs.join(', ')} on ${h.name}`, h.name, async () => {
            const n = await node(h.name);
            const r = await installPackages(n.host, p.pkgs);
            // dpgc runs these as its own services; Debian's units would bind the same ports.
            const units = await disableDistroUnit(n, p.units);
            return { changed: r.changed || units, ...(r.note ? { note: r.note } : {}) };
          });
        }),
      ),

      sqlStep(`Create the monitoring role ${ROLES_DB.monitoring.user} (pg_monitor, never superuser) on ${base.name}`, base.name, {
        secrets: ctx.secrets,
        endpoint: async () => superuserOn(inv, base),
        run: (c) => ensureMonitoringRole(c, ctx.secrets),
      }),

      parallel(
        'PgBouncer in front of the base instance',
        ctx.pool.specs('pgbouncer').map((h) =>
          // After sprint 3, PgBouncer stays pointed at HAProxy (the base host may be a replica by then).
          readsLive('file', `Configure PgBouncer on ${h.name} (SCRAM, both databases) and start or reload it`, h.name, async () => ensurePgbouncer(ctx, await node(h.name), await pgbouncerTargets(ctx))),
        ),
      ),

      parallel('Exporters', [
        ...hosts.map((h) => onHost('service', `Start node_exporter on ${h.name}`, h.name, async () => ensureNodeExporter(ctx, await node(h.name)))),
        onHost('service', `Start postgres_exporter on ${base.name}`, base.name, async () => ensurePostgresExporter(ctx, await node(base.name))),
        ...ctx.pool.specs('pgbouncer').map((h) => onHost('service', `Start the PgBouncer exporter on ${h.name}`, h.name, async () => ensurePgbouncerExporter(ctx, await node(h.name)))),
      ]),

      ...ctx.pool.specs('monitoring').map(
        (h): PlanNode =>
          sequence(`Monitoring on ${h.name}`, [
            ...(ctx.inventory.alerting.lab_receiver
              ? [onHost('service', `Start the lab's alert receiver on ${h.name} (port ${ctx.inventory.alerting.lab_receiver.port})`, h.name, async () => ensureLabReceiver(inv, await node(h.name)))]
              : []),
            // Before Prometheus: its new config points at Alertmanager, which should be there to take alerts.
            onHost('file', `Validate the Alertmanager config with amtool (receivers: ${inv.alerting.receivers.map((r) => r.name).join(', ') || 'none'}), install it on ${h.name}, start or reload Alertmanager`, h.name, async () =>
              ensureAlertmanager(ctx, await node(h.name)),
            ),
            onHost('file', `Validate the alert rules and scrape config with promtool, install them on ${h.name}, start or reload Prometheus`, h.name, async () =>
              ensurePrometheus(ctx, await node(h.name), await monitoredSprint(ctx, 1)),
            ),
            onHost('file', `Render the Grafana datasource and dashboards on ${h.name}`, h.name, async () => {
              const n = await node(h.name);
              return ensureGrafanaFiles(inv, n, (await ensureMetricsWeb(ctx, n)).tls);
            }),
          ]),
      ),
    ];
  },

  criteria: [pgbouncerPools, pgbouncerScram, prometheusTargets, scrapeInterval, rulesLoaded, alertmanagerUp, alertsRouted, dashboardQueries, poolTestCheck],
};
