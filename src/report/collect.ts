import { readFileSync } from 'node:fs';
import type { Readiness } from '../checks/waivers.js';
import { prometheusApi, promGet, type PromSample } from '../checks/prom-api.js';
import { backupRows } from '../components/backups.js';
import { clusterView } from '../components/cluster.js';
import { drillHistory } from '../components/drill-log.js';
import { superuserOn } from '../components/endpoints.js';
import { memberStatus, restTarget } from '../components/patroni.js';
import { repoHost, repoNode, stanzaInfo } from '../components/pgbackrest.js';
import type { RunContext } from '../context.js';
import { withClient } from '../db/client.js';
import { parseDetail } from './drills.js';
import type { BackupSection, DrillRow, LagSection, ReportData, Topology } from './model.js';

/**
 * Reads what the report shows from the live cluster, read-only. Each part is
 * fetched on its own and a failure becomes that section's `error`: a report
 * about a broken cluster is when one is needed most.
 */
type Ctx = Pick<RunContext, 'inventory' | 'secrets' | 'pool' | 'logger'>;

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';

export async function collectReport(ctx: Ctx, o: { readiness?: Readiness; drillLimit?: number; now?: Date } = {}): Promise<ReportData> {
  const now = o.now ?? new Date();
  const [topology, drills, backups, lag] = await Promise.all([topologyOf(ctx), drillsOf(ctx, o.drillLimit ?? 50), backupsOf(ctx, o.readiness), lagOf(ctx, now)]);
  return {
    cluster: ctx.inventory.cluster,
    generatedAt: now.toISOString(),
    dpgcVersion: dpgcVersion(),
    topology,
    ...(o.readiness ? { readiness: o.readiness } : {}),
    drills,
    backups,
    lag,
  };
}

function dpgcVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Who runs what: the inventory's hosts, Patroni's roles, the leader's sync standby, and each member's versions. */
async function topologyOf(ctx: Ctx): Promise<Topology> {
  const inv = ctx.inventory;
  const hosts = inv.hosts.map((h) => ({ name: h.name, address: h.address, roles: [...h.roles] }));
  try {
    const view = await clusterView(ctx);
    const members = await Promise.all(
      view.members.map(async (m) => {
        const h = inv.hosts.find((x) => x.name === m.name)!;
        const [patroni, postgres] = await Promise.all([
          memberStatus(restTarget(inv, h)).then(
            (s) => s.patroni?.version,
            () => undefined,
          ),
          withClient(ctx.secrets, superuserOn(inv, h), async (c) => (await c.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]?.v).catch(() => undefined),
        ]);
        return {
          name: m.name,
          role: m.role,
          state: m.state,
          ...(m.timeline === undefined ? {} : { timeline: m.timeline }),
          ...(m.syncState ? { syncState: m.syncState } : {}),
          ...(m.lagBytes === undefined ? {} : { lagBytes: m.lagBytes }),
          ...(postgres ? { postgres } : {}),
          ...(patroni ? { patroni } : {}),
          ...(m.error ? { error: m.error } : {}),
        };
      }),
    );
    const sync = members.find((m) => m.syncState === 'sync' || m.syncState === 'quorum');
    return {
      hosts,
      members,
      ...(view.leader ? { leader: view.leader } : {}),
      ...(sync ? { syncStandby: sync.name } : {}),
      ...(view.etcd.leader ? { etcdLeader: view.etcd.leader } : {}),
      ...(view.membersError ? { error: view.membersError } : {}),
    };
  } catch (e) {
    return { hosts, members: [], error: `cluster view: ${firstLine(e)}` };
  }
}

async function drillsOf(ctx: Ctx, limit: number): Promise<ReportData['drills']> {
  try {
    const rows = await drillHistory(ctx.inventory, ctx.secrets, limit);
    return {
      rows: rows.map((r): DrillRow => {
        const detail = parseDetail(r.detail);
        return { id: r.id, mode: r.mode, at: r.at.toISOString(), passed: r.passed, summary: r.summary, ...(detail ? { detail } : {}) };
      }),
    };
  } catch (e) {
    return { rows: [], error: `the drill log (dpgc.drill_log) could not be read: ${firstLine(e)}` };
  }
}

/** Sprint 4's repository, when the inventory has one and sprint 4 put pgBackRest's configuration there. */
async function backupsOf(ctx: Ctx, readiness: Readiness | undefined): Promise<BackupSection> {
  const inv = ctx.inventory;
  if (!inv.hosts.some((h) => h.roles.includes('backup'))) return { deployed: false, why: 'No host has the backup role: backups are sprint 4, not deployed on this cluster.' };
  let host: string;
  try {
    host = repoHost(inv).name;
    const node = await repoNode(inv, ctx.pool);
    const conf = await node.host.exec(['test', '-f', node.paths.pgbackrestConf], { mutates: false, allowFailure: true });
    if (conf.exitCode !== 0) return { deployed: false, why: `pgBackRest is not configured on ${host} yet (no ${node.paths.pgbackrestConf}): \`dpgc sprint 4\` deploys backups.` };
  } catch (e) {
    return { deployed: false, why: `backups: ${firstLine(e)}` };
  }
  const item = readiness?.items.find((i) => i.id === 's4.pitr.drill');
  const pitr = item ? { pitr: { verdict: item.verdict, measured: true, ...(item.value === undefined ? {} : { value: String(item.value) }), ...(item.detail ? { detail: item.detail } : {}) } } : {};
  try {
    return { deployed: true, repoHost: host, rows: backupRows(await stanzaInfo(inv, await repoNode(inv, ctx.pool))), ...pitr };
  } catch (e) {
    return { deployed: true, repoHost: host, rows: [], error: `pgbackrest info: ${firstLine(e)}`, ...pitr };
  }
}

/** Replica lag over the last hour, where the exporters measure it (on each replica). */
export const LAG_QUERY = 'pg_recovery_lag_seconds and on (instance) pg_recovery_in_recovery == 1';

async function lagOf(ctx: Ctx, now: Date): Promise<LagSection> {
  const to = Math.floor(now.getTime() / 1000);
  const from = to - 3600;
  const empty = { series: [], from, to };
  if (!ctx.inventory.hosts.some((h) => h.roles.includes('monitoring'))) return { ...empty, error: 'No host has the monitoring role: no Prometheus to ask.' };
  try {
    const data = await promGet<{ result: PromSample[] }>(await prometheusApi(ctx), `/api/v1/query_range?query=${encodeURIComponent(LAG_QUERY)}&start=${from}&end=${to}&step=15`);
    return {
      from,
      to,
      series: data.result
        .map((s) => ({ instance: s.metric['instance'] ?? '?', points: (s.values ?? []).map(([t, v]): [number, number] => [t, Number(v)]) }))
        .sort((a, b) => a.instance.localeCompare(b.instance)),
    };
  } catch (e) {
    return { ...empty, error: `Prometheus: ${firstLine(e)}` };
  }
}
