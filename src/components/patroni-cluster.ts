import { hostname } from 'node:os';
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
  /** In maintenance mode: waiting does not make it whole. */
  paused?: boolean;
}

/**
 * One leader, every other postgres host streaming from it, and as many
 * synchronous standbys as the inventory asks (pure: Patroni's /cluster plus
 * the leader's pg_stat_replication; patronictl would say `running`, docs/lab-facts.md).
 */
export function assessTopology(inv: Pick<Inventory, 'hosts' | 'postgres'>, members: ClusterMember[], rows: ReplicationRow[], config: Record<string, unknown> = {}): Topology {
  const names = inv.hosts.filter((h) => h.roles.includes('postgres')).map((h) => h.name);
  const leaders = members.filter((m) => isLeaderRole(m.role));
  const problems: string[] = [];
  // Everything below can look whole while nothing would fail over: say so first.
  const pause = pauseOf(config);
  if (pause.paused) {
    problems.push(
      pause.record
        ? `the cluster is paused (maintenance mode): Patroni will not fail over. An interrupted dpgc run left it so (${pause.record}); \`dpgc sprint 3\` resumes it`
        : 'the cluster is paused (maintenance mode): Patroni will not fail over until it is resumed (`patronictl -c <patroni.yml> resume` once the maintenance is over)',
    );
  }
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
  return { ...(leader ? { leader } : {}), streaming, sync, problems, ...(pause.paused ? { paused: true } : {}) };
}

export async function topology(inv: Inv, secrets: Pick<Secrets, 'get'>): Promise<Topology> {
  const leaderHost = await currentLeader(inv);
  const t = restTarget(inv, leaderHost);
  const [members, rows, config] = await Promise.all([
    clusterMembers(t),
    replicationRows(inv, secrets, leaderHost),
    rest<Record<string, unknown>>(t, 'GET', '/config').then((r) => (r.status === 200 && r.body ? r.body : {})),
  ]);
  return assessTopology(inv, members, rows, config);
}

// ---------------------------------------------------------------- maintenance mode

/**
 * Maintenance mode dpgc turns on itself (sprint 5 pauses Patroni while it
 * restarts every Patroni onto etcd's TLS). The pause and a record of who
 * paused it go into the dynamic configuration in one PATCH (Patroni keeps a
 * key it does not know, and drops one set to null: utils.patch_config), so a
 * run killed before it resumes (SIGKILL, a control machine lost) leaves a
 * cluster that says who paused it. The next run's convergence (sprints 3, 4
 * and 5) resumes it: the run lock lets one dpgc run at a time touch a
 * cluster, so a record another process wrote is stale. A pause without the
 * record is the operator's: left alone, and named by s3.patroni.topology.
 */
export const PAUSED_BY_DPGC = 'dpgc_paused';
const THIS_RUN = `${hostname()}:${process.pid}`;

/** The record to write with `pause: true`. */
export const pauseRecord = (why: string, at = new Date()): string => `${why}, by dpgc ${THIS_RUN} at ${at.toISOString()}`;

/** Pure: whether the dynamic configuration says paused, and dpgc's record when it was dpgc. */
export function pauseOf(config: Record<string, unknown>): { paused: boolean; record?: string; ours: boolean } {
  const p = config['pause'];
  const paused = p === true || (typeof p === 'string' && ['true', 'on', 'yes', '1'].includes(p.toLowerCase()));
  const rec = config[PAUSED_BY_DPGC];
  const record = typeof rec === 'string' ? rec : undefined;
  return { paused, ...(record !== undefined ? { record } : {}), ours: record?.includes(`by dpgc ${THIS_RUN} at `) ?? false };
}

/** Pure: the PATCH that ends a pause an earlier dpgc run left (or drops its record if the operator already resumed). */
export function leftPausePatch(config: Record<string, unknown>): Record<string, unknown> | undefined {
  const p = pauseOf(config);
  if (p.record === undefined || p.ours) return undefined;
  return p.paused ? { pause: null, [PAUSED_BY_DPGC]: null } : { [PAUSED_BY_DPGC]: null };
}

/** Until the topology is whole (a sync standby takes Patroni one or two loop_waits, docs/lab-facts.md). */
export async function waitForHealthyCluster(inv: Inv, secrets: Pick<Secrets, 'get'>, opts: { timeoutMs: number }): Promise<string> {
  let paused: string | undefined;
  const whole = await waitUntil(
    async (seen) => {
      const t = await topology(inv, secrets);
      if (!t.problems.length) return `leader ${t.leader}, streaming ${t.streaming.join(', ')}, sync ${t.sync.join(', ')}`;
      // Paused, Patroni starts, promotes and re-points nothing: said now rather than at the timeout (below).
      if (t.paused) return (paused = t.problems[0]!);
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
  if (paused) throw new HostError(paused, { hint: 'Nothing that needs Patroni was done. Resume the cluster, then run the command again.' });
  return whole;
}

/**
 * bootstrap.dcs only seeds an empty DCS: later changes to timings or
 * parameters in the inventory reach the cluster through PATCH /config, and
 * only the keys that differ are sent.
 */
export async function convergeDynamicConfig(inv: Inv, secrets: Pick<Secrets, 'get'>, o: ConvergeOptions = {}): Promise<{ changed: boolean; note?: string }> {
  const { target: t, patch, note } = await dynamicConfigDrift(inv, o);
  if (!patch) return { changed: false };
  const r = await rest(t, 'PATCH', '/config', { body: patch, auth: { username: REST_USER, password: await secrets.get('patroni_rest') } });
  if (r.status !== 200) throw new HostError(`${t.name}: Patroni refused PATCH /config (HTTP ${r.status}): ${JSON.stringify(r.body)}`);
  return { changed: true, note };
}

/** What convergeDynamicConfig would send: the PATCH body, read from the leader, nothing sent. */
export async function observeDynamicConfig(inv: Inv, o: ConvergeOptions = {}): Promise<{ changed: boolean; note?: string; would?: string[] }> {
  const { target: t, patch, note } = await dynamicConfigDrift(inv, o);
  if (!patch) return { changed: false };
  return { changed: true, note, would: [`PATCH ${t.name} /config ${JSON.stringify(patch)}`] };
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
  const settings = dynamicConfigPatch(
    current.body ?? {},
    desiredDynamicConfig(inv, { ...(o.sizing ? { sized: sizedParameters(o.sizing) } : {}), ...(o.archiving ? { archiving: true } : {}), ...(audit ? { audit: true } : {}), ...(tls ? { tls: true } : {}) }),
  );
  const resume = leftPausePatch(current.body ?? {});
  const notes = [
    ...(settings ? [`set ${flatKeys(settings).join(', ')}`] : []),
    ...(resume ? [resume['pause'] === null ? `resumed the cluster, which an interrupted dpgc run had left paused (${pauseOf(current.body ?? {}).record})` : 'dropped the record of a pause already ended'] : []),
  ];
  const patch = settings || resume ? { ...settings, ...resume } : undefined;
  return { target: t, patch, note: notes.join('; ') };
}

function flatKeys(o: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) => (v && typeof v === 'object' && !Array.isArray(v) ? flatKeys(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`]));
}
