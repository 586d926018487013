import type { Inventory } from '../config/schema.js';
import { HostError } from '../errors.js';
import type { Change } from '../plan/step.js';
import { sleep, waitUntil } from '../wait.js';
import { clientTls } from './deployed.js';
import { ensurePgbouncerExporter } from './exporters.js';
import { ensureGrafanaFiles, reloadGrafanaDatasources } from './grafana.js';
import { ensureMetricsWeb, metricsUser, type MetricsCtx, type MetricsWeb } from './metrics-web.js';
import { ensurePrometheus, metricsEndpoints, monitoredSprint, prometheusTarget, scrapeTargets, SCRAPE_INTERVAL_S } from './prometheus.js';
import type { RotationCtx } from './rotation.js';
import { webGet, webTarget } from './web-client.js';

/**
 * `dpgc rotate --role metrics_web`: the metrics endpoints' basic auth,
 * without a refused scrape. exporter-toolkit's web config holds one bcrypt
 * hash per user name, and each user name is tagged from its password
 * (metricsUser), so the old and the new password are two users:
 *
 * 1. every host's web config (and the PgBouncer exporter's users file)
 *    accepts both, each read on every request: nothing restarts; dpgc
 *    proves every endpoint takes both before any client moves;
 * 2. the clients move: Prometheus's scrape and alerting configs name the new
 *    user and its own password file, applied in one reload (Prometheus waits
 *    for the old scrape loops to finish); amtool's config; Grafana's
 *    datasource, provisioned again through its admin API when dpgc knows
 *    Grafana (grafana.url; else a Grafana found installed is named, to be
 *    restarted: it reads the datasource at start only). Then every metrics target scraped once more, up,
 *    and the notifier's send timeout passed (a batch of alerts sent before
 *    the reload goes out with the old user);
 * 3. the old user dropped everywhere, its password files removed.
 *
 * The rotate command recorded the new value as pending before, and commits it
 * after: a re-run does all three again with the same value, which is safe
 * from any point (step 1 accepts the old password again for a moment).
 */

/** Prometheus's default alertmanager `timeout` (dpgc sets none): the longest a send that began before the reload may use the old user. */
const NOTIFIER_TIMEOUT_MS = 10_000;

const monitoring = (inv: Pick<Inventory, 'hosts'>) => inv.hosts.filter((h) => h.roles.includes('monitoring'));

export async function changeMetricsWeb(ctx: RotationCtx, next: string): Promise<Change> {
  const inv = ctx.inventory;
  const ca = await clientTls(ctx);
  if (ca === undefined) return { changed: false, note: 'the metrics endpoints are plaintext and take no password before sprint 5: the new value is theirs from sprint 5 on' };
  const old = await ctx.secrets.get('metrics_web');
  const oldCtx: MetricsCtx = { inventory: inv, pool: ctx.pool, secrets: ctx.secrets };
  const newCtx: MetricsCtx = { ...oldCtx, secrets: { get: async (n) => (n === 'metrics_web' ? next : ctx.secrets.get(n)), clusterCa: () => ctx.secrets.clusterCa() } };
  const both = { tlsCa: ca, accept: [old, next] };
  const notes: string[] = [];

  // 1. Every endpoint takes both users.
  let accepting = false;
  for (const h of inv.hosts) {
    const n = await ctx.pool.node(h.name);
    const web = await ensureMetricsWeb(oldCtx, n, both);
    accepting = web.changed || accepting;
    // An exporter started by an older dpgc held the password in its environment: it restarts once onto the users file.
    if (h.roles.includes('pgbouncer')) {
      const e = await ensurePgbouncerExporter(oldCtx, n, { web: { tls: web.tls, changed: false } });
      if (e.changed) notes.push(`the PgBouncer exporter on ${h.name} ${e.note ?? 'changed'} (it reads the users file from now on)`);
    }
  }
  const sprint = await monitoredSprint(ctx, 5);
  const endpoints = metricsEndpoints(inv, sprint);
  await Promise.all(endpoints.map((e) => accepts(e, ca, [old, next], true)));
  if (accepting) notes.push(`${endpoints.length} endpoints on ${inv.hosts.length} hosts take ${metricsUser(old)} and ${metricsUser(next)}`);

  // 2. The clients move to the new user. The web config stays as in step 1.
  const nextWeb: MetricsWeb = { ca, username: metricsUser(next), password: next };
  for (const h of monitoring(inv)) {
    const n = await ctx.pool.node(h.name);
    const web = await ensureMetricsWeb(newCtx, n, both);
    const since = Date.now();
    const p = await ensurePrometheus(newCtx, n, sprint, { tlsCa: ca, web });
    if (p.changed) {
      notes.push(`Prometheus on ${h.name} ${p.note ?? 'reloaded'} onto ${nextWeb.username}`);
      await scrapedSince(inv, nextWeb, since, sprint);
      await sleep(Math.max(0, since + NOTIFIER_TIMEOUT_MS - Date.now()));
    }
    if (await ensureGrafanaFiles(inv, n, nextWeb)) notes.push(`Grafana's datasource on ${h.name} names ${nextWeb.username}`);
  }
  const grafana = await reloadGrafanaDatasources(inv, ctx.secrets);
  if (grafana) notes.push(grafana);
  else if (await grafanaInstalled(ctx)) {
    // Without grafana.url dpgc cannot reach Grafana, which reads its datasource at start only.
    const w = "Grafana is installed on the monitoring host and grafana.url is not in the inventory, so dpgc cannot have it provision its datasource again: restart Grafana now (until then its queries to Prometheus are refused), or set grafana.url (and grafana_admin) for the next rotation";
    ctx.logger.warn(w);
    notes.push('Grafana not reloaded (no grafana.url): restart it');
  }

  // 3. The old user dropped.
  const alone = { tlsCa: ca, accept: [next] };
  let dropped = false;
  for (const h of inv.hosts) dropped = (await ensureMetricsWeb(newCtx, await ctx.pool.node(h.name), alone)).changed || dropped;
  if (dropped) notes.push(`${metricsUser(old)} dropped on every host`);
  return notes.length ? { changed: true, note: notes.join('; ') } : { changed: false, note: 'already in place' };
}

/** Grafana's group on a monitoring host: Grafana is installed there (as ensureGrafanaFiles decides whose its password file is). */
async function grafanaInstalled(ctx: RotationCtx): Promise<boolean> {
  for (const h of monitoring(ctx.inventory)) {
    const n = await ctx.pool.node(h.name);
    if ((await n.host.exec(['getent', 'group', 'grafana'], { mutates: false, allowFailure: true })).exitCode === 0) return true;
  }
  return false;
}

/**
 * Every metrics endpoint takes the new password and refuses the old one.
 * Prometheus is not waited on again: step 2 saw every target scraped up after
 * the reload, so with the new user, and dropping the old one changed nothing
 * it uses.
 */
export async function verifyMetricsWeb(ctx: RotationCtx, next: string, old: string): Promise<Change> {
  const inv = ctx.inventory;
  const ca = await clientTls(ctx);
  if (ca === undefined) return { changed: false, note: 'nothing serves it before sprint 5' };
  const sprint = await monitoredSprint(ctx, 5);
  const endpoints = metricsEndpoints(inv, sprint);
  await Promise.all(endpoints.map((e) => accepts(e, ca, [next], true)));
  if (old !== next) await Promise.all(endpoints.map((e) => accepts(e, ca, [old], false)));
  return { changed: false, note: `${endpoints.length} endpoints take ${metricsUser(next)} and refuse ${metricsUser(old)}` };
}

/** The endpoint answers 200 (`want`) or 401 to each password under its user name; waits a little, for a file being written. */
async function accepts(e: { host: string; what: string; hostPort: string; path: string }, ca: string, passwords: string[], want: boolean): Promise<void> {
  for (const password of passwords) {
    const target = webTarget(e.hostPort, { ca, username: metricsUser(password), password });
    await waitUntil(
      async (seen) => {
        const s = await webGet(target, e.path, { timeoutMs: 5000 }).then((r) => r.status, (x: Error) => (seen(x.message), 0));
        seen(`HTTP ${s}`);
        return (want ? s === 200 : s === 401) || undefined;
      },
      { timeoutMs: 10_000, everyMs: 250 },
      `${e.what} on ${e.host} (${e.hostPort}) ${want ? 'taking' : 'refusing'} ${metricsUser(password)}`,
    );
  }
}

/** Prometheus has scraped every metrics target since `since`, and each was up: the clients' side of the switch works. */
async function scrapedSince(inv: Inventory, web: MetricsWeb, since: number, sprint: number): Promise<void> {
  const expected = scrapeTargets(inv, sprint).filter((t) => t.web);
  const prom = prometheusTarget(inv, web);
  await waitUntil(
    async (seen) => {
      const body = JSON.parse((await webGet(prom, '/api/v1/targets?state=active', { timeoutMs: 5000 })).body) as { data?: { activeTargets?: { labels: Record<string, string>; health: string; lastScrape: string; lastError: string }[] } };
      const targets = body.data?.activeTargets ?? [];
      const bad = expected.flatMap((e) => {
        const t = targets.find((x) => x.labels['job'] === e.job && x.labels['instance'] === e.instance);
        if (!t || Date.parse(t.lastScrape) < since) return [`${e.job} on ${e.host}: not scraped yet`];
        return t.health === 'up' ? [] : [`${e.job} on ${e.host}: ${t.health} ${t.lastError}`];
      });
      if (bad.some((b) => !b.endsWith('not scraped yet'))) throw new HostError(`Prometheus fails to scrape with the new metrics user: ${bad.join('; ')}`, { hint: 'Run `dpgc rotate` again: the rotation is still pending and completes on a re-run (the old user is still accepted).' });
      seen(bad.join('; '));
      return bad.length === 0 || undefined;
    },
    { timeoutMs: 2 * SCRAPE_INTERVAL_S * 1000 + 5000, everyMs: 1000 },
    'Prometheus scraping every metrics target with the new user',
  );
}
