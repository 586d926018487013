import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { HostError } from '../errors.js';
import { currentLeader, replicationRows, type ReplicationRow } from './cluster.js';
import { clusterMembers, desiredDynamicConfig, dynamicConfigPatch, isLeaderRole, rest, REST_USER, restTarget, type ClusterMember } from './patroni.js';
import { becomes, waitUntil } from '../wait.js';
import type { Sizing } from '../config/sizing.js';
import { sizedParameters } from './sizing.js';
import { PGAUDIT, preloadList } from './audit.js';

/**
 * What a sprint converges: the sized settings (sprint 3 on), WAL archiving (sprint 4 on), TLS and audit
 * logging (sprint 5 on); what is not named is left as it is. TLS and audit logging, once the live
 * configuration has them, are kept by every convergence: sized settings carrying the inventory's own
 * shared_preload_libraries or ssl would otherwise take them out again.
 */
export interface ConvergeOptions {
  sizing?: Pick<Sizing, 'settings'>;
  archiving?: boolean;
  audit?: boolean;
  tls?: boolean;
}

/**
 * The running cluster as a whole: its dynamic configuration, and whether its
 * shape is the one the inventory asks for.
 */
type Inv = Pick<Inventory, 'hosts' | 'ports' | 'postgres' | 'timings'> & Partial<Pick<Inventory, 'cluster' | 'backup'>>;

export interface Topology {
  leader?: string;
  streaming: string[];
  sync: string[];
  problems: string[];
}

/**
 * One leader, every other postgres host streaming from it, and as many
 * synchronous standbys as the inventory asks (pure: Patroni's /cluster plus
 * the leader's pg_stat_replication; patronictl would say `running`, docs/lab-facts.md).
 */
export function assessTopology(inv: Pick<Inventory, 'hosts' | 'postgres'>, members: ClusterMember[], rows: ReplicationRow[]): Topology {
  const names = inv.hosts.filter((h) => h.roles.includes('postgres')).map((h) => h.name);
  const leaders = members.filter((m) => isLeaderRole(m.role));
  const problems: string[] = [];
  if (leaders.length !== 1) problems.push(leaders.length ? `${leaders.length} leaders: ${leaders.map((l) => l.name).join(', ')}` : 'no leader');
  const leader = leaders[0]?.name;
  for (const n of names) if (!members.some((m) => m.name === n)) problems.push(`${n} is not a member (Patroni not running there, or not registered in etcd)`);
  const streaming = rows.filter((r) => r.state === 'streaming').map((r) => r.application_name);
  const sync = rows.filter((r) => r.sync_state === 'sync' || r.sync_state === 'quorum').map((r) => r.application_name);
  for (const n of names.filter((x) => x !== leader)) {
    const r = rows.find((x) => x.application_name === n);
    if (!r) problems.push(`${n} is not replicating from the leader ${leader ?? '(none)'}`);
    else if (r.state !== 'streaming') problems.push(`${n} is ${r.state}, not streaming`);
  }
  const want = Math.min(inv.postgres.synchronous_node_count, names.length - 1);
  if (sync.length < want) problems.push(`${sync.length} synchronous standby(s), want ${want}`);
  // PostgreSQL reports a standby as sync before Patroni records it in its /sync key (it sets
  // synchronous_standby_names, waits for the standby, then writes the key). /switchover and failover
  // candidacy go by the key, so the cluster is not whole until Patroni names its sync standby too.
  else if (want > 0 && !members.some((m) => m.role === 'sync_standby' || m.role === 'quorum_standby'))
    problems.push(`PostgreSQL has a synchronous standby (${sync.join(', ')}) that Patroni does not name yet`);
  return { ...(leader ? { leader } : {}), streaming, sync, problems };
}

export async function topology(inv: Inv, secrets: Pick<Secrets, 'get'>): Promise<Topology> {
  const leaderHost = await currentLeader(inv);
  const [members, rows] = await Promise.all([clusterMembers(restTarget(inv, leaderHost)), replicationRows(inv, secrets, leaderHost)]);
  return assessTopology(inv, members, rows);
}

/** Until the topology is whole (a sync standby takes Patroni one or two loop_waits, docs/lab-facts.md). */
export async function waitForHealthyCluster(inv: Inv, secrets: Pick<Secrets, 'get'>, opts: { timeoutMs: number }): Promise<string> {
  return waitUntil(
    async (seen) => {
      const t = await topology(inv, secrets);
      if (!t.problems.length) return `leader ${t.leader}, streaming ${t.streaming.join(', ')}, sync ${t.sync.join(', ')}`;
      seen(t.problems.join('; '));
      return undefined;
    },
    {
      timeoutMs: opts.timeoutMs,
      everyMs: 1000,
      retryErrors: true,
      timeoutError: (t) =>
        new HostError(`the cluster is not whole after ${opts.timeoutMs / 1000}s: ${t.lastSeen ?? 'no answer yet'}`, {
          hint: 'Run `dpgc status`, and read patroni.log on the hosts named (a base backup of a large database takes a while: re-run `dpgc sprint 3`).',
        }),
    },
    'the cluster becoming whole',
  );
}

/**
 * bootstrap.dcs only seeds an empty DCS: later changes to timings or
 * parameters in the inventory reach the cluster through PATCH /config, and
 * only the keys that differ are sent.
 */
export async function convergeDynamicConfig(inv: Inv, secrets: Pick<Secrets, 'get'>, o: ConvergeOptions = {}): Promise<{ changed: boolean; note?: string }> {
  const { target: t, patch } = await dynamicConfigDrift(inv, o);
  if (!patch) return { changed: false };
  const r = await rest(t, 'PATCH', '/config', { body: patch, auth: { username: REST_USER, password: await secrets.get('patroni_rest') } });
  if (r.status !== 200) throw new HostError(`${t.name}: Patroni refused PATCH /config (HTTP ${r.status}): ${JSON.stringify(r.body)}`);
  return { changed: true, note: `set ${flatKeys(patch).join(', ')}` };
}

/** What convergeDynamicConfig would send: the PATCH body, read from the leader, nothing sent. */
export async function observeDynamicConfig(inv: Inv, o: ConvergeOptions = {}): Promise<{ changed: boolean; note?: string; would?: string[] }> {
  const { target: t, patch } = await dynamicConfigDrift(inv, o);
  if (!patch) return { changed: false };
  return { changed: true, note: `set ${flatKeys(patch).join(', ')}`, would: [`PATCH ${t.name} /config ${JSON.stringify(patch)}`] };
}

async function dynamicConfigDrift(inv: Inv, o: ConvergeOptions) {
  const t = restTarget(inv, await currentLeader(inv));
  // Right after a takeover the new leader writes the DCS configuration on its next loop; until then /config is 502.
  let current: Awaited<ReturnType<typeof rest<Record<string, unknown>>>> | undefined;
  await becomes(async () => (current = await rest<Record<string, unknown>>(t, 'GET', '/config')).status !== 502, { timeoutMs: 10_000, everyMs: 250 }, `${t.name}: GET /config answering`);
  if (!current) throw new HostError(`${t.name}: GET /config did not answer`);
  if (current.status !== 200) throw new HostError(`${t.name}: GET /config answered ${current.status}`);
  const params = (current.body?.['postgresql'] as { parameters?: Record<string, unknown> } | undefined)?.parameters;
  const audit = o.audit || preloadList(params?.['shared_preload_libraries']).includes(PGAUDIT);
  const tls = o.tls || params?.['ssl'] === 'on' || params?.['ssl'] === true;
  return {
    target: t,
    patch: dynamicConfigPatch(
      current.body ?? {},
      desiredDynamicConfig(inv, { ...(o.sizing ? { sized: sizedParameters(o.sizing) } : {}), ...(o.archiving ? { archiving: true } : {}), ...(audit ? { audit: true } : {}), ...(tls ? { tls: true } : {}) }),
    ),
  };
}

function flatKeys(o: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) => (v && typeof v === 'object' && !Array.isArray(v) ? flatKeys(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`]));
}
