import { ensurePostgresExporter } from '../src/components/exporters.js';
import { firstPostgres } from '../src/components/endpoints.js';
import { ensurePrometheus, monitoredSprint } from '../src/components/prometheus.js';
import type { RunContext } from '../src/context.js';
import { onHost, type PlanNode } from '../src/plan/step.js';

/**
 * What sprints 2 and 3 add to sprint 1's monitoring: Prometheus learns the
 * new targets (etcd and HAProxy in sprint 2, Patroni and every PostgreSQL
 * node in sprint 3), and each replica gets its postgres_exporter.
 */
export function haMonitoringTasks(ctx: RunContext, sprint: 2 | 3): PlanNode[] {
  const inv = ctx.inventory;
  const node = (name: string) => ctx.pool.node(name);
  const replicas = sprint === 3 ? ctx.pool.specs('postgres').filter((h) => h.name !== firstPostgres(inv).name) : [];
  return [
    ...replicas.map((h) =>
      onHost('service', `Start postgres_exporter on ${h.name}`, h.name, async () => ensurePostgresExporter(ctx, await node(h.name))),
    ),
    ...ctx.pool.specs('monitoring').map((h) =>
      onHost('file', `Add sprint ${sprint}'s scrape targets to Prometheus on ${h.name}`, h.name, async () => ensurePrometheus(ctx, await node(h.name), await monitoredSprint(ctx, sprint))),
    ),
  ];
}
