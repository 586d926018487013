import { transitionCheckMs } from '../config/timings.js';
import type { HostSpec, Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import type { HostPaths } from '../config/paths.js';
import { withClient, type Credentials } from '../db/client.js';
import { writableHost } from './databases.js';
import { HostError } from '../errors.js';
import type { HostPool, Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import { render } from '../templates.js';
import { DATABASES, ROLES_DB, firstPostgres, pgbouncerAdmin, superuserOn, type DatabaseKey } from './endpoints.js';
import { clientTls, type ClientTlsChoice } from './deployed.js';
import { scramMatches, scramVerifier, parseScramVerifier } from './scram.js';
import { APP_ROLE_LIST } from './roles.js';
import { CertificateAuthority, type CertRequest } from './ca.js';
import type { Logger } from '../output/log.js';

const APP_ROLE_USERS = APP_ROLE_LIST.map((r) => r.user);

/**
 * PgBouncer: the one address applications use. Rendering is pure; the
 * backend each database alias points at is a parameter, so sprint 1 routes
 * to the base instance and later sprints re-point it at HAProxy.
 */
export interface PgbouncerBackend {
  /** The database name clients ask for. */
  alias: string;
  host: string;
  port: number;
  /** The database on the server. */
  dbname: string;
}

/** Sprint 1: both databases on the base instance. */
export function baseInstanceBackends(inv: Pick<Inventory, 'hosts' | 'file' | 'ports'>): PgbouncerBackend[] {
  const pg = firstPostgres(inv);
  return (Object.keys(DATABASES) as DatabaseKey[]).map((k) => ({ alias: DATABASES[k].name, host: pg.address, port: inv.ports.postgres, dbname: DATABASES[k].name }));
}

export function pgbouncerFiles(paths: Pick<HostPaths, 'pgbouncerDir'>) {
  return { ini: `${paths.pgbouncerDir}/pgbouncer.ini`, authFile: `${paths.pgbouncerDir}/userlist.txt`, serverCa: `${paths.pgbouncerDir}/server-ca.crt` };
}

/** PgBouncer's own certificate, for its clients: in the host's TLS directory, beside PostgreSQL's on a member. */
export const PGBOUNCER_CERT = 'pgbouncer';
export function pgbouncerCertFiles(paths: Pick<HostPaths, 'tlsDir'>) {
  return { cert: `${paths.tlsDir}/${PGBOUNCER_CERT}.crt`, key: `${paths.tlsDir}/${PGBOUNCER_CERT}.key` };
}

/** Its host's name and address: applications dial PgBouncer directly. */
export function pgbouncerCertRequest(spec: Pick<HostSpec, 'name' | 'address'>): CertRequest {
  return { name: PGBOUNCER_CERT, cn: spec.name, dns: [spec.name], ips: [spec.address], usage: ['server'] };
}

/**
 * `serverTls`: PostgreSQL serves TLS (components/deployed.ts clientTls), so
 * every server connection uses it, verify-full against the CA file. Then
 * PgBouncer requires TLS of its own clients too (`clientTls`, its
 * certificate's files): the cluster takes TLS only, end to end.
 */
export function renderPgbouncerIni(
  inv: Pick<Inventory, 'pgbouncer' | 'ports' | 'timings'>,
  host: Pick<HostSpec, 'name' | 'address'>,
  paths: Pick<HostPaths, 'pgbouncerDir' | 'pgSocketDir' | 'tlsDir'>,
  backends: PgbouncerBackend[],
  o: { serverTls?: boolean } = {},
): string {
  const b = inv.pgbouncer;
  for (const d of backends) {
    if (!/^[A-Za-z0-9_.-]+$/.test(d.alias) || !/^[A-Za-z0-9_.-]+$/.test(d.dbname) || !/^[A-Za-z0-9_.:-]+$/.test(d.host)) {
      throw new Error(`pgbouncer backend ${JSON.stringify(d)} has characters PgBouncer would need quoted`);
    }
  }
  return render('pgbouncer/pgbouncer.ini.eta', {
    hostName: host.name,
    databases: backends,
    listenAddr: host.address,
    listenPort: inv.ports.pgbouncer,
    socketDir: paths.pgSocketDir,
    authFile: pgbouncerFiles(paths).authFile,
    adminUser: ROLES_DB.pgbouncerAdmin.user,
    poolMode: b.pool_mode,
    maxClientConn: b.max_client_conn,
    defaultPoolSize: b.default_pool_size,
    reservePoolSize: b.reserve_pool_size,
    reservePoolTimeout: b.reserve_pool_timeout,
    // Retrying a server login faster than HAProxy re-checks a promoted
    // replica gains nothing; slower adds the difference to every failover.
    loginRetryS: transitionCheckMs(inv.timings) / 1000,
    serverCa: o.serverTls ? pgbouncerFiles(paths).serverCa : undefined,
    clientTls: o.serverTls ? pgbouncerCertFiles(paths) : undefined,
  });
}

/** `"user" "verifier"` lines; PgBouncer doubles a quote inside a quoted field. */
export function renderAuthFile(entries: { user: string; verifier: string }[]): string {
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const sorted = [...entries].sort((a, b) => a.user.localeCompare(b.user));
  return `${sorted.map((e) => `${q(e.user)} ${q(e.verifier)}`).join('\n')}\n`;
}

export function parseAuthFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^"((?:[^"]|"")*)"\s+"((?:[^"]|"")*)"/.exec(line.trim());
    if (m) out.set(m[1]!.replace(/""/g, '"'), m[2]!.replace(/""/g, '"'));
  }
  return out;
}

/**
 * File descriptors PgBouncer may need: one per client, one per server
 * connection (pool + reserve, per database and user), plus its own files.
 */
export function pgbouncerNofile(inv: Pick<Inventory, 'pgbouncer'>, pools: number): number {
  const b = inv.pgbouncer;
  return b.max_client_conn + pools * (b.default_pool_size + b.reserve_pool_size) + 256;
}

export function pgbouncerService(inv: Pick<Inventory, 'pgbouncer' | 'ports'>, node: Pick<Node, 'spec' | 'paths'>, backends: PgbouncerBackend[]): ServiceSpec {
  return {
    name: 'pgbouncer',
    user: 'postgres',
    argv: ['/usr/sbin/pgbouncer', pgbouncerFiles(node.paths).ini],
    listen: { address: node.spec.address, port: inv.ports.pgbouncer },
    // Each application owner gets one pool per database alias.
    nofile: pgbouncerNofile(inv, backends.length),
  };
}

/**
 * The auth file's entries. Application owners carry the server's own
 * verifier from pg_authid (PgBouncer then logs in to PostgreSQL with the
 * client's SCRAM proof; a different verifier for the same password fails,
 * pgbouncer#944). The admin console user exists only in PgBouncer: its
 * verifier is made here, and an existing one is kept while it still matches
 * the secret, so a re-run rewrites nothing.
 */
export async function authEntries(
  inv: Pick<Inventory, 'hosts' | 'file' | 'ports'>,
  secrets: Pick<Secrets, 'get'>,
  current: string | undefined,
): Promise<{ user: string; verifier: string }[]> {
  const owners = Object.values(DATABASES).map((d) => d.owner);
  // The node that takes writes: where a password was just set. A replica may not have replayed it yet, and
  // PgBouncer logs in to PostgreSQL with the verifier it holds (an older one has another salt, and fails).
  const pg = await writableHost(inv, secrets);
  const rows = await withClient(secrets, superuserOn(inv, pg), async (c) =>
    (await c.query<{ rolname: string; rolpassword: string | null }>('SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1)', [[...owners, ...APP_ROLE_USERS]])).rows,
  );
  const entries: { user: string; verifier: string }[] = [];
  for (const owner of owners) {
    const v = rows.find((r) => r.rolname === owner)?.rolpassword;
    if (!v || !parseScramVerifier(v)) {
      throw new HostError(`${pg.name}: role ${owner} has no SCRAM-SHA-256 password in pg_authid, so PgBouncer cannot authenticate it`, {
        hint: 'Run `dpgc sprint 0` again: it sets every application password as a SCRAM verifier.',
      });
    }
    entries.push({ user: owner, verifier: v });
  }
  // The application's login roles exist from sprint 5 on; before that there is nothing to route for them.
  for (const user of APP_ROLE_USERS) {
    const v = rows.find((r) => r.rolname === user)?.rolpassword;
    if (v && parseScramVerifier(v)) entries.push({ user, verifier: v });
  }
  const admin = ROLES_DB.pgbouncerAdmin;
  const secret = await secrets.get(admin.secret);
  const prev = current === undefined ? undefined : parseAuthFile(current).get(admin.user);
  entries.push({ user: admin.user, verifier: prev && scramMatches(prev, secret) ? prev : scramVerifier(secret) });
  return entries;
}

/**
 * Write config and auth file, then start PgBouncer, or SIGHUP it when a file
 * changed (a reload keeps every client connection; a restart would drop them).
 */
export async function ensurePgbouncer(
  ctx: { inventory: Inventory; secrets: Credentials; pool: HostPool; logger: Logger; options: { dryRun: boolean } },
  node: Node,
  backends: PgbouncerBackend[],
  o: ClientTlsChoice = {},
): Promise<{ changed: boolean; note?: string }> {
  const inv = ctx.inventory;
  const files = pgbouncerFiles(node.paths);
  const ca = o.tlsCa ?? (await clientTls(ctx));
  const ini = renderPgbouncerIni(inv, node.spec, node.paths, backends, { serverTls: ca !== undefined });
  const auth = renderAuthFile(await authEntries(inv, ctx.secrets, await node.host.readFile(files.authFile)));
  // Whichever sprint renders PgBouncer on a cluster with TLS makes sure the certificate its ini names is there (and current).
  const cert =
    ca === undefined
      ? { changed: false }
      : await (await CertificateAuthority.lazy(ctx)()).ensureHostCert(node.host, node.paths.tlsDir, pgbouncerCertRequest(node.spec), 'postgres');
  const w0 = ca === undefined ? { changed: false } : await node.host.writeFile(files.serverCa, ca, { mode: 0o644, owner: 'root' });
  const before = await node.host.readFile(files.ini);
  const w1 = await node.host.writeFile(files.ini, ini, { mode: 0o640, owner: 'root', group: 'postgres' });
  const w2 = await node.host.writeFile(files.authFile, auth, { mode: 0o600, owner: 'postgres' });
  const sock = await ensureDir(node, node.paths.pgSocketDir, 'postgres', '2775');
  const spec = pgbouncerService(inv, node, backends);
  const started = await node.services.start(spec);
  if (started.changed) return { changed: true, note: 'started' };
  if (cert.changed || w0.changed || w1.changed || w2.changed) {
    // Client TLS settings and a new certificate take effect on a reload too, for clients that connect from then on.
    await node.services.reload(spec);
    // A reload applies server TLS settings to new server connections only: the open ones are closed
    // as each is released (RECONNECT), so none stays in plaintext or on the old CA.
    if (w0.changed || serverTlsLines(before) !== serverTlsLines(ini)) {
      await withClient(ctx.secrets, pgbouncerAdmin(inv, node.spec), (c) => c.query('RECONNECT'));
      return { changed: true, note: `reloaded; server connections reopened ${ca ? 'with TLS' : 'without TLS'}` };
    }
    return { changed: true, note: 'reloaded' };
  }
  return { changed: sock };
}

/** The ini's server_tls_* lines: what a reload does not apply to open server connections. */
const serverTlsLines = (ini: string | undefined): string => (ini ?? '').split('\n').filter((l) => l.startsWith('server_tls_')).join('\n');

/** mkdir with owner and mode, reporting whether anything changed. */
export async function ensureDir(node: Pick<Node, 'host'>, dir: string, owner: string, mode: string): Promise<boolean> {
  const cur = await node.host.exec(['stat', '-c', '%a %U', dir], { mutates: false, allowFailure: true });
  if (cur.exitCode === 0 && cur.stdout.trim() === `${mode.replace(/^0+/, '')} ${owner}`) return false;
  // Why sh: three steps in one round trip; directory, owner and mode are "$1".."$3", never spliced in.
  await node.host.exec(['sh', '-c', 'mkdir -p -- "$1" && chown "$2": -- "$1" && chmod "$3" -- "$1"', 'sh', dir, owner, mode]);
  return true;
}
