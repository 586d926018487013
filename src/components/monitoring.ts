import type { Node } from '../hosts/pool.js';
import { ensureAlertmanager } from './alertmanager.js';
import { ensureGrafanaFiles } from './grafana.js';
import { mergeOutcomes } from './exporters.js';
import { ensureMetricsWeb, type MetricsCtx, type MetricsTlsChoice } from './metrics-web.js';
import { ensurePrometheus, monitoredSprint } from './prometheus.js';

/**
 * A monitoring host's daemons as `o` says (sprint 5: TLS and basic auth):
 * Alertmanager first (Prometheus's new configuration sends to it), then
 * Prometheus (scraping every target of the live cluster, sending alerts,
 * serving its API), then Grafana's datasource.
 */
export async function ensureMonitoring(ctx: MetricsCtx, node: Node, atLeastSprint: number, o: MetricsTlsChoice = {}): Promise<{ changed: boolean; note?: string }> {
  const web = await ensureMetricsWeb(ctx, node, o);
  const shared = { ...o, web: { tls: web.tls, changed: false } };
  const a = await ensureAlertmanager(ctx, node, shared);
  const p = await ensurePrometheus(ctx, node, await monitoredSprint(ctx, atLeastSprint), shared);
  const g = await ensureGrafanaFiles(ctx.inventory, node, web.tls);
  return mergeOutcomes(
    web,
    { changed: a.changed, ...(a.note ? { note: `Alertmanager ${a.note}` } : {}) },
    { changed: p.changed, ...(p.note ? { note: `Prometheus ${p.note}` } : {}) },
    { changed: g, ...(g ? { note: 'Grafana datasource rewritten' } : {}) },
  );
}
