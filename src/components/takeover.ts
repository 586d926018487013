import type pg from 'pg';
import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { HostError } from '../errors.js';
import type { Node } from '../hosts/pool.js';
import { ensureLoginRole } from './databases.js';
import { ROLES_DB } from './endpoints.js';
import { etcdctlNode, getKey, liveClientEndpoints } from './etcd.js';
import type { HostPool } from '../hosts/pool.js';
import { dataDirState, stopFast } from './postgres.js';
import { clusterMembers, leaderOf, memberStatus, PATRONI_NAMESPACE, patroniService, restTarget } from './patroni.js';
import { quoteIdent } from './vector.js';
import { waitUntil } from '../wait.js';

/**
 * Sprint 3's delicate part: Patroni takes over the sprint-0 instance in place.
 * Patroni 3.0.2 (ha.py) adopts a non-empty data directory when the DCS has no
 * `initialize` key: it writes the directory's own system identifier there,
 * starts PostgreSQL as a standby, wins the leader race and promotes it (a new
 * timeline, the same system identifier and data). Nothing here ever runs
 * initdb or removes a data directory.
 */

/** pg_rewind's needs, from Patroni's documentation: read access to the data directory through these functions. */
export const REWIND_FUNCTIONS = [
  'pg_catalog.pg_ls_dir(text, boolean, boolean)',
  'pg_catalog.pg_stat_file(text, boolean)',
  'pg_catalog.pg_read_binary_file(text)',
  'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)',
];

/** `replicator` (REPLICATION) and `rewind_user` (with pg_rewind's grants), passwords as SCRAM verifiers. */
export async function ensureHaRoles(su: pg.Client, secrets: Pick<Secrets, 'get'>): Promise<{ changed: boolean; note?: string }> {
  const notes: string[] = [];
  const repl = ROLES_DB.replication.user;
  const r1 = await ensureLoginRole(su, repl, secrets, ROLES_DB.replication.secret);
  if (r1.changed) notes.push(`${repl} ${r1.note ?? 'updated'}`);
  const isRepl = (await su.query<{ r: boolean }>('SELECT rolreplication AS r FROM pg_roles WHERE rolname = $1', [repl])).rows[0]?.r;
  if (!isRepl) {
    await su.query(`ALTER ROLE ${quoteIdent(repl)} REPLICATION`);
    notes.push(`${repl} REPLICATION`);
  }
  const rew = ROLES_DB.rewind.user;
  const r2 = await ensureLoginRole(su, rew, secrets, ROLES_DB.rewind.secret);
  if (r2.changed) notes.push(`${rew} ${r2.note ?? 'updated'}`);
  for (const fn of REWIND_FUNCTIONS) {
    const has = (await su.query<{ ok: boolean }>(`SELECT has_function_privilege($1, $2::regprocedure, 'EXECUTE') AS ok`, [rew, fn])).rows[0]?.ok;
    // PUBLIC may hold EXECUTE on some of them; an explicit grant keeps pg_rewind working if that is revoked.
    const explicit = (
      await su.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_proc p, aclexplode(p.proacl) a WHERE p.oid = $1::regprocedure AND a.grantee = $2::regrole AND a.privilege_type = 'EXECUTE'`,
        [fn, rew],
      )
    ).rows[0]?.n;
    if (!has || !explicit) {
      await su.query(`GRANT EXECUTE ON FUNCTION ${fn} TO ${quoteIdent(rew)}`);
      notes.push(`EXECUTE on ${fn.replace('pg_catalog.', '').replace(/\(.*/, '')}`);
    }
  }
  return notes.length ? { changed: true, note: notes.join(', ') } : { changed: false };
}

/** The data directory's system identifier, from pg_controldata (works whether the server runs or not). */
export async function systemIdentifier(node: Pick<Node, 'host' | 'paths'>): Promise<string> {
  const r = await node.host.exec([`${node.paths.pgBin}/pg_controldata`, node.paths.pgData], { user: 'postgres', mutates: false, env: { LC_ALL: 'C', PATH: '/usr/bin:/bin' } });
  const m = /Database system identifier:\s+(\d+)/.exec(r.stdout);
  if (!m) throw new HostError(`${node.host.name}: pg_controldata printed no system identifier for ${node.paths.pgData}`);
  return m[1]!;
}

/** The system identifier Patroni recorded in the DCS, or undefined before any takeover. */
export async function dcsInitializeKey(inv: Pick<Inventory, 'cluster' | 'hosts' | 'ports'>, pool: HostPool): Promise<string | undefined> {
  const n = await etcdctlNode(pool);
  const eps = await liveClientEndpoints(inv);
  return getKey(n, eps[0]!, `${PATRONI_NAMESPACE}${inv.cluster}/initialize`).catch(async () => getKey(n, eps[eps.length - 1]!, `${PATRONI_NAMESPACE}${inv.cluster}/initialize`));
}

/**
 * On the sprint-0 host: stop the base instance cleanly, start Patroni over the
 * same directory, wait until it leads, and prove the system identifier is the
 * one the base instance had. Re-runs: Patroni running → unchanged.
 */
export async function takeOver(inv: Pick<Inventory, 'cluster' | 'hosts' | 'ports' | 'postgres'>, node: Node, pool: HostPool): Promise<{ changed: boolean; note?: string }> {
  const svc = patroniService(inv, node);
  if ((await node.services.status(svc)).running) return { changed: false };
  const state = await dataDirState(node.host, node.paths, inv.postgres.version);
  if (state.kind !== 'ours' && state.kind !== 'patroni') {
    throw new HostError(`${node.spec.name}: ${node.paths.pgData} does not hold the sprint-0 database (${state.kind === 'foreign' ? state.reason : state.kind}); Patroni will not be started over it`, {
      hint: 'Run `dpgc sprint 0` first; dpgc never initialises or empties a data directory to make Patroni start.',
    });
  }
  if (node.host.dryRun) return { changed: true, note: 'would take over the base instance' };
  const before = await systemIdentifier(node);
  const recorded = await dcsInitializeKey(inv, pool);
  if (recorded && recorded !== before) {
    throw new HostError(`${node.spec.name}: the DCS records system identifier ${recorded} for ${inv.cluster}, but ${node.paths.pgData} has ${before}`, {
      hint: 'This data directory belongs to another cluster than the one in etcd. Find out which one holds the data you want before anything else; dpgc will not choose.',
    });
  }
  // Taken over before (Patroni died or was stopped since): it rejoins as whatever the cluster
  // needs now, possibly a replica after a failover, so there is no leadership to wait for.
  if (recorded) {
    await node.services.start(svc);
    return { changed: true, note: 'Patroni restarted over its data' };
  }
  // A fast shutdown: the base instance may still have PgBouncer's server connections, which a smart shutdown would wait for.
  await stopFast(node, inv);
  await node.services.start(svc);
  const t = restTarget(inv, node.spec);
  const st = await waitUntil(
    async () => {
      const s = await memberStatus(t);
      const leader = leaderOf(await clusterMembers(t));
      return (s.role === 'master' || s.role === 'primary') && s.state === 'running' && leader?.name === node.spec.name ? s : undefined;
    },
    { timeoutMs: 90_000, everyMs: 500, retryErrors: true },
    `Patroni on ${node.spec.name} leading the cluster`,
  );
  if (st.database_system_identifier !== before) {
    throw new HostError(`${node.spec.name}: after the takeover Patroni reports system identifier ${st.database_system_identifier}, the base instance had ${before}`, {
      hint: 'Stop Patroni on this host and inspect the data directory before anything else.',
    });
  }
  return { changed: true, note: `took over system ${before}, timeline ${st.timeline}` };
}

/** A replica host: start Patroni; with an empty data directory it clones the leader by base backup. */
export async function joinReplica(inv: Pick<Inventory, 'cluster' | 'hosts' | 'ports' | 'postgres'>, node: Node, pool: HostPool): Promise<{ changed: boolean; note?: string }> {
  const svc = patroniService(inv, node);
  if ((await node.services.status(svc)).running) return { changed: false };
  if (node.host.dryRun) return { changed: true };
  const recorded = await dcsInitializeKey(inv, pool);
  if (!recorded) throw new HostError(`${node.spec.name}: the cluster has not been initialised in etcd yet; the sprint-0 host must be taken over first`);
  const state = await dataDirState(node.host, node.paths, inv.postgres.version);
  if (state.kind === 'foreign' && !state.reason.includes('did not create')) {
    throw new HostError(`${node.spec.name}: ${node.paths.pgData} is not empty and is not a copy of this cluster (${state.reason})`, {
      hint: 'Move it aside yourself if it holds nothing you need; dpgc never deletes a data directory.',
    });
  }
  if (state.kind !== 'absent' && state.kind !== 'empty') {
    const sysid = await systemIdentifier(node);
    if (sysid !== recorded) {
      throw new HostError(`${node.spec.name}: ${node.paths.pgData} holds system ${sysid}, not this cluster's ${recorded}`, {
        hint: 'Move it aside yourself if it holds nothing you need; dpgc never deletes a data directory.',
      });
    }
  }
  await node.services.start(svc);
  return { changed: true, note: state.kind === 'absent' || state.kind === 'empty' ? 'cloning the leader' : 'rejoining with its data' };
}
