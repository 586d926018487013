import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { withClient } from '../db/client.js';
import { HostError, InterruptedError, LockedError, UsageError } from '../errors.js';
import { interruption } from '../interrupt.js';
import type { HostPool } from '../hosts/pool.js';
import { currentLeader } from './cluster.js';
import { superuserOn } from './endpoints.js';
import { recordBackupAttempt } from './backup-metrics.js';
import { errorCode, pgbackrest, repoHost, repoNode, serverService, stanzaInfo, type BackupInfo, type StanzaInfo } from './pgbackrest.js';
import { switchAndWaitArchived } from './pitr-drill.js';

/** `dpgc backup`, `dpgc backup list`, `dpgc backup mark`: the operator's side of the repository. */
type Inv = Pick<Inventory, 'cluster' | 'hosts' | 'ports' | 'file'>;

export const BACKUP_TYPES = ['full', 'diff', 'incr'] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];

/** Pure: full when the repository has no full backup yet, else the type asked for (default incremental). */
export function chooseType(info: StanzaInfo | undefined, asked: BackupType | undefined): BackupType {
  const hasFull = (info?.backup ?? []).some((b) => b.type === 'full' && !b.error);
  if (!hasFull) return 'full';
  return asked ?? 'incr';
}

export interface BackupRow {
  label: string;
  type: string;
  start: string;
  stop: string;
  durationS: number;
  sizeBytes?: number;
  repoBytes?: number;
  walStart?: string;
  walStop?: string;
  error: boolean;
}

/** Pure: one row per backup, oldest first. */
export function backupRows(info: StanzaInfo | undefined): BackupRow[] {
  return (info?.backup ?? []).map((b: BackupInfo) => ({
    label: b.label,
    type: b.type,
    start: new Date(b.timestamp.start * 1000).toISOString(),
    stop: new Date(b.timestamp.stop * 1000).toISOString(),
    durationS: b.timestamp.stop - b.timestamp.start,
    ...(b.info?.size === undefined ? {} : { sizeBytes: b.info.size }),
    ...(b.info?.repository?.delta === undefined ? {} : { repoBytes: b.info.repository.delta }),
    ...(b.archive?.start ? { walStart: b.archive.start } : {}),
    ...(b.archive?.stop ? { walStop: b.archive.stop } : {}),
    error: b.error ?? false,
  }));
}

export async function listBackups(inv: Inv, pool: HostPool): Promise<BackupRow[]> {
  return backupRows(await stanzaInfo(inv, await repoNode(inv, pool)));
}

/**
 * One backup, from a standby (backup-standby in the repository host's
 * config). pgBackRest's own lock refuses a second backup of the stanza while
 * one runs (a scheduled one included): that is said as such (exit 2). Every
 * attempt that ran is recorded for the backup metrics (the BackupFailed alert
 * reads it); a refused one and one stopped by Ctrl-C are not failures of the
 * backup system and are not recorded. `fromPrimary`: when the cluster has no
 * standby (right after an in-place restore).
 */
export async function takeBackup(inv: Inv, pool: HostPool, asked: BackupType | undefined, o: { fromPrimary?: boolean } = {}): Promise<{ type: BackupType; row?: BackupRow; seconds: number; warning?: string }> {
  const node = await repoNode(inv, pool);
  const type = chooseType(await stanzaInfo(inv, node), asked);
  const started = Date.now();
  const r = await pgbackrest(inv, node, { args: [`--type=${type}`, ...(o.fromPrimary ? ['--no-backup-standby'] : []), '--log-level-console=info', 'backup'], timeoutMs: 24 * 3_600_000, allowFailure: true });
  if (r.skipped) return { type, seconds: 0 };
  const out = `${r.stderr}\n${r.stdout}`;
  const code = errorCode(out);
  if (r.exitCode !== 0 && code === 50) {
    throw new LockedError(`another backup of ${inv.cluster} is running on ${node.spec.name} (pgBackRest holds its lock); this one was not started`, {
      hint: 'Wait for it to finish (a scheduled backup, or another `dpgc backup`), then run `dpgc backup list`.',
    });
  }
  if (r.exitCode !== 0 && (await interruptedMeanwhile(code ?? r.exitCode))) {
    // Ctrl-C reached pgBackRest too (same process group): it stopped and released its lock.
    throw new InterruptedError(`the ${type} backup was interrupted; pgBackRest stopped it and released its lock, and the repository keeps its earlier backups`, {
      hint: 'Run `dpgc backup` again when you are ready: it starts a new backup (pgBackRest resumes what it can of this one).',
    });
  }
  const warning = await recordBackupAttempt(node, { type, started: Math.floor(started / 1000), finished: Math.floor(Date.now() / 1000), exit: r.exitCode });
  if (r.exitCode !== 0) {
    const lines = out.split('\n').filter((l) => /ERROR|WARN|HINT/.test(l)).slice(-4).join('\n    ');
    const down = await tlsServersDown(inv, pool);
    throw new HostError(`${node.spec.name}: the ${type} backup failed (pgBackRest error ${code ?? r.exitCode}):\n    ${[lines, ...down].filter(Boolean).join('\n    ')}`, {
      hint: down.length
        ? `Start it again: \`dpgc sprint 4\` (safe to repeat) starts every pgBackRest TLS server; then \`dpgc backup\`. pgBackRest's log on ${node.spec.name} is under ${node.paths.pgbackrestLog}.`
        : `pgBackRest's log on ${node.spec.name} is under ${node.paths.pgbackrestLog}. \`dpgc verify --sprint 4\` says which part (TLS servers, archiving, standbys) is broken.`,
    });
  }
  const rows = await listBackups(inv, pool);
  const row = rows[rows.length - 1];
  return { type, ...(row ? { row } : {}), seconds: (Date.now() - started) / 1000, ...(warning ? { warning } : {}) };
}

/** pgBackRest's error for a process stopped by a signal (TermError). */
const TERMINATED_BY_SIGNAL = 63;

/**
 * Whether the operator's Ctrl-C ended the backup. The terminal sends SIGINT to
 * dpgc and pgBackRest at once, and pgBackRest's exit can be handled before
 * dpgc's own signal handler has run: a backup terminated by a signal is given a
 * moment for it. A signal from anyone else (an administrator's SIGTERM) is a
 * failure, recorded as one.
 */
async function interruptedMeanwhile(code: number | undefined): Promise<boolean> {
  if (interruption.signal.aborted || code !== TERMINATED_BY_SIGNAL) return interruption.signal.aborted;
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 1000);
    interruption.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
  return interruption.signal.aborted;
}

/**
 * After a failed backup: which pgBackRest TLS servers are not running, each
 * named with its host. The repository host's is how the database hosts push
 * WAL, which every backup waits for; a database host's is how the repository
 * host reads it.
 */
async function tlsServersDown(inv: Inv, pool: HostPool): Promise<string[]> {
  const repo = repoHost(inv);
  const hosts = [repo, ...inv.hosts.filter((h) => h.roles.includes('postgres'))];
  const found = await Promise.all(
    hosts.map(async (h) => {
      const where = `${h.name} (${h.address}:${inv.ports.pgbackrest})`;
      try {
        const n = await pool.node(h.name);
        const st = await n.services.status(serverService(inv, n));
        if (st.running) return undefined;
        return h.name === repo.name
          ? `pgBackRest's TLS server on the repository host ${where} is not running: the database hosts cannot push WAL to the repository, and a backup waits for its WAL`
          : `pgBackRest's TLS server on ${where} is not running: the repository host cannot read that member`;
      } catch (e) {
        return `${h.name} could not be asked whether pgBackRest's TLS server runs: ${(e as Error).message.split('\n')[0]}`;
      }
    }),
  );
  return found.filter((x): x is string => x !== undefined);
}

/**
 * A named restore point on the leader (pg_create_restore_point), with a WAL
 * switch so it is in the repository, and restorable, at once.
 */
export async function markRestorePoint(inv: Pick<Inventory, 'hosts' | 'ports'>, secrets: Pick<Secrets, 'get'>, name: string): Promise<{ name: string; lsn: string; on: string }> {
  if (!/^[A-Za-z0-9_.-]{1,63}$/.test(name)) {
    throw new UsageError(`restore point name ${JSON.stringify(name)}: use 1 to 63 letters, digits and . _ -`, { hint: 'For example: dpgc backup mark before-migration-42' });
  }
  const leader = await currentLeader(inv);
  const lsn = await withClient(secrets, superuserOn(inv, leader), async (c) => (await c.query<{ l: string }>('SELECT pg_create_restore_point($1)::text AS l', [name])).rows[0]!.l);
  await switchAndWaitArchived(inv, secrets);
  return { name, lsn, on: leader.name };
}

export { repoHost };
