import type { HostSpec, Inventory } from '../config/schema.js';
import type { HostPaths } from '../config/paths.js';
import type { Secrets } from '../config/secrets.js';
import { readFile } from 'node:fs/promises';
import { HostError } from '../errors.js';
import { caPathsFor } from './ca.js';
import { webRequest, WebError, type WebResponse } from './web-client.js';
import type { Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import { render } from '../templates.js';
import { installValidated, runValidator } from './config-file.js';
import { clientEndpoints, endpointAddress } from './etcd.js';
import { firstPostgres, ROLES_DB } from './endpoints.js';
import { waitUntil } from '../wait.js';
import { auditParameters } from './audit.js';
import { clusterTlsParameters } from './postgres-tls.js';
import { localSql } from './postgres.js';
import { ensureHbaMetric } from './security-metrics.js';

/**
 * Patroni: its config file (pure rendering), its service, and its REST API.
 * The file is mode 0600 owned by postgres because Patroni reads passwords
 * from it; that is the accepted place for them (Patroni has no other
 * secret source in 3.0.2 but environment variables, which the service
 * manager would have to carry anyway).
 */
type Inv = Pick<Inventory, 'cluster' | 'hosts' | 'ports' | 'postgres' | 'network' | 'timings' | 'patroni' | 'file'>;

export const PATRONI_SERVICE = 'patroni';
export const PATRONI_NAMESPACE = '/service/';
export const REST_USER = 'patroni';
/** The REST API's certificate: `<tlsDir>/patroni.crt` and `.key`, owned by postgres. */
export const REST_CERT = 'patroni';
/** Most a replica may lag (bytes) and still be promoted, or serve reads through HAProxy. */
export const MAX_LAG_BYTES = 1024 * 1024;

export interface PatroniCredentials {
  rest: { username: string; password: string };
  superuser: { username: string; password: string };
  replication: { username: string; password: string };
  rewind: { username: string; password: string };
}

export async function patroniCredentials(secrets: Pick<Secrets, 'get'>): Promise<PatroniCredentials> {
  return {
    rest: { username: REST_USER, password: await secrets.get('patroni_rest') },
    superuser: { username: ROLES_DB.superuser.user, password: await secrets.get(ROLES_DB.superuser.secret) },
    replication: { username: ROLES_DB.replication.user, password: await secrets.get(ROLES_DB.replication.secret) },
    rewind: { username: ROLES_DB.rewind.user, password: await secrets.get(ROLES_DB.rewind.secret) },
  };
}

/**
 * WAL archiving to the pgBackRest repository (sprint 4): one command for the
 * whole cluster, since each member's PostgreSQL finds its own host's config
 * through PGBACKREST_CONFIG (patroniService). archive_mode needs a restart;
 * archive_command and archive_timeout a reload (docs/lab-facts.md).
 */
export function archiveParameters(inv: Pick<Inventory, 'cluster' | 'backup'>): Record<string, string | number> {
  return {
    archive_mode: 'on',
    archive_command: `pgbackrest --stanza=${inv.cluster} archive-push %p`,
    archive_timeout: inv.backup.archive_timeout,
  };
}

export interface DynamicConfigOptions {
  /**
   * The settings sized to the hosts (postgres.settings among them), for every member alike. bootstrap.dcs
   * goes without them: the instance Patroni takes over already runs sprint 0's identical values, and the
   * converge step writes them right after.
   */
  sized?: Record<string, string | number>;
  /** Include WAL archiving (sprint 4 on). Without it the archive settings are left as they are, not removed. */
  archiving?: boolean;
  /** Include audit logging (sprint 5 on: src/components/audit.ts); without it, left as it is. */
  audit?: boolean;
  /** Include PostgreSQL's TLS (sprint 5 on: src/components/postgres-tls.ts); without it, left as it is. */
  tls?: boolean;
}

/** The dynamic (DCS-wide) configuration dpgc wants: what bootstrap.dcs seeds and PATCH /config converges. */
export function desiredDynamicConfig(inv: Pick<Inventory, 'timings' | 'postgres'> & Partial<Pick<Inventory, 'cluster' | 'backup'>>, o: DynamicConfigOptions = {}) {
  const p = inv.postgres;
  const archive = o.archiving && inv.cluster && inv.backup ? archiveParameters({ cluster: inv.cluster, backup: inv.backup }) : {};
  return {
    ttl: inv.timings.ttl,
    loop_wait: inv.timings.loop_wait,
    retry_timeout: inv.timings.retry_timeout,
    maximum_lag_on_failover: MAX_LAG_BYTES,
    synchronous_mode: true,
    // Not strict: with every standby gone the primary keeps taking writes (and says so) rather than hanging.
    synchronous_mode_strict: false,
    synchronous_node_count: p.synchronous_node_count,
    postgresql: {
      use_pg_rewind: true,
      use_slots: true,
      parameters: {
        wal_level: 'replica',
        hot_standby: 'on',
        wal_log_hints: 'on',
        max_connections: p.max_connections,
        max_wal_senders: 10,
        max_replication_slots: 10,
        wal_keep_size: '256MB',
        synchronous_commit: p.synchronous_commit,
        ...o.sized,
        ...archive,
        ...(o.tls ? clusterTlsParameters(inv) : {}),
        ...(o.audit ? auditParameters(p) : {}),
      } as Record<string, string | number>,
    },
  };
}

/** Host-local parameters: each node's own socket directory (two postmasters cannot share one). */
export function localParameters(paths: Pick<HostPaths, 'pgSocketDir'>): Record<string, string> {
  return { unix_socket_directories: paths.pgSocketDir };
}

/**
 * What the members' own configuration says about TLS. `requireTls` once the
 * cluster serves TLS (sprint 5; components/deployed.ts tlsRequired): pg_hba
 * takes TCP logins over TLS only and rejects the rest by name, and a member
 * streams from, and rewinds against, the leader with verify-full against the
 * cluster CA (Patroni writes it into primary_conninfo and pg_rewind's
 * connection). Before that, plain `host` rules.
 */
export interface PatroniTls {
  requireTls?: boolean;
  /**
   * The REST API serves https only, with the member's REST certificate
   * (components/patroni-tls.ts). Decided per member: the sprint that turns it
   * on does so one member at a time, and every other render keeps what the
   * member serves (patroni-tls.ts memberTls).
   */
  restTls?: boolean;
  /**
   * Patroni reaches etcd over TLS with its own client certificate
   * (components/etcd-tls.ts). Patroni reads this only when it starts: sprint
   * 5 restarts it, paused, once the first etcd member serves TLS.
   */
  etcdTls?: boolean;
}

/** Patroni's client certificate for etcd, on each postgres host (owned by postgres). */
export const ETCD_CLIENT_CERT = 'etcd-client';

export function patroniHba(inv: Pick<Inventory, 'network'>, o: PatroniTls = {}): string[] {
  const lines = ['local all postgres peer', 'local all all scram-sha-256'];
  // `all` as a database does not match a physical replication connection: `replication` is named apart.
  if (o.requireTls) lines.push('hostnossl all all all reject', 'hostnossl replication all all reject');
  const host = o.requireTls ? 'hostssl' : 'host';
  for (const c of inv.network.allowed_cidrs) {
    lines.push(`${host} replication ${ROLES_DB.replication.user} ${c} scram-sha-256`);
    lines.push(`${host} all all ${c} scram-sha-256`);
  }
  return lines;
}

/** The rules of a pg_hba.conf, one per line, whitespace-normalised, comments and blank lines dropped. */
export function hbaRules(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim().split(/\s+/).join(' '))
    .filter(Boolean);
}

/** The header Patroni writes above the rules (patroni/postgresql/config.py): a file dpgc repairs reads as Patroni's own. */
const PATRONI_HBA_HEADER = '# Do not edit this file manually!\n# It will be overwritten by Patroni!\n';

/**
 * pg_hba.conf as Patroni renders it from dpgc's configuration. Patroni writes
 * the file only when its configuration changes or PostgreSQL starts, so a rule
 * added by hand (a `trust` line) stays in force until then: a difference is
 * written back and PostgreSQL reloaded (through the local socket, as postgres,
 * which needs no password and so works even while the file is wrong).
 */
export async function ensureHbaAsRendered(inv: Pick<Inventory, 'network' | 'ports'>, node: Node, o: PatroniTls = {}): Promise<{ changed: boolean; note?: string }> {
  const file = `${node.paths.pgData}/pg_hba.conf`;
  const cur = await node.host.readFile(file);
  const want = patroniHba(inv, o);
  const metric = await ensureHbaMetric(node, want);
  if (cur !== undefined && hbaRules(cur).join('\n') === want.join('\n')) return metric ? { changed: true, note: 'hash of the rendered rules written for Prometheus' } : { changed: false };
  const extra = cur === undefined ? [] : hbaRules(cur).filter((l) => !want.includes(l));
  await node.host.writeFile(file, `${PATRONI_HBA_HEADER}${want.join('\n')}\n`, { mode: 0o600, owner: 'postgres' });
  await localSql(inv, node, 'SELECT pg_reload_conf()');
  return { changed: true, note: extra.length ? `removed ${extra.map((l) => `"${l}"`).join(', ')}` : 'rewritten' };
}

/**
 * The replica method that restores from the pgBackRest repository, when the
 * inventory has one (a backup host): until sprint 4 has made it, the command
 * fails at once and Patroni goes on to basebackup.
 */
export function pgbackrestRestoreCommand(inv: Pick<Inventory, 'cluster' | 'hosts'>, paths: Pick<HostPaths, 'pgbackrestConf'>): string | undefined {
  if (!inv.hosts.some((h) => h.roles.includes('backup') && !h.roles.includes('postgres'))) return undefined;
  return `pgbackrest --config=${paths.pgbackrestConf} --stanza=${inv.cluster} --delta restore`;
}

export function renderPatroniConfig(
  inv: Inv,
  host: Pick<HostSpec, 'name' | 'address'>,
  paths: Pick<HostPaths, 'pgData' | 'pgBin' | 'pgpass' | 'pgSocketDir' | 'pgbackrestConf' | 'tlsDir'>,
  creds: PatroniCredentials,
  o: PatroniTls = {},
): string {
  return render('patroni/patroni.yml.eta', {
    scope: inv.cluster,
    namespace: PATRONI_NAMESPACE,
    name: host.name,
    restListen: `${host.address}:${inv.ports.patroni}`,
    rest: creds.rest,
    etcdHosts: clientEndpoints(inv).map(endpointAddress),
    etcdTls: o.etcdTls ? { cacert: `${paths.tlsDir}/ca.crt`, cert: `${paths.tlsDir}/${ETCD_CLIENT_CERT}.crt`, key: `${paths.tlsDir}/${ETCD_CLIENT_CERT}.key` } : undefined,
    // Only the host holding the sprint-0 database may seed the DCS: a replica that raced
    // for the initialize key with an empty data directory would initdb a new, empty cluster.
    bootstrap: firstPostgres(inv).name === host.name,
    dcs: desiredDynamicConfig(inv),
    pgListen: `${host.address}:${inv.ports.postgres}`,
    dataDir: paths.pgData,
    binDir: paths.pgBin,
    pgpass: paths.pgpass,
    auth: creds,
    localParameters: localParameters(paths),
    pgHba: patroniHba(inv, o),
    // The CA file every member holds beside its own certificate (CertificateAuthority.ensureHostCert).
    peerTls: o.requireTls ? { sslmode: 'verify-full', sslrootcert: `${paths.tlsDir}/ca.crt` } : undefined,
    restTls: o.restTls ? { certfile: `${paths.tlsDir}/${REST_CERT}.crt`, keyfile: `${paths.tlsDir}/${REST_CERT}.key` } : undefined,
    // Every member trusts the CA for the others' REST APIs before any of them serves it.
    ctlCa: o.requireTls || o.restTls ? `${paths.tlsDir}/ca.crt` : undefined,
    watchdog: inv.patroni.watchdog,
    pgbackrestRestore: pgbackrestRestoreCommand(inv, paths),
  });
}

export function patroniService(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>): ServiceSpec {
  return {
    name: PATRONI_SERVICE,
    user: 'postgres',
    argv: ['patroni', node.paths.patroniConf],
    // PostgreSQL inherits Patroni's environment, and so does its archive_command: one cluster-wide
    // `pgbackrest … archive-push %p` (Patroni's dynamic configuration) finds this host's own config.
    env: { LC_ALL: 'C.UTF-8', PYTHONUNBUFFERED: '1', PGBACKREST_CONFIG: node.paths.pgbackrestConf },
    cwd: node.paths.pgHome,
    listen: { address: node.spec.address, port: inv.ports.patroni },
    // A crashed Patroni comes back at once and, holding its leader key still, resumes without a failover.
    restart: 'always',
    // Patroni stops PostgreSQL itself; paused (sprint 5's switch of etcd to TLS) it must leave it running.
    killMode: 'process',
    startTimeoutMs: 60_000,
    // Patroni stops its PostgreSQL cleanly first (docs/lab-facts.md: within ~10 s).
    stopTimeoutMs: 120_000,
  };
}

/**
 * Patroni's own validator. `--ignore-listen-port` (Patroni 3.0.3+) skips the
 * one check that is always wrong here: the listen port is taken, by the
 * sprint-0 instance or by Patroni itself. Everything else it says is real
 * (an unreachable etcd member included) and stops the install.
 */
export const validatePatroniArgv = (file: string): string[] => ['patroni', '--validate-config', '--ignore-listen-port', file];

/**
 * The config file, 0600 postgres, installed only once Patroni's validator
 * (minus its false errors) accepts it; a Patroni already running re-reads a
 * changed one on SIGHUP (and rewrites pg_hba and primary_conninfo from it,
 * reloading PostgreSQL: no restart).
 */
export async function ensurePatroniConfig(inv: Inv, node: Node, creds: PatroniCredentials, o: PatroniTls = {}): Promise<{ changed: boolean; note?: string; written: boolean }> {
  const text = renderPatroniConfig(inv, node.spec, node.paths, creds, o);
  const w = await installValidated(node.host, node.paths.patroniConf, text, { mode: 0o600, owner: 'postgres' }, (candidate) =>
    runValidator(node.host, 'Patroni config', validatePatroniArgv(candidate), { user: 'postgres' }),
  );
  // Patroni writes pg_hba from this file: what dpgc expects of it changes with it (components/security-metrics.ts).
  const metric = await ensureHbaMetric(node, patroniHba(inv, o));
  if (!w.changed) return metric ? { changed: true, note: 'hash of the rendered pg_hba rules written for Prometheus', written: false } : { changed: false, written: false };
  const svc = patroniService(inv, node);
  if (!(await node.services.status(svc)).running) return { changed: true, written: true };
  await node.services.reload(svc);
  return { changed: true, note: 'Patroni reloaded', written: true };
}

/**
 * The keys of `desired` whose values differ in `current`, as a PATCH body
 * (nested objects compared key by key; keys only in `current` are left alone,
 * so settings an operator added by hand survive).
 */
export function dynamicConfigPatch(current: Record<string, unknown>, desired: Record<string, unknown>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const [k, want] of Object.entries(desired)) {
    const have = current[k];
    if (want && typeof want === 'object' && !Array.isArray(want)) {
      const sub = dynamicConfigPatch(have && typeof have === 'object' ? (have as Record<string, unknown>) : {}, want as Record<string, unknown>);
      if (sub) out[k] = sub;
    } else if (!sameValue(have, want)) {
      out[k] = want;
    }
  }
  return Object.keys(out).length ? out : undefined;
}

/** Patroni hands parameters back as it stored them: 200 and "200", "on" and true are the same setting. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a === null || b === null) return false;
  const norm = (v: unknown) => (v === true ? 'on' : v === false ? 'off' : String(v).toLowerCase());
  return norm(a) === norm(b);
}

// ---------------------------------------------------------------- REST API

export interface RestTarget {
  name: string;
  address: string;
  port: number;
  /** The cluster CA's certificate file on the control machine (`<inventory>.ca/ca.crt`): https is tried when it exists. */
  caFile?: string;
}

/**
 * The inventory's file locates the cluster CA; an inventory without one (a
 * unit test's) reaches Patroni in plaintext only.
 */
export function restTarget(inv: Pick<Inventory, 'ports'> & Partial<Pick<Inventory, 'file'>>, h: Pick<HostSpec, 'name' | 'address'>): RestTarget {
  return { name: h.name, address: h.address, port: inv.ports.patroni, ...(inv.file ? { caFile: caPathsFor(inv.file).cert } : {}) };
}

export interface RestResponse<T> {
  status: number;
  body: T;
}

/** The CA's certificate by file, read once it exists (a sprint may make it mid-run). */
const caPems = new Map<string, string>();
async function caPem(file: string | undefined): Promise<string | undefined> {
  if (!file) return undefined;
  const known = caPems.get(file);
  if (known) return known;
  const pem = await readFile(file, 'utf8').catch(() => undefined);
  if (pem) caPems.set(file, pem);
  return pem;
}

/** What each member served last (address:port), so a member that serves plaintext costs one failed handshake, not one per call. */
const lastScheme = new Map<string, 'https' | 'http'>();

/**
 * One REST call from the control machine; `auth` for Patroni's unsafe
 * endpoints (POST, PATCH). Over https, verified against the cluster CA and the
 * member's address, whenever the member serves it (sprint 5 on); plaintext
 * only when the member answers in plaintext, so a member in the middle of its
 * switch to TLS, either way, is still reached. The other scheme is tried only
 * when the first one got no answer because of the protocol (a handshake
 * answered in plaintext, a plaintext request closed unanswered): the request
 * never reached Patroni, so even a POST is sent at most once. A certificate
 * that does not verify is an error, never a reason to fall back.
 */
export async function rest<T = unknown>(
  t: RestTarget,
  method: 'GET' | 'POST' | 'PATCH' | 'OPTIONS',
  path: string,
  opts: { body?: unknown; auth?: { username: string; password: string }; timeoutMs?: number } = {},
): Promise<RestResponse<T>> {
  const key = `${t.address}:${t.port}`;
  const ca = await caPem(t.caFile);
  const first = ca === undefined ? 'http' : (lastScheme.get(key) ?? 'https');
  const send = (scheme: 'https' | 'http') =>
    webRequest(`${scheme}://${key}${path}`, { method, body: opts.body, ...(opts.auth ? { auth: opts.auth } : {}), ...(scheme === 'https' && ca ? { ca } : {}), timeoutMs: opts.timeoutMs ?? 5000 });
  let res: WebResponse;
  try {
    try {
      res = await send(first);
      lastScheme.set(key, first);
    } catch (e) {
      const other = first === 'https' ? 'http' : 'https';
      const wrongProtocol = e instanceof WebError && (first === 'https' ? e.kind === 'not-tls' : e.kind === 'closed' && ca !== undefined);
      if (!wrongProtocol) throw e;
      res = await send(other);
      lastScheme.set(key, other);
    }
  } catch (e) {
    throw new HostError(`${t.name}: Patroni REST API at ${key} did not answer ${method} ${path} (${(e as Error).message})`, {
      hint: `Is Patroni running on ${t.name}? \`dpgc status\` shows each member; its log is under the host's log directory (patroni.log).`,
    });
  }
  let body: unknown = res.body;
  try {
    body = res.body ? JSON.parse(res.body) : undefined;
  } catch {
    // plain-text answers (POST /switchover) stay strings
  }
  return { status: res.status, body: body as T };
}

export interface PatroniMemberStatus {
  state: string;
  role: string;
  timeline?: number;
  database_system_identifier?: string;
  pending_restart?: boolean;
  xlog?: { location?: number; received_location?: number; replayed_location?: number; replayed_timestamp?: string | null };
  replication?: { usename: string; application_name: string; client_addr: string; state: string; sync_state: string; sync_priority: number }[];
  patroni?: { version: string; scope: string };
}

export interface ClusterMember {
  name: string;
  role: string;
  state: string;
  host: string;
  port: number;
  api_url?: string;
  timeline?: number;
  lag?: number | string;
}

export async function memberStatus(t: RestTarget): Promise<PatroniMemberStatus> {
  return (await rest<PatroniMemberStatus>(t, 'GET', '/patroni')).body;
}

export async function clusterMembers(t: RestTarget): Promise<ClusterMember[]> {
  return (await rest<{ members?: ClusterMember[] }>(t, 'GET', '/cluster')).body.members ?? [];
}

/** What Patroni says about the cluster (GET /cluster: its DCS record), and which member said it. */
export interface PatroniView {
  from: string;
  members: ClusterMember[];
  leader: ClusterMember | undefined;
  /** Maintenance mode: Patroni manages nothing and fails nothing over. */
  paused: boolean;
}

/**
 * The one way dpgc asks Patroni who is in the cluster (status, checks, drills, routing, switchover):
 * every member at once with a short timeout, and the first answer wins, so a dead or hung member costs
 * nothing. A member named in `distrust` (a drill's frozen or cut-off victim, whose view is stale by
 * construction) is asked only when nobody else answers. Throws when no member answers.
 */
export async function patroniView(inv: Pick<Inventory, 'hosts' | 'ports'>, opts: { distrust?: string; timeoutMs?: number } = {}): Promise<PatroniView> {
  const hosts = inv.hosts.filter((x) => x.roles.includes('postgres'));
  const ask = async (h: (typeof hosts)[number]): Promise<PatroniView> => {
    const r = await rest<{ members?: ClusterMember[]; pause?: boolean }>(restTarget(inv, h), 'GET', '/cluster', { timeoutMs: opts.timeoutMs ?? 5000 });
    if (r.status !== 200 || !r.body?.members) throw new Error(`${h.name}: HTTP ${r.status}`);
    return { from: h.name, members: r.body.members, leader: leaderOf(r.body.members), paused: r.body.pause === true };
  };
  const first = (hs: typeof hosts) => Promise.any(hs.map(ask));
  try {
    return await first(hosts.filter((h) => h.name !== opts.distrust));
  } catch (e) {
    const suspect = await first(hosts.filter((h) => h.name === opts.distrust)).catch(() => undefined);
    if (suspect) return suspect;
    const errors = e instanceof AggregateError ? e.errors.map((x) => (x instanceof Error ? x.message.split('\n')[0] : String(x))) : [(e as Error).message];
    throw new HostError(`no Patroni member answers its REST API:\n  ${errors.join('\n  ')}`, {
      hint: 'Start Patroni with `dpgc sprint 3` (safe to re-run); each host keeps its log in patroni.log under its log directory.',
    });
  }
}

const LEADER_ROLES = new Set(['leader', 'master', 'primary', 'standby_leader']);

/** Patroni's names for the leader across versions (3.x `master`, 4.x `primary`; `leader` in GET /cluster). */
export function isLeaderRole(role: string): boolean {
  return LEADER_ROLES.has(role);
}

export function leaderOf<M extends { role: string }>(members: M[]): M | undefined {
  return members.find((m) => isLeaderRole(m.role));
}

/**
 * A planned leader change (POST /switchover, authenticated). Without a
 * candidate Patroni picks one; in synchronous mode only a synchronous standby
 * qualifies. Resolves once the new leader is running.
 */
export async function switchover(
  inv: Pick<Inventory, 'hosts' | 'ports'>,
  secrets: Pick<Secrets, 'get'>,
  opts: { candidate?: string; timeoutMs?: number } = {},
): Promise<{ from: string; to: string; durationMs: number }> {
  const started = Date.now();
  const { leader } = await patroniView(inv);
  if (!leader) throw new HostError('switchover refused: the cluster has no leader right now', { hint: 'Run `dpgc status` and wait for a leader first.' });
  const leaderHost = inv.hosts.find((h) => h.name === leader.name);
  if (!leaderHost) throw new HostError(`the leader ${leader.name} is not a host of the inventory`);
  const auth = { username: REST_USER, password: await secrets.get('patroni_rest') };
  const body = { leader: leader.name, ...(opts.candidate ? { candidate: opts.candidate } : {}) };
  const r = await rest<string>(restTarget(inv, leaderHost), 'POST', '/switchover', { body, auth, timeoutMs: opts.timeoutMs ?? 60_000 });
  if (r.status !== 200) throw new HostError(`switchover from ${leader.name} refused by Patroni (HTTP ${r.status}): ${String(r.body).trim()}`);
  const to = await waitUntil(
    async () => {
      const now = (await patroniView(inv).catch(() => undefined))?.leader;
      // Done when the new leader says so itself, not only the cluster view: callers go on to use it as the primary.
      const host = now && now.name !== leader.name && now.state === 'running' ? inv.hosts.find((h) => h.name === now.name) : undefined;
      const role = host ? (await memberStatus(restTarget(inv, host)).catch(() => undefined))?.role : undefined;
      return now && (role === 'primary' || role === 'master') ? now.name : undefined;
    },
    {
      timeoutMs: Math.max(0, started + (opts.timeoutMs ?? 60_000) - Date.now()),
      everyMs: 250,
      timeoutError: () => new HostError(`switchover from ${leader.name}: no new running leader after ${(opts.timeoutMs ?? 60_000) / 1000}s`),
    },
    `a new running leader after the switchover from ${leader.name}`,
  );
  return { from: leader.name, to, durationMs: Date.now() - started };
}
