import type { HostSpec, Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import type { RunContext } from '../context.js';
import { withClient } from '../db/client.js';
import { HostError } from '../errors.js';
import type { HostPool } from '../hosts/pool.js';
import { pgbouncerAdmin, superuserOn } from './endpoints.js';
import { liveClientEndpoints, endpointHealth, endpointStatus, etcdctlNode, memberList, type EndpointHealth } from './etcd.js';
import { showStat, type ServerStat } from './haproxy.js';
import { writableHost } from './databases.js';
import { settingsView, type SettingsView } from './sizing.js';
import { clusterCertificates, expiringCerts, nearestEnd } from './ca.js';
import { memberStatus, patroniView, restTarget, type ClusterMember } from './patroni.js';

/**
 * A read-only view of the live cluster, from the control machine: Patroni's
 * REST API for roles and states, the leader's pg_stat_replication for lag
 * and sync state, etcdctl for the DCS, HAProxy's admin socket, PgBouncer's
 * admin console, and the service manager for dead daemons. Every part is
 * fetched independently: one unreachable piece becomes an `error` field,
 * never a failed view. Used by `dpgc status`, checks and drills.
 */
/**
 * One Patroni member, however it was observed: the drills' fast poll fills
 * what GET /cluster says (role, state, timeline, Patroni's lag); `dpgc status`
 * and the checks place it on its inventory host and add the leader's
 * pg_stat_replication figures.
 */
export interface MemberView {
  name: string;
  /** The inventory host's address (absent in a view from Patroni's REST API alone). */
  address?: string;
  role: string;
  state: string;
  timeline?: number | undefined;
  /** Patroni's own lag figure from GET /cluster (bytes, or a word such as "unknown"). */
  lag?: number | string | undefined;
  /** Bytes of WAL the replica has not replayed yet (from the leader). */
  lagBytes?: number;
  /** Seconds the replica's replay is behind (pg_stat_replication.replay_lag; 0 when idle). */
  lagSeconds?: number;
  /** Leader's view of the replica's connection: streaming, catchup… */
  replication?: string;
  /** sync, async, potential, quorum (from the leader). */
  syncState?: string;
  error?: string;
}

/** A member placed on its inventory host (every member of a ClusterView). */
export type HostedMember = MemberView & { address: string };

export interface ServiceIssue {
  host: string;
  service: string;
  problem: string;
  remedy: string;
}

export interface ClusterView {
  at: string;
  scope: string;
  leader?: string;
  members: HostedMember[];
  membersError?: string;
  /** Patroni's maintenance mode (GET /cluster `pause`): no automatic failover while it lasts. */
  paused?: boolean;
  etcd: { endpoints: EndpointHealth[]; leader?: string; members?: string[]; error?: string };
  haproxy: { host: string; servers: ServerStat[]; error?: string }[];
  pgbouncer: { host: string; pools: Record<string, unknown>[]; error?: string }[];
  services: ServiceIssue[];
  /** PostgreSQL's key settings on the writable server, and where each came from. */
  settings?: SettingsView;
  /** The certificates dpgc issued (and the CA's): how many, the one that ends first, those ending within 30 days. */
  certificates: { count: number; nearest?: { where: string; file: string; notAfter?: string }; expiring: string[]; error?: string };
}

type Ctx = Pick<RunContext, 'inventory' | 'secrets' | 'pool'>;

export interface ReplicationRow {
  application_name: string;
  state: string;
  sync_state: string;
  lag_bytes: string | null;
  lag_s: string | null;
}

/** The leader's pg_stat_replication: one row per connected standby. */
export async function replicationRows(inv: Pick<Inventory, 'ports'>, secrets: Pick<Secrets, 'get'>, leader: Pick<HostSpec, 'name' | 'address'>): Promise<ReplicationRow[]> {
  return withClient(secrets, superuserOn(inv, leader), async (c) =>
    (
      await c.query<ReplicationRow>(
        `SELECT application_name, state, sync_state,
                pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text AS lag_bytes,
                coalesce(extract(epoch FROM replay_lag), 0)::text AS lag_s
           FROM pg_stat_replication ORDER BY application_name`,
      )
    ).rows,
  );
}

async function members(ctx: Ctx): Promise<Pick<ClusterView, 'leader' | 'members' | 'membersError' | 'paused'>> {
  const inv = ctx.inventory;
  const hosts = inv.hosts.filter((h) => h.roles.includes('postgres'));
  let view: ClusterMember[];
  let leader: ClusterMember | undefined;
  let paused: boolean;
  try {
    ({ members: view, leader, paused } = await patroniView(inv));
  } catch (e) {
    return { members: hosts.map((h) => ({ name: h.name, address: h.address, role: 'unknown', state: 'unreachable' })), membersError: (e as Error).message };
  }
  const leaderHost = hosts.find((h) => h.name === leader?.name);
  let rows: ReplicationRow[] = [];
  let replError: string | undefined;
  if (leaderHost) rows = await replicationRows(inv, ctx.secrets, leaderHost).catch((e: Error) => ((replError = e.message), []));
  const out = hosts.map((h): HostedMember => {
    const m = view.find((x) => x.name === h.name);
    if (!m) return { name: h.name, address: h.address, role: 'absent', state: 'not registered in the DCS' };
    const r = rows.find((x) => x.application_name === h.name);
    const isLeader = m.name === leader?.name;
    return {
      name: h.name,
      address: h.address,
      role: isLeader ? 'leader' : m.role,
      state: m.state,
      ...(m.timeline === undefined ? {} : { timeline: m.timeline }),
      ...(isLeader ? {} : r ? { lagBytes: Number(r.lag_bytes ?? 0), lagSeconds: Number(r.lag_s ?? 0), replication: r.state, syncState: r.sync_state } : { replication: 'not connected' }),
      ...(!isLeader && replError ? { error: replError } : {}),
    };
  });
  return { ...(leader ? { leader: leader.name } : {}), members: out, ...(paused ? { paused } : {}) };
}

async function etcd(ctx: Ctx): Promise<ClusterView['etcd']> {
  const eps = await liveClientEndpoints(ctx.inventory);
  try {
    const node = await etcdctlNode(ctx.pool);
    const [health, status, list] = await Promise.all([
      endpointHealth(node, eps),
      endpointStatus(node, eps),
      memberList(node, eps).catch(() => undefined),
    ]);
    const leaderId = status.find((s) => s.leaderId !== '0')?.leaderId;
    const leaderName = list?.find((m) => m.id === leaderId)?.name;
    return { endpoints: health, ...(leaderName ? { leader: leaderName } : {}), ...(list ? { members: list.map((m) => m.name) } : {}) };
  } catch (e) {
    return { endpoints: eps.map((endpoint) => ({ endpoint, health: false })), error: (e as Error).message };
  }
}

async function haproxy(pool: HostPool): Promise<ClusterView['haproxy']> {
  return Promise.all(
    pool.specs('haproxy').map(async (s) => {
      try {
        return { host: s.name, servers: await showStat(await pool.node(s.name)) };
      } catch (e) {
        return { host: s.name, servers: [], error: (e as Error).message.split('\n')[0] ?? '' };
      }
    }),
  );
}

async function pgbouncer(ctx: Ctx): Promise<ClusterView['pgbouncer']> {
  const inv = ctx.inventory;
  return Promise.all(
    ctx.pool.specs('pgbouncer').map(async (s) => {
      const ep = pgbouncerAdmin(inv, s);
      try {
        const pools = await withClient(ctx.secrets, ep, async (c) => (await c.query('SHOW POOLS')).rows as Record<string, unknown>[]);
        return { host: s.name, pools };
      } catch (e) {
        return { host: s.name, pools: [], error: (e as Error).message };
      }
    }),
  );
}

/** The daemons sprints 2–3 run, per role. */
export const HA_SERVICES: { role: 'postgres' | 'etcd' | 'haproxy'; service: string; sprint: number }[] = [
  { role: 'etcd', service: 'etcd', sprint: 2 },
  { role: 'haproxy', service: 'haproxy', sprint: 2 },
  { role: 'postgres', service: 'patroni', sprint: 3 },
];

/** Each expected daemon that is not running, with where to look and what to do. */
export async function deadServices(ctx: Pick<RunContext, 'pool'>, which = HA_SERVICES): Promise<ServiceIssue[]> {
  const out: ServiceIssue[] = [];
  await Promise.all(
    which.flatMap(({ role, service, sprint }) =>
      ctx.pool.specs(role).map(async (s) => {
        try {
          const node = await ctx.pool.node(s.name);
          const st = await node.services.status({ name: service });
          if (st.running) return;
          const log = s.services === 'systemd' ? `journalctl -u dpgc-${service}` : `${node.paths.logDir}/${service}.log`;
          out.push({ host: s.name, service, problem: `${service} is not running on ${s.name} (${st.reason})`, remedy: `Read ${log} on ${s.name}, then run \`dpgc sprint ${sprint}\` to start it again (safe to re-run).` });
        } catch (e) {
          out.push({ host: s.name, service, problem: `cannot reach ${s.name}: ${(e as Error).message}`, remedy: `Check that ${s.name} is up and reachable.` });
        }
      }),
    ),
  );
  return out.sort((a, b) => `${a.host}/${a.service}`.localeCompare(`${b.host}/${b.service}`));
}

async function certificates(ctx: Ctx & Pick<RunContext, 'logger'>): Promise<ClusterView['certificates']> {
  try {
    const certs = await clusterCertificates(ctx.inventory, ctx.pool, ctx.logger);
    const n = nearestEnd(certs);
    return { count: certs.length, ...(n ? { nearest: { where: n.where, file: n.file, ...(n.notAfter ? { notAfter: n.notAfter.toISOString() } : {}) } } : {}), expiring: expiringCerts(certs, new Date()) };
  } catch (e) {
    return { count: 0, expiring: [], error: (e as Error).message };
  }
}

export async function clusterView(ctx: Ctx & Pick<RunContext, 'logger'>): Promise<ClusterView> {
  const [m, e, h, p, services, settings, certs] = await Promise.all([
    members(ctx),
    etcd(ctx),
    haproxy(ctx.pool),
    pgbouncer(ctx),
    deadServices(ctx),
    settingsView(ctx.inventory, ctx.secrets, ctx.pool, () => writableHost(ctx.inventory, ctx.secrets)),
    certificates(ctx),
  ]);
  return { at: new Date().toISOString(), scope: ctx.inventory.cluster, ...m, etcd: e, haproxy: h, pgbouncer: p, services, settings, certificates: certs };
}

/** The host Patroni calls leader right now (throws with a remedy when there is none). */
export async function currentLeader(inv: Pick<Inventory, 'hosts' | 'ports'>): Promise<HostSpec> {
  // The DCS names the leader, and the leader itself must agree that it runs as the primary.
  const leader = (await patroniView(inv).catch(() => undefined))?.leader;
  const h = leader && inv.hosts.find((x) => x.name === leader.name);
  const role = h ? (await memberStatus(restTarget(inv, h)).catch(() => undefined))?.role : undefined;
  if (h && (role === 'master' || role === 'primary')) return h;
  throw new HostError('no Patroni member is the leader right now', { hint: 'Run `dpgc status` to see each member; `dpgc sprint 3` starts Patroni where it is down.' });
}
