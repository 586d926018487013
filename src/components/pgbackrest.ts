import { hostPaths, type HostPaths } from '../config/paths.js';
import type { HostSpec, Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { ConfigError, HostError } from '../errors.js';
import type { HostPool, Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import type { ExecResult } from '../hosts/types.js';
import { render } from '../templates.js';
import type { CertificateAuthority, CertRequest } from './ca.js';
import { ensureDir } from './postgres.js';

/**
 * pgBackRest: a repository on the host with the `backup` role, owned by its
 * own OS user and served by `pgbackrest server` (TLS, client certificates
 * from the cluster's CA); each database host runs a TLS server too (as
 * postgres, beside its data directory), so the repository host reads a
 * standby for backups and the database hosts push WAL, with no SSH between
 * them. The encryption passphrase lives only in the repository host's
 * config (mode 0600): the database hosts never see it.
 */
type Inv = Pick<Inventory, 'cluster' | 'hosts' | 'ports' | 'postgres' | 'backup' | 'file'>;

export const PGBACKREST_PACKAGES = ['pgbackrest'] as const;
/** The repository's owner on the backup host; on database hosts pgBackRest runs as postgres (it reads the data directory). */
export const REPO_USER = 'pgbackrest';
export const SERVER = 'pgbackrest-server';
export const SCHEDULE = 'pgbackrest-schedule';
export const CERT_NAME = 'pgbackrest';
/** Every this many successful scheduled runs, a full backup; the others are differential. */
export const FULL_EVERY_RUNS = 7;

export function repoHost(inv: Pick<Inventory, 'hosts' | 'file'>): HostSpec {
  const h = inv.hosts.find((x) => x.roles.includes('backup'));
  if (!h) throw new ConfigError(`${inv.file}: no host has the backup role`, { hint: 'Add backup to the roles of the host that keeps the pgBackRest repository, e.g. the control host.' });
  if (h.roles.includes('postgres')) {
    throw new ConfigError(`${inv.file}: ${h.name} has both the backup and the postgres roles; dpgc keeps the pgBackRest repository off the database hosts`, {
      hint: 'A repository on a database host is lost with it. Move the backup role to a host without postgres (a control host).',
    });
  }
  return h;
}

export function pgHosts(inv: Pick<Inventory, 'hosts'>): HostSpec[] {
  return inv.hosts.filter((h) => h.roles.includes('postgres'));
}

export function runsAs(spec: Pick<HostSpec, 'roles'>): string {
  return spec.roles.includes('backup') ? REPO_USER : 'postgres';
}

export function tlsFiles(paths: Pick<HostPaths, 'tlsDir'>) {
  return { ca: `${paths.tlsDir}/ca.crt`, cert: `${paths.tlsDir}/${CERT_NAME}.crt`, key: `${paths.tlsDir}/${CERT_NAME}.key` };
}

/** One certificate per host for pgBackRest, server and client at once: its CN is what tls-server-auth names. */
export function certRequest(spec: Pick<HostSpec, 'name' | 'address'>): CertRequest {
  // The address is a DNS name too: pgBackRest 2.45 compares the host it dialled with the CN and DNS
  // names only, never with IP addresses (docs/lab-facts.md).
  // An identity (tls-server-auth accepts hosts by CN): the CA's, even on a host with an operator's certificate.
  return { name: CERT_NAME, cn: spec.name, dns: [spec.name, spec.address], ips: [spec.address], usage: ['server', 'client'], identity: true };
}

/** pgbackrest.conf for one host (pure). The repository host's holds the passphrase. */
export function renderPgbackrestConf(inv: Inv, spec: HostSpec, cipherPass?: string): string {
  const paths = hostPaths(inv, spec);
  const repo = repoHost(inv);
  const isRepo = spec.name === repo.name;
  if (isRepo && !cipherPass) throw new Error('the repository host configuration needs the passphrase');
  const pgs = isRepo ? pgHosts(inv) : [spec];
  return render('pgbackrest/pgbackrest.conf.eta', {
    host: spec.name,
    address: spec.address,
    repoHost: isRepo,
    user: runsAs(spec),
    stanza: inv.cluster,
    port: inv.ports.pgbackrest,
    logPath: paths.pgbackrestLog,
    lockPath: paths.pgbackrestLock,
    spoolPath: paths.pgbackrestSpool,
    repoPath: inv.backup.repo_path,
    retentionFull: inv.backup.retention_full,
    retentionDiff: inv.backup.retention_diff,
    cipherPass,
    repo: { name: repo.name, address: repo.address, conf: hostPaths(inv, repo).pgbackrestConf, confDir: dirOf(hostPaths(inv, repo).pgbackrestConf) },
    tls: tlsFiles(paths),
    // The repository host accepts the database hosts; a database host accepts the repository host.
    clients: isRepo ? pgHosts(inv).map((h) => h.name) : [repo.name],
    pg: pgs.map((h) => {
      const p = hostPaths(inv, h);
      return { host: isRepo ? h.address : undefined, path: p.pgData, port: inv.ports.postgres, socket: p.pgSocketDir, conf: p.pgbackrestConf, confDir: dirOf(p.pgbackrestConf) };
    }),
  });
}

const dirOf = (f: string) => f.replace(/\/[^/]+$/, '');

export function serverService(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>): ServiceSpec {
  return {
    name: SERVER,
    user: runsAs(node.spec),
    argv: ['pgbackrest', `--config=${node.paths.pgbackrestConf}`, 'server'],
    listen: { address: node.spec.address, port: inv.ports.pgbackrest },
    restart: 'always',
    startTimeoutMs: 30_000,
  };
}

/** The repository's own user (no login, home at the repository), where the host has none. */
export async function ensureRepoUser(node: Node, repoPath: string): Promise<{ changed: boolean; note?: string }> {
  const r = await node.host.exec(['id', '-u', REPO_USER], { mutates: false, allowFailure: true });
  if (r.exitCode === 0) return { changed: false };
  await node.host.exec(['useradd', '--system', '--user-group', '--home-dir', repoPath, '--no-create-home', '--shell', '/usr/sbin/nologin', '--comment', 'pgBackRest repository (dpgc)', REPO_USER]);
  return { changed: true, note: `created OS user ${REPO_USER}` };
}

/**
 * Directories: the repository (0700, its user only: "not readable by other
 * users" is a criterion), logs, locks and the archive spool.
 */
export async function ensureDirectories(inv: Inv, node: Node): Promise<boolean> {
  const user = runsAs(node.spec);
  const dirs: [string, number][] = [
    [node.paths.pgbackrestLog, 0o750],
    [node.paths.pgbackrestLock, 0o750],
    [node.paths.pgbackrestSpool, 0o750],
  ];
  if (node.spec.roles.includes('backup')) dirs.push([inv.backup.repo_path, 0o700], [node.paths.backupState, 0o700], [node.paths.scratchDir, 0o700]);
  let changed = false;
  for (const [d, mode] of dirs) changed = (await ensureDir(node.host, d, user, mode)) || changed;
  return changed;
}

export async function ensureTls(ca: CertificateAuthority, node: Node): Promise<{ changed: boolean; note?: string }> {
  const r = await ca.ensureHostCert(node.host, node.paths.tlsDir, certRequest(node.spec), runsAs(node.spec));
  return { changed: r.changed, ...(r.reason ? { note: `issued: ${r.reason}` } : {}) };
}

export async function ensureConf(inv: Inv, node: Node, secrets: Pick<Secrets, 'get'>): Promise<boolean> {
  const isRepo = node.spec.roles.includes('backup');
  const text = renderPgbackrestConf(inv, node.spec, isRepo ? await secrets.get('pgbackrest_cipher') : undefined);
  return (await node.host.writeFile(node.paths.pgbackrestConf, text, { mode: 0o600, owner: runsAs(node.spec) })).changed;
}

/** The TLS server running with the current config and certificate: restarted when either changed. */
export async function ensureServer(inv: Inv, node: Node, changed: boolean): Promise<{ changed: boolean; note?: string }> {
  const svc = serverService(inv, node);
  const st = await node.services.status(svc);
  if (st.running && changed) {
    await node.services.restart(svc);
    return { changed: true, note: 'restarted with the new configuration' };
  }
  return { changed: (await node.services.start(svc)).changed };
}

// ---------------------------------------------------------------- running pgBackRest

export interface PgbackrestRun {
  args: string[];
  /** Options passed before the command (--type=full, --target=…). */
  timeoutMs?: number;
  allowFailure?: boolean;
  mutates?: boolean;
}

/** pgbackrest with this host's config and the cluster's stanza, as the user it runs as on that host. */
export function pgbackrest(inv: Pick<Inventory, 'cluster'>, node: Node, r: PgbackrestRun): Promise<ExecResult> {
  return node.host.exec(['pgbackrest', `--config=${node.paths.pgbackrestConf}`, `--stanza=${inv.cluster}`, ...r.args], {
    user: runsAs(node.spec),
    timeoutMs: r.timeoutMs ?? 600_000,
    allowFailure: r.allowFailure ?? false,
    mutates: r.mutates ?? true,
  });
}

/** What `pgbackrest info --output=json` says about one backup. */
export interface BackupInfo {
  label: string;
  type: 'full' | 'diff' | 'incr';
  timestamp: { start: number; stop: number };
  archive?: { start?: string; stop?: string };
  lsn?: { start?: string; stop?: string };
  info?: { size?: number; delta?: number; repository?: { size?: number; delta?: number } };
  error?: boolean;
}

export interface StanzaInfo {
  name: string;
  status: { code: number; message: string };
  cipher?: string;
  backup: BackupInfo[];
  archive?: { id: string; min?: string; max?: string }[];
  repo?: { cipher?: string; key: number; status: { code: number; message: string } }[];
}

export async function stanzaInfo(inv: Pick<Inventory, 'cluster'>, node: Node): Promise<StanzaInfo | undefined> {
  const r = await pgbackrest(inv, node, { args: ['--output=json', 'info'], mutates: false, timeoutMs: 60_000 });
  return parseInfo(r.stdout, inv.cluster);
}

/** Pure: the stanza's entry of `pgbackrest info --output=json`. */
export function parseInfo(json: string, stanza: string): StanzaInfo | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new HostError(`pgbackrest info gave no JSON: ${json.slice(0, 200)}`);
  }
  return Array.isArray(doc) ? (doc as StanzaInfo[]).find((s) => s.name === stanza) : undefined;
}

/** pgBackRest's info status codes: 1 missing stanza path, 3 missing stanza data: the stanza must be created. */
const NO_STANZA = new Set([1, 3]);

/** stanza-create, only when the repository has no such stanza yet (its own command is idempotent too, but says nothing useful). */
export async function ensureStanza(inv: Inv, node: Node): Promise<{ changed: boolean; note?: string }> {
  const info = await stanzaInfo(inv, node);
  if (info && !NO_STANZA.has(info.status.code)) return { changed: false, note: info.status.message };
  await pgbackrest(inv, node, { args: ['stanza-create'], timeoutMs: 120_000 });
  return { changed: true, note: `stanza ${inv.cluster} created` };
}

/** `pgbackrest check` on one host: archiving and the repository, as that host sees them. */
export async function checkOn(inv: Pick<Inventory, 'cluster'>, node: Node): Promise<{ ok: boolean; detail: string }> {
  // check writes a WAL switch on the primary; it changes nothing dpgc manages, so it runs under --dry-run too.
  const r = await pgbackrest(inv, node, { args: ['--archive-timeout=30', 'check'], allowFailure: true, mutates: false, timeoutMs: 120_000 });
  const out = (r.stderr.trim() || r.stdout.trim()).split('\n');
  const msg = out.filter((l) => /ERROR|WARN/.test(l)).join(' ') || out[out.length - 1]?.trim();
  return { ok: r.exitCode === 0, detail: r.exitCode === 0 ? 'ok' : msg || `exit ${r.exitCode}` };
}

/** The repository host's node. */
export function repoNode(inv: Pick<Inventory, 'hosts' | 'file'>, pool: HostPool): Promise<Node> {
  return pool.node(repoHost(inv).name);
}

/** A pgBackRest error code from its output (`ERROR: [050]: …`). */
export function errorCode(out: string): number | undefined {
  const m = /ERROR: \[(\d{3})\]/.exec(out);
  return m ? Number(m[1]) : undefined;
}
