import type { HostSpec, Inventory } from '../config/schema.js';
import { withClient, type Credentials } from '../db/client.js';
import { HostError, UsageError } from '../errors.js';
import { assertOwnedPath } from '../hosts/owned.js';
import type { HostPool, Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import { waitUntil } from '../wait.js';
import { CertificateAuthority, type CertRequest } from './ca.js';
import { ROLES_DB } from './endpoints.js';
import { errorCode, pgbackrest, REPO_USER, repoHost, type StanzaInfo } from './pgbackrest.js';

/**
 * Point-in-time recovery into a scratch instance on the repository host: the
 * repository is restored into a new directory (the live cluster is never
 * touched), PostgreSQL is started on a spare port as the repository's user,
 * replays WAL up to the target and promotes. docs/lab-facts.md: the restored
 * postgresql.conf is the source member's, written by Patroni (its listen
 * address, sockets, hba file, synchronous_standby_names, archive_mode=on), so
 * the scratch instance overrides each of them on its command line, or it would
 * hang on commit and push a new timeline into the live repository.
 */
type Inv = Pick<Inventory, 'cluster' | 'hosts' | 'ports' | 'postgres' | 'network' | 'file'>;

export const SCRATCH = 'pitr-scratch';

export type RestoreTarget = { type: 'time'; time: Date; text: string } | { type: 'lsn'; lsn: string } | { type: 'name'; name: string };

export interface RecoveryWindow {
  /** The end of the oldest backup: nothing before it can be recovered. */
  earliest: Date;
  /** Now: anything up to the last archived WAL (at most archive_timeout ago). */
  latest: Date;
}

/** Pure: the window `pgbackrest info` allows, or undefined when the repository has no backup. */
export function recoveryWindow(info: StanzaInfo | undefined, now: Date): RecoveryWindow | undefined {
  const stops = (info?.backup ?? []).filter((b) => !b.error).map((b) => b.timestamp.stop);
  if (!stops.length) return undefined;
  return { earliest: new Date(Math.min(...stops) * 1000), latest: now };
}

/** Pure: a time as PostgreSQL's recovery_target_time reads it, always in UTC (no server time zone guesswork). */
export function pgTimestamp(d: Date): string {
  return `${d.toISOString().replace('T', ' ').replace('Z', '')}+00`;
}

/**
 * Pure: `--target-time` text to a time inside the recovery window. ISO 8601 or
 * `YYYY-MM-DD HH:MM:SS[.fff]` with an offset or Z; without one it is UTC (said
 * in the help). Refusals name the earliest and latest recoverable times.
 */
export function parseTargetTime(text: string, window: RecoveryWindow | undefined): Date {
  const range = window ? `Recoverable: from ${window.earliest.toISOString()} (end of the oldest backup) to ${window.latest.toISOString()} (now).` : 'The repository has no backup yet: run `dpgc backup` first.';
  const m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?))?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/.exec(text.trim());
  const t = m ? new Date(`${m[1]}T${m[2] ?? '00:00'}${normalizeOffset(m[3])}`) : undefined;
  if (!t || Number.isNaN(t.getTime())) {
    throw new UsageError(`--target-time ${JSON.stringify(text)} is not a time dpgc can read`, { hint: `Write it as 2026-12-02T08:15:00Z (or with an offset such as +01:00; no offset means UTC). ${range}` });
  }
  if (!window) throw new UsageError(`nothing to restore to ${t.toISOString()}: the repository has no backup`, { hint: range });
  if (t.getTime() < window.earliest.getTime()) throw new UsageError(`--target-time ${t.toISOString()} is before the end of the oldest backup`, { hint: range });
  if (t.getTime() > window.latest.getTime()) throw new UsageError(`--target-time ${t.toISOString()} is in the future`, { hint: range });
  return t;
}

function normalizeOffset(o: string | undefined): string {
  if (!o || o === 'Z') return 'Z';
  const m = /^([+-]\d{2}):?(\d{2})?$/.exec(o)!;
  return `${m[1]}:${m[2] ?? '00'}`;
}

/** Pure: pgBackRest's restore options for a target. */
export function targetArgs(t: RestoreTarget): string[] {
  if (t.type === 'time') return ['--type=time', `--target=${pgTimestamp(t.time)}`];
  if (t.type === 'lsn') return ['--type=lsn', `--target=${t.lsn}`];
  return ['--type=name', `--target=${t.name}`];
}

export function validateTargetText(t: RestoreTarget): void {
  if (t.type === 'lsn' && !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(t.lsn)) throw new UsageError(`--target-lsn ${JSON.stringify(t.lsn)} is not an LSN`, { hint: 'Write it as PostgreSQL prints it, e.g. 0/5A000060.' });
  if (t.type === 'name' && !/^[A-Za-z0-9_.-]{1,63}$/.test(t.name)) throw new UsageError(`--target-name ${JSON.stringify(t.name)} is not a restore point name dpgc makes`, { hint: 'Names are letters, digits and . _ - (as `dpgc backup mark` accepts them).' });
}

/** Pure: bytes between two LSNs (`X/Y`). */
export function lsnBytes(from: string, to: string): number {
  const n = (l: string) => {
    const [hi = '0', lo = '0'] = l.split('/');
    return parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16);
  };
  return Math.max(0, n(to) - n(from));
}

/** Pure: the WAL replayed, from the scratch instance's log (the last recovery in it). */
export function replayedFromLog(log: string): { from?: string; to?: string; bytes?: number } {
  const starts = [...log.matchAll(/redo starts at ([0-9A-F]+\/[0-9A-F]+)/g)];
  const dones = [...log.matchAll(/redo done at ([0-9A-F]+\/[0-9A-F]+)/g)];
  const from = starts[starts.length - 1]?.[1];
  const to = dones[dones.length - 1]?.[1];
  return { ...(from ? { from } : {}), ...(to ? { to } : {}), ...(from && to ? { bytes: lsnBytes(from, to) } : {}) };
}

export interface ScratchInstance {
  host: HostSpec;
  dir: string;
  port: number;
  restoreMs: number;
  recoveryMs: number;
  wal: { from?: string; to?: string; bytes?: number };
  /** It serves TLS only (the cluster does). */
  tls: boolean;
}

/**
 * The scratch copy's certificate, issued into the copy's own directory for each restore: it lives and goes
 * with the copy (nothing to renew, rotate or watch in the host's TLS directory). Its key is the repository
 * user's, as PostgreSQL requires of the user it runs as.
 */
export const SCRATCH_CERT = 'pitr-scratch';
export const scratchCertRequest = (spec: Pick<HostSpec, 'name' | 'address'>): CertRequest => ({ name: SCRATCH_CERT, cn: spec.name, dns: [spec.name], ips: [spec.address], usage: ['server'] });
const scratchCertFiles = (dir: string) => ({ cert: `${dir}/${SCRATCH_CERT}.crt`, key: `${dir}/${SCRATCH_CERT}.key` });

/**
 * `tls`: the copy of the cluster's data serves TLS 1.2 at least, with the repository host's own
 * certificate from the cluster CA, and takes no login without TLS (scratchHba).
 */
export function scratchService(inv: Pick<Inventory, 'ports' | 'postgres'>, node: Pick<Node, 'spec' | 'paths'>, dir: string, tls = false): ServiceSpec {
  const f = scratchCertFiles(dir);
  const port = inv.ports.restore_scratch;
  return {
    name: SCRATCH,
    user: REPO_USER,
    argv: [
      `${node.paths.pgBin}/postgres`,
      '-D', dir,
      '-c', `port=${port}`,
      '-c', `listen_addresses=${node.spec.address}`,
      '-c', `unix_socket_directories=${dir}`,
      '-c', `hba_file=${dir}/dpgc-scratch-hba.conf`,
      '-c', `ident_file=${dir}/pg_ident.conf`,
      // Never archive into, or wait for standbys of, the live cluster.
      '-c', 'archive_mode=off',
      '-c', 'synchronous_standby_names=',
      '-c', 'primary_conninfo=',
      '-c', 'cluster_name=dpgc-pitr-scratch',
      '-c', 'logging_collector=off',
      // The members' ssl_*_file paths are relative to their data directory and their keys are postgres's:
      // neither holds here, so the copy names its own.
      ...(tls ? ['-c', 'ssl=on', '-c', `ssl_cert_file=${f.cert}`, '-c', `ssl_key_file=${f.key}`, '-c', 'ssl_ca_file=', '-c', 'ssl_min_protocol_version=TLSv1.2'] : ['-c', 'ssl=off']),
    ],
    env: { PGBACKREST_CONFIG: node.paths.pgbackrestConf, LC_ALL: 'C.UTF-8' },
    cwd: dir,
    listen: { address: node.spec.address, port },
    startTimeoutMs: 600_000,
    stopTimeoutMs: 120_000,
  };
}

/**
 * pg_hba for the scratch copy: logins by SCRAM from the allowed networks (the copy keeps the cluster's
 * passwords), over TLS only when the cluster has it; sockets for its own user.
 */
export function scratchHba(inv: Pick<Inventory, 'network'>, tls = false): string {
  return [
    'local all all peer map=scratch',
    ...inv.network.allowed_cidrs.map((c) => `${tls ? 'hostssl' : 'host'} all all ${c} scram-sha-256`),
    ...(tls ? ['hostnossl all all all reject'] : []),
    '',
  ].join('\n');
}

/**
 * Restores the repository to `target` into a new directory on the repository
 * host, starts it, and waits until recovery reached the target and promoted.
 * One scratch instance at a time (its port); an earlier one is refused.
 */
export async function restoreScratch(inv: Inv, pool: HostPool, secrets: Credentials, target: RestoreTarget): Promise<ScratchInstance> {
  const host = repoHost(inv);
  const node = await pool.node(host.name);
  const st = await node.services.status({ name: SCRATCH });
  if (st.running) {
    throw new UsageError(`a scratch instance already runs on ${host.name} (pid ${st.pid}, port ${inv.ports.restore_scratch})`, {
      hint: 'Copy out what you need from it, then `dpgc restore --drop-scratch` removes it.',
    });
  }
  const dir = `${node.paths.scratchDir}/${new Date().toISOString().replace(/[:.]/g, '-')}`;
  await node.host.exec(['install', '-d', '-o', REPO_USER, '-g', REPO_USER, '-m', '700', dir]);
  const started = Date.now();
  const r = await pgbackrest(inv, node, {
    // The repository host's config names the database hosts as pg1..pgN; the restore is local, into the scratch directory.
    args: ['--reset-pg1-host', `--pg1-path=${dir}`, ...targetArgs(target), '--target-action=promote', '--archive-mode=off', 'restore'],
    timeoutMs: 3_600_000,
    allowFailure: true,
  });
  if (r.exitCode !== 0) {
    await removeScratch(node, dir);
    throw new HostError(`${host.name}: pgbackrest restore into ${dir} failed (pgBackRest error ${errorCode(r.stderr + r.stdout) ?? r.exitCode}):\n    ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join('\n    ')}`);
  }
  const restoreMs = Date.now() - started;
  // TLS whenever the cluster has a CA (sprint 4 makes it, and a repository needs sprint 4): the copy holds the
  // cluster's data, and a restore is often wanted while the cluster is down and cannot be asked what it serves.
  const tls = (await secrets.clusterCa?.()) !== undefined;
  if (tls) await (await CertificateAuthority.lazy({ inventory: inv })()).ensureHostCert(node.host, dir, scratchCertRequest(host), REPO_USER);
  await node.host.writeFile(`${dir}/dpgc-scratch-hba.conf`, scratchHba(inv, tls), { mode: 0o600, owner: REPO_USER });
  // peer for the repository user as any role, so an operator can `sudo -u pgbackrest psql -h <dir> -p <port> -U postgres`.
  await node.host.writeFile(`${dir}/pg_ident.conf`, `scratch ${REPO_USER} postgres\nscratch ${REPO_USER} ${REPO_USER}\nscratch root postgres\n`, { mode: 0o600, owner: REPO_USER });
  // The source's postmaster.pid is not in a backup, but a leftover signal file from a standby is: recovery.signal decides.
  await node.host.exec(['rm', '-f', assertOwnedPath(`${dir}/standby.signal`, [node.paths.scratchDir], 'standby.signal of a scratch copy')]);
  const svc = scratchService(inv, node, dir, tls);
  const recStarted = Date.now();
  try {
    await node.services.start(svc);
    await waitUntil(
      async (seen) => {
        // A recovery that cannot reach its target ends the postmaster (FATAL): say so now, not after the timeout.
        const alive = await node.services.status({ name: SCRATCH });
        if (!alive.running) throw new HostError(`the scratch instance on ${host.name} stopped during recovery (${alive.reason})`);
        try {
          const inRecovery = await withClient(secrets, scratchEndpoint(inv, host, 'postgres'), async (c) => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r);
          seen(inRecovery ? 'still replaying WAL' : 'promoted');
          return !inRecovery;
        } catch (e) {
          // Not accepting connections yet while it replays.
          seen(e);
          return undefined;
        }
      },
      { timeoutMs: 1_800_000, everyMs: 500, retryErrors: false },
      `the scratch instance on ${host.name} reaching its target and promoting`,
    );
  } catch (e) {
    const tail = await node.services.logTail(SCRATCH, 20);
    await dropScratch(inv, pool).catch(() => undefined);
    throw new HostError(`${(e as Error).message}\n${tail}`, { hint: 'The log above is the scratch instance’s; a target after the last archived WAL never arrives (wait archive_timeout, or `dpgc backup mark` forces a WAL switch).' });
  }
  const recoveryMs = Date.now() - recStarted;
  const wal = replayedFromLog(await node.services.logTail(SCRATCH, 400));
  return { host, dir, port: inv.ports.restore_scratch, restoreMs, recoveryMs, wal, tls };
}

export function scratchEndpoint(inv: Pick<Inventory, 'ports'>, host: Pick<HostSpec, 'name' | 'address'>, database: string) {
  return { name: `${host.name} (scratch)`, address: host.address, port: inv.ports.restore_scratch, database, user: ROLES_DB.superuser.user, secret: ROLES_DB.superuser.secret };
}

/** Stops the scratch instance and removes every scratch directory. */
export async function dropScratch(inv: Pick<Inventory, 'hosts' | 'file'>, pool: HostPool): Promise<{ changed: boolean }> {
  const node = await pool.node(repoHost(inv).name);
  const stopped = await node.services.stop({ name: SCRATCH, stopTimeoutMs: 120_000 });
  const ls = await node.host.exec(['sh', '-c', 'ls -1 -- "$1" 2>/dev/null || true', 'sh', node.paths.scratchDir], { mutates: false });
  const dirs = ls.stdout.split('\n').filter(Boolean);
  for (const d of dirs) await removeScratch(node, `${node.paths.scratchDir}/${d}`);
  return { changed: stopped.changed || dirs.length > 0 };
}

async function removeScratch(node: Node, dir: string): Promise<void> {
  await node.host.exec(['rm', '-rf', '--one-file-system', assertOwnedPath(dir, [node.paths.scratchDir], 'scratch restore')]);
}
