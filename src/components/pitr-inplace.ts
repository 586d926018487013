import type { HostSpec, Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { DpgcError, HostError, LockedError } from '../errors.js';
import { assertOwnedPath } from '../hosts/owned.js';
import type { HostPool, Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import { throwIfInterrupted } from '../interrupt.js';
import type { Logger } from '../output/log.js';
import { waitUntil } from '../wait.js';
import { takeBackup } from './backups.js';
import { replicationRows } from './cluster.js';
import { firstPostgres } from './endpoints.js';
import { convergeDynamicConfig, waitForHealthyCluster } from './patroni-cluster.js';
import { MAX_LAG_BYTES, memberStatus, PATRONI_SERVICE, patroniService, patroniView, rest, REST_USER, restTarget } from './patroni.js';
import { errorCode, pgbackrest, pgHosts, repoNode, type StanzaInfo } from './pgbackrest.js';
import { lsnBytes, replayedFromLog, targetArgs, type RestoreTarget } from './pitr.js';
import { switchAndWaitArchived } from './pitr-drill.js';
import { clusterSizing } from './sizing.js';
import { takeOver } from './takeover.js';

/**
 * The whole cluster back to a point in time, in place. Patroni cannot be the
 * one to recover to a target: it strips recovery settings from
 * postgresql.auto.conf (Patroni 4.0.7, config.py `_sanitize_auto_conf`) and
 * would start the restored directory as a standby and promote it whenever it
 * wins the leader race. So, like Pigsty's pgsql-pitr and Patroni's own
 * advice for a restore (stop Patroni, `patronictl remove`, restore, start
 * again): Patroni is stopped everywhere (leader last), the cluster removed
 * from the DCS, the leader's data directory restored with `--delta` and
 * recovered to the target by a plain postmaster until it promotes, then
 * Patroni takes that directory over exactly as sprint 3 takes over the base
 * instance (takeOver). A backup on the new timeline follows, from the leader
 * (there is no standby yet), and the replicas are restored from it with
 * `--delta --type=standby` before Patroni starts on them: restored from the
 * older backup the leader used they would need WAL from before the branch,
 * which only the archive has and Patroni's replicas do not read (it strips
 * restore_command too), and any later rebuild (`patronictl reinit`, which
 * restores the newest backup) would pick a backup of the abandoned timeline.
 *
 * Every phase is recorded on the repository host; a run that stops midway
 * says what state the cluster is in, and the same command converges:
 * before the leader leads again, everything is redone; after, only the
 * remaining phases run.
 */
type Inv = Pick<Inventory, 'cluster' | 'hosts' | 'ports' | 'postgres' | 'network' | 'timings' | 'backup' | 'patroni' | 'file'>;

export const RECOVERY = 'pitr-recovery';
export const PHASES = ['stopping', 'restoring-leader', 'leader-up', 'backup-taken', 'replicas', 'done'] as const;
export type Phase = (typeof PHASES)[number];

export interface InPlaceRecord {
  target: string;
  leader: string;
  set?: string;
  phase: Phase;
  startedAt: string;
  /** The backup taken on the new timeline, once it is (phase backup-taken on). */
  newSet?: string;
}

export interface InPlaceResult {
  leader: string;
  replicas: string[];
  set?: string;
  newSet?: string;
  timeline?: number;
  resumed: boolean;
  walReplayedBytes?: number;
  /** Seconds per phase, in order, and in all (until the cluster is whole again). */
  seconds: Record<string, number>;
  totalSeconds: number;
}

/** Pure: what a target is, as one line (the record compares these). */
export function describeTarget(t: RestoreTarget): string {
  return t.type === 'time' ? t.time.toISOString() : t.type === 'lsn' ? `LSN ${t.lsn}` : `restore point ${t.name}`;
}

/**
 * Pure: the backup to restore the leader from. For a time, the newest that
 * ended before it; for an LSN, the newest that stopped at or before it;
 * undefined (pgBackRest's own choice, the newest) for a restore point, whose
 * position the repository does not know.
 */
export function chooseBackupSet(info: StanzaInfo | undefined, t: RestoreTarget): string | undefined {
  const ok = (info?.backup ?? []).filter((b) => !b.error).sort((a, b) => a.timestamp.stop - b.timestamp.stop);
  if (t.type === 'name') return undefined;
  // lsnBytes is 0 when its second LSN is not past the first: the backup stopped at or before the target.
  const fit = t.type === 'time' ? ok.filter((b) => b.timestamp.stop * 1000 <= t.time.getTime()) : ok.filter((b) => b.lsn?.stop !== undefined && lsnBytes(t.lsn, b.lsn.stop) === 0);
  return fit[fit.length - 1]?.label;
}

/** Pure: in words, what state a run that stopped in `phase` leaves the cluster in, and what to do. */
export function stateAfter(r: Pick<InPlaceRecord, 'phase' | 'leader' | 'target'>, replicas: string[], command: string): string {
  switch (r.phase) {
    case 'stopping':
      return `Patroni may be stopped on some members; no data was changed yet. Re-run \`${command}\` to restore, or \`dpgc sprint 3\` to start the cluster again as it was.`;
    case 'restoring-leader':
      return `The cluster is DOWN: Patroni is stopped on every member and the cluster is removed from etcd; ${r.leader}'s data directory may be partly restored. Re-run \`${command}\`: it restores ${r.leader} to ${r.target} again (--delta) and goes on.`;
    case 'leader-up':
    case 'backup-taken':
      return `${r.leader} is restored to ${r.target} and leads the cluster (it takes writes); ${replicas.join(', ')} are stopped. Re-run \`${command}\`: it keeps ${r.leader} as it is and rebuilds the replicas.`;
    case 'replicas':
      return `${r.leader} leads, restored to ${r.target}; the replicas (${replicas.join(', ')}) are being rebuilt from the repository and may be stopped. Re-run \`${command}\` to finish them.`;
    case 'done':
      return 'The restore finished.';
  }
}

const recordPath = (n: Pick<Node, 'paths'>) => `${n.paths.backupState}/in-place-restore.json`;

export async function readRecord(repo: Node): Promise<InPlaceRecord | undefined> {
  const text = await repo.host.readFile(recordPath(repo));
  if (!text) return undefined;
  try {
    const r = JSON.parse(text) as InPlaceRecord;
    return PHASES.includes(r.phase) && typeof r.leader === 'string' && typeof r.target === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}

async function writeRecord(repo: Node, r: InPlaceRecord): Promise<void> {
  await repo.host.writeFile(recordPath(repo), `${JSON.stringify(r, null, 2)}\n`, { mode: 0o600 });
}

/**
 * Which member becomes the restored leader: the live leader; else, after a
 * run that stopped midway, the one it chose; else the first postgres host.
 */
export async function chooseLeader(inv: Pick<Inventory, 'hosts' | 'ports' | 'file'>, record: InPlaceRecord | undefined): Promise<HostSpec> {
  const live = (await patroniView(inv, { timeoutMs: 3000 }).catch(() => undefined))?.leader?.name;
  const name = live ?? record?.leader;
  return inv.hosts.find((h) => h.name === name && h.roles.includes('postgres')) ?? firstPostgres(inv);
}

export interface InPlaceOptions {
  target: RestoreTarget;
  info: StanzaInfo | undefined;
  logger: Logger;
  /** The command to re-run, for the state message. */
  command: string;
}

export async function restoreInPlace(inv: Inv, pool: HostPool, secrets: Pick<Secrets, 'get'>, o: InPlaceOptions): Promise<InPlaceResult> {
  const started = Date.now();
  const repo = await repoNode(inv, pool);
  const previous = await readRecord(repo);
  const leader = await chooseLeader(inv, previous);
  const replicas = pgHosts(inv).filter((h) => h.name !== leader.name);
  const target = describeTarget(o.target);
  const set = chooseBackupSet(o.info, o.target);
  // A run that stopped after the leader was restored to this same target resumes with the replicas.
  const resume = previous && previous.target === target && previous.leader === leader.name && PHASES.indexOf(previous.phase) >= PHASES.indexOf('leader-up') && (await leads(inv, leader));
  const record: InPlaceRecord = resume ? previous : { target, leader: leader.name, ...(set ? { set } : {}), phase: 'stopping', startedAt: new Date().toISOString() };
  const seconds: Record<string, number> = {};
  let wal: number | undefined;
  const phase = async (p: Phase, title: string, fn: () => Promise<void>) => {
    throwIfInterrupted();
    record.phase = p;
    await writeRecord(repo, record);
    o.logger.info(title);
    const t0 = Date.now();
    await fn();
    seconds[title] = (Date.now() - t0) / 1000;
  };
  const names = replicas.map((r) => r.name);
  try {
    if (resume) o.logger.info(`Resuming the restore to ${target} recorded at ${previous.startedAt}: ${leader.name} already leads, restored.`);
    else {
      await phase('stopping', `Stop Patroni on ${[...names, leader.name].join(', ')} (the leader last)`, async () => {
        // Close and archive the current WAL segment first, so a target up to now is in the repository.
        await switchAndWaitArchived(inv, secrets, 30_000).catch((e: Error) => o.logger.warn(`could not archive the newest WAL first (${e.message.split('\n')[0]}); restoring from what the repository holds`));
        await Promise.all(replicas.map(async (h) => stopPatroni(await pool.node(h.name))));
        await stopPatroni(await pool.node(leader.name));
      });
      await phase('restoring-leader', `Remove ${inv.cluster} from etcd and restore ${leader.name} to ${target}${set ? ` from backup ${set}` : ''}`, async () => {
        const n = await pool.node(leader.name);
        await removeFromDcs(inv, n, leader.name);
        await restoreData(inv, n, [...(set ? [`--set=${set}`] : []), ...targetArgs(o.target), '--target-action=promote'], 'recovery.signal');
        wal = await recoverToTarget(inv, n);
      });
      await phase('leader-up', `Start Patroni on ${leader.name} over the restored data`, async () => {
        const n = await pool.node(leader.name);
        await takeOver(inv, n, pool);
        await convergeAndRestart(inv, pool, secrets, leader);
      });
    }
    if (!record.newSet || PHASES.indexOf(record.phase) < PHASES.indexOf('backup-taken')) {
      await phase('backup-taken', `Back up ${leader.name} on its new timeline (the replicas are restored from it)`, async () => {
        record.newSet = await backupFromLeader(inv, pool, secrets);
      });
    }
    await phase('replicas', `Restore ${names.join(', ')} from backup ${record.newSet} and start Patroni on them`, async () => {
      await Promise.all(
        replicas.map(async (h) => {
          const n = await pool.node(h.name);
          await stopPatroni(n);
          await restoreData(inv, n, [`--set=${record.newSet}`, '--type=standby'], 'standby.signal');
          await n.services.start(patroniService(inv, n));
        }),
      );
      await waitForHealthyCluster(inv, secrets, { timeoutMs: 600_000 });
      await waitCaughtUp(inv, secrets, leader);
    });
    record.phase = 'done';
    await repo.host.exec(['rm', '-f', recordPath(repo)]);
  } catch (e) {
    const state = stateAfter(record, names, o.command);
    if (e instanceof DpgcError) {
      o.logger.error(`The in-place restore stopped while it was at "${record.phase}".\n${state}`);
      throw e;
    }
    throw new HostError(`the in-place restore stopped while it was at "${record.phase}": ${(e as Error).message}`, { hint: state, cause: e });
  }
  const st = await memberStatus(restTarget(inv, leader)).catch(() => undefined);
  return {
    leader: leader.name,
    replicas: names,
    ...(record.set ? { set: record.set } : {}),
    ...(record.newSet ? { newSet: record.newSet } : {}),
    ...(st?.timeline === undefined ? {} : { timeline: st.timeline }),
    resumed: Boolean(resume),
    ...(wal === undefined ? {} : { walReplayedBytes: wal }),
    seconds,
    totalSeconds: (Date.now() - started) / 1000,
  };
}

async function leads(inv: Pick<Inventory, 'hosts' | 'ports'>, h: HostSpec): Promise<boolean> {
  const s = await memberStatus(restTarget(inv, h)).catch(() => undefined);
  return s?.role === 'primary' || s?.role === 'master';
}

async function stopPatroni(n: Node): Promise<void> {
  await n.services.stop({ name: PATRONI_SERVICE, stopTimeoutMs: 120_000 });
  // A recovery instance left by an interrupted run holds the data directory too.
  await n.services.stop({ name: RECOVERY, stopTimeoutMs: 120_000 });
}

/**
 * `patronictl remove`: the documented way to wipe a cluster from the DCS. It
 * asks for the cluster name, then "Yes I am aware", then, while a leader key
 * is held, the leader's name. Patroni stopped cleanly releases its key; one
 * killed holds it until ttl, so a refusal is retried for ttl plus a loop.
 */
async function removeFromDcs(inv: Pick<Inventory, 'cluster' | 'timings'>, n: Node, leader: string): Promise<void> {
  let last = '';
  const removed = await waitUntil(
    async (seen) => {
      const r = await n.host.exec(['patronictl', '-c', n.paths.patroniConf, 'remove', inv.cluster], { user: 'postgres', input: `${inv.cluster}\nYes I am aware\n${leader}\n`, allowFailure: true, timeoutMs: 60_000 });
      last = `exit ${r.exitCode}: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-2).join(' ')}`;
      seen(last);
      return r.exitCode === 0 || undefined;
    },
    { timeoutMs: (inv.timings.ttl + inv.timings.loop_wait + 5) * 1000, everyMs: 2000, retryErrors: false },
    `patronictl remove ${inv.cluster}`,
  ).catch(() => false);
  if (!removed) throw new HostError(`${n.spec.name}: patronictl remove ${inv.cluster} failed (${last})`, { hint: 'Is etcd healthy? `dpgc status` shows its members.' });
}

/** pgbackrest restore --delta into the host's own data directory (as postgres), leaving only `signal` of the two signal files. */
async function restoreData(inv: Pick<Inventory, 'cluster'>, n: Node, args: string[], signal: 'recovery.signal' | 'standby.signal'): Promise<void> {
  const r = await pgbackrest(inv, n, { args: ['--delta', ...args, 'restore'], timeoutMs: 6 * 3_600_000, allowFailure: true });
  if (r.exitCode !== 0) {
    throw new HostError(`${n.spec.name}: pgbackrest restore into ${n.paths.pgData} failed (pgBackRest error ${errorCode(r.stderr + r.stdout) ?? r.exitCode}):\n    ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join('\n    ')}`);
  }
  // A backup taken from a standby carries its standby.signal.
  const other = signal === 'recovery.signal' ? 'standby.signal' : 'recovery.signal';
  await n.host.exec(['rm', '-f', assertOwnedPath(`${n.paths.pgData}/${other}`, [n.paths.pgData], 'a signal file of a restored data directory')]);
}

/**
 * A plain postmaster over the restored directory, on the member's own
 * address, port and socket, until recovery reached the target and promoted.
 * The restored postgresql.conf is the backed-up standby's (its address, its
 * hba path): the overrides make it this host's. The recovery settings
 * pgBackRest wrote are removed once promoted (a member that later follows
 * would stop at the same target), then the postmaster stops cleanly.
 * Returns the bytes of WAL replayed.
 */
async function recoverToTarget(inv: Pick<Inventory, 'ports' | 'cluster'>, n: Node): Promise<number | undefined> {
  const svc = recoveryService(inv, n);
  await n.services.start(svc);
  const psql = (sql: string) =>
    n.host.exec([`${n.paths.pgBin}/psql`, '-X', '-At', '-h', n.paths.pgSocketDir, '-p', String(inv.ports.postgres), '-d', 'postgres', '-c', sql], { user: 'postgres', allowFailure: true, timeoutMs: 30_000 });
  try {
    await waitUntil(
      async (seen) => {
        const alive = await n.services.status({ name: RECOVERY });
        if (!alive.running) throw new HostError(`${n.spec.name}: PostgreSQL stopped during recovery (${alive.reason})`);
        const r = await psql('SELECT pg_is_in_recovery()');
        seen(r.exitCode === 0 ? `in recovery: ${r.stdout.trim()}` : r.stderr.trim());
        return r.exitCode === 0 && r.stdout.trim() === 'f' ? true : undefined;
      },
      { timeoutMs: 6 * 3_600_000, everyMs: 500, retryErrors: false },
      `${n.spec.name} replaying WAL to its target and promoting`,
    );
  } catch (e) {
    const tail = await n.services.logTail(RECOVERY, 20);
    await n.services.stop({ name: RECOVERY, stopTimeoutMs: 120_000 }).catch(() => undefined);
    throw new HostError(`${(e as Error).message}\n${tail}`, { hint: 'The log above is the recovering PostgreSQL’s: a target after the last archived WAL never arrives (`dpgc backup list` shows the WAL range).' });
  }
  const reset = ['recovery_target', 'recovery_target_time', 'recovery_target_lsn', 'recovery_target_name', 'recovery_target_xid', 'recovery_target_action', 'recovery_target_inclusive', 'recovery_target_timeline'];
  for (const k of reset) await psql(`ALTER SYSTEM RESET ${k}`);
  const wal = replayedFromLog(await n.services.logTail(RECOVERY, 400)).bytes;
  await n.host.exec([`${n.paths.pgBin}/pg_ctl`, 'stop', '-D', n.paths.pgData, '-m', 'fast', '-w', '-t', '300'], { user: 'postgres', timeoutMs: 330_000 });
  await n.services.stop({ name: RECOVERY, stopTimeoutMs: 120_000 });
  return wal;
}

export function recoveryService(inv: Pick<Inventory, 'ports' | 'cluster'>, n: Pick<Node, 'spec' | 'paths'>): ServiceSpec {
  const d = n.paths.pgData;
  return {
    name: RECOVERY,
    user: 'postgres',
    argv: [
      `${n.paths.pgBin}/postgres`,
      '-D', d,
      '-c', `port=${inv.ports.postgres}`,
      '-c', `listen_addresses=${n.spec.address}`,
      '-c', `unix_socket_directories=${n.paths.pgSocketDir}`,
      '-c', `hba_file=${d}/pg_hba.conf`,
      '-c', `ident_file=${d}/pg_ident.conf`,
      // No standby exists yet: a commit must not wait for one.
      '-c', 'synchronous_standby_names=',
      '-c', `cluster_name=${inv.cluster}`,
      '-c', 'logging_collector=off',
    ],
    // archive_command (from the restored configuration) pushes the new timeline's history with this host's config.
    env: { PGBACKREST_CONFIG: n.paths.pgbackrestConf, LC_ALL: 'C.UTF-8' },
    cwd: n.paths.pgHome,
    listen: { address: n.spec.address, port: inv.ports.postgres },
    startTimeoutMs: 600_000,
    stopTimeoutMs: 300_000,
  };
}

/**
 * The dynamic configuration the sprints converge (it came back from the
 * restored directory's patroni.dynamic.json, or Patroni's defaults if that
 * was older), then a restart of the leader when a start-only setting changed.
 */
async function convergeAndRestart(inv: Inv, pool: HostPool, secrets: Pick<Secrets, 'get'>, leader: HostSpec): Promise<void> {
  const sizing = await clusterSizing(inv, pool);
  if (!(await convergeDynamicConfig(inv, secrets, { sizing, archiving: true })).changed) return;
  const t = restTarget(inv, leader);
  const pending = await waitUntil(async () => (await memberStatus(t).catch(() => undefined))?.pending_restart ?? false, { timeoutMs: 3 * 1000 * inv.timings.loop_wait + 5000, everyMs: 1000 }, `${leader.name} applying the configuration`).catch(() => false);
  if (!pending) return;
  const auth = { username: REST_USER, password: await secrets.get('patroni_rest') };
  const r = await rest(t, 'POST', '/restart', { body: {}, auth, timeoutMs: 180_000 });
  if (r.status !== 200) throw new HostError(`${leader.name}: Patroni refused to restart PostgreSQL (HTTP ${r.status}): ${JSON.stringify(r.body)}`);
}

/**
 * Streaming is not caught up: a replica restored from the backup replays what
 * the leader wrote since, and sprint 3's lag criterion measured meanwhile
 * would measure the catch-up, not the cluster. Caught up: within the lag
 * Patroni itself tolerates for reads and promotion (MAX_LAG_BYTES).
 */
async function waitCaughtUp(inv: Inv, secrets: Pick<Secrets, 'get'>, leader: HostSpec): Promise<void> {
  await waitUntil(
    async (seen) => {
      const rows = await replicationRows(inv, secrets, leader);
      seen(rows.map((r) => `${r.application_name} ${r.lag_bytes ?? '?'} bytes behind`).join(', '));
      return rows.length > 0 && rows.every((r) => r.lag_bytes !== null && Number(r.lag_bytes) < MAX_LAG_BYTES) ? true : undefined;
    },
    { timeoutMs: 600_000, everyMs: 1000, retryErrors: true },
    `the replicas replaying everything ${leader.name} wrote`,
  );
}

/** A backup of the restored leader (no standby exists yet), retried while a scheduled one holds pgBackRest's lock. */
async function backupFromLeader(inv: Inv, pool: HostPool, secrets: Pick<Secrets, 'get'>): Promise<string> {
  await switchAndWaitArchived(inv, secrets, 120_000);
  const b = await waitUntil(
    async (seen) => {
      try {
        return await takeBackup(inv, pool, 'incr', { fromPrimary: true });
      } catch (e) {
        if (!(e instanceof LockedError)) throw e;
        seen(e.message);
        return undefined;
      }
    },
    { timeoutMs: 1_800_000, everyMs: 10_000, retryErrors: false },
    'a backup of the restored leader',
  );
  if (!b.row) throw new HostError('the backup of the restored leader is not in `pgbackrest info`');
  return b.row.label;
}
