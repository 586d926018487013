import type { HostSpec, Inventory } from '../config/schema.js';
import { SECRET_NAMES, type Secrets } from '../config/secrets.js';
import type { RunContext } from '../context.js';
import { connect, isAuthFailure, passwordAccepted, withClient, type Client, type Credentials, type Endpoint } from '../db/client.js';
import { HostError } from '../errors.js';
import { holding } from '../interrupt.js';
import type { Change } from '../plan/step.js';
import { becomes, waitUntil } from '../wait.js';
import { writableHost } from './databases.js';
import { DATABASES, ROLES_DB, pgbouncerAdmin, superuserOn, type DatabaseKey } from './endpoints.js';
import { ensurePgbouncerExporter, ensurePostgresExporter } from './exporters.js';
import { ensurePatroniConfig, patroniCredentials, rest, REST_USER, restTarget } from './patroni.js';
import { tlsRequired } from './deployed.js';
import { memberTls } from './patroni-tls.js';
import { authEntries, parseAuthFile, pgbouncerFiles, renderAuthFile } from './pgbouncer.js';
import { pauseDatabases, pgbouncerDatabases, reloadPgbouncer, resumeDatabases } from './pgbouncer-pause.js';
import { APP_ROLES } from './roles.js';
import { scramMatches, scramVerifier } from './scram.js';
import { quoteIdent } from './vector.js';
import { configureHaproxy, ensureHaproxyRunning, STATS_USER } from './haproxy.js';
import { METRICS_USER_PREFIX } from './metrics-web.js';

/**
 * Password rotation without downtime (`dpgc rotate`). Each credential is
 * changed in the order that never refuses a client that uses the password in
 * force, and the new value is recorded as pending in the secrets file before
 * anything changes, so an interrupted run is completed by the next one with
 * the same value. README "Rotating credentials" gives the reasoning for
 * each order; docs/lab-facts.md the PgBouncer behaviour it rests on.
 */
export type GeneratedSecret = (typeof SECRET_NAMES)[number];

export type RotationKind =
  /** A login role PgBouncer authenticates with the server's own SCRAM verifier (applications, owners). */
  | 'routed'
  /** dpgc_monitor: postgres_exporter's login on each member. */
  | 'exporter'
  /** PgBouncer's admin console user: exists only in PgBouncer's auth file. */
  | 'pgbouncer-admin'
  /** A role Patroni logs in as (superuser, replication, rewind): patroni.yml on every member. */
  | 'patroni'
  /** Patroni's REST API password: patroni.yml on every member. */
  | 'patroni-rest'
  /** HAProxy's stats page: haproxy.cfg, reloaded (its old workers keep their connections). */
  | 'haproxy-stats'
  /** The metrics endpoints' basic auth: two users while the clients move over (components/metrics-rotation.ts). */
  | 'metrics-web';

export interface Rotatable {
  secret: GeneratedSecret;
  /** The PostgreSQL role, PgBouncer user or REST user. */
  user: string;
  kind: RotationKind;
  /** For routed roles: the application databases it logs in to through PgBouncer. */
  databases?: DatabaseKey[];
  /** What is not seamless about it; said in the command's output. */
  caveat?: string;
}

export const ROTATABLE: readonly Rotatable[] = [
  { secret: APP_ROLES.app.secret, user: APP_ROLES.app.user, kind: 'routed', databases: ['project', 'shared'] },
  { secret: APP_ROLES.readonly.secret, user: APP_ROLES.readonly.user, kind: 'routed', databases: ['project', 'shared'] },
  { secret: DATABASES.project.secret, user: DATABASES.project.owner, kind: 'routed', databases: ['project'] },
  { secret: DATABASES.shared.secret, user: DATABASES.shared.owner, kind: 'routed', databases: ['shared'] },
  { secret: ROLES_DB.monitoring.secret, user: ROLES_DB.monitoring.user, kind: 'exporter', caveat: 'postgres_exporter restarts on every member: one scrape each may be missed' },
  { secret: ROLES_DB.pgbouncerAdmin.secret, user: ROLES_DB.pgbouncerAdmin.user, kind: 'pgbouncer-admin', caveat: 'the PgBouncer exporter restarts: one scrape may be missed' },
  { secret: ROLES_DB.replication.secret, user: ROLES_DB.replication.user, kind: 'patroni' },
  { secret: ROLES_DB.rewind.secret, user: ROLES_DB.rewind.user, kind: 'patroni' },
  { secret: ROLES_DB.superuser.secret, user: ROLES_DB.superuser.user, kind: 'patroni' },
  { secret: 'patroni_rest', user: REST_USER, kind: 'patroni-rest' },
  { secret: 'haproxy_stats', user: STATS_USER, kind: 'haproxy-stats' },
  { secret: 'metrics_web', user: METRICS_USER_PREFIX, kind: 'metrics-web' },
];

/** Secrets `dpgc rotate` leaves alone, and why (the command and README say so). */
export const NOT_ROTATED: Partial<Record<GeneratedSecret, string>> = {
  pgbackrest_cipher: 'the backup repository\'s encryption key: every backup is encrypted with it, so a new one means a new repository, not a rotation',
  grafana_admin: "Grafana's own admin password: the operator's, changed in Grafana",
};

/** `--role` takes the secret's name or the role's. */
export function findRotatable(name: string): Rotatable | undefined {
  return ROTATABLE.find((r) => r.secret === name || r.user === name);
}

export interface RotationCtx {
  inventory: Inventory;
  secrets: Secrets;
  pool: RunContext['pool'];
  logger: Pick<RunContext['logger'], 'warn'>;
}

/** The credentials dpgc holds, with `r`'s pending value in place of the one in force. */
export function withNew(secrets: Secrets, r: Rotatable, value: string): Credentials {
  return {
    get: async (name) => (name === r.secret ? value : secrets.get(name)),
    clusterCa: () => secrets.clusterCa(),
  };
}

const members = (inv: Inventory): HostSpec[] => inv.hosts.filter((h) => h.roles.includes('postgres'));
const bouncers = (inv: Inventory): HostSpec[] => inv.hosts.filter((h) => h.roles.includes('pgbouncer'));

/** The role's stored verifier on a node; undefined when the role does not exist there. */
async function storedVerifier(secrets: Credentials, ep: Endpoint, user: string): Promise<string | null | undefined> {
  return withClient(secrets, ep, (c) => verifierOn(c, user));
}

/**
 * ALTER ROLE … PASSWORD with a verifier made here, on the node that takes
 * writes, unless it already holds the new password (a re-run). The verifier,
 * never the password, is in the statement (and so in pgaudit's log line).
 */
async function setServerPassword(ctx: RotationCtx, r: Rotatable, next: string): Promise<{ leader: HostSpec; changed: boolean }> {
  const leader = await writableHost(ctx.inventory, ctx.secrets);
  const ep = superuserOn(ctx.inventory, leader);
  const cur = await storedVerifier(ctx.secrets, ep, r.user);
  if (cur === undefined) throw noRole(leader, r);
  if (scramMatches(cur, next)) return { leader, changed: false };
  await withClient(ctx.secrets, ep, (c) => c.query(`ALTER ROLE ${quoteIdent(r.user)} PASSWORD '${scramVerifier(next)}'`));
  return { leader, changed: true };
}

/**
 * Every member has replayed the leader's verifier (the replicas serve logins
 * too: PgBouncer's read-only aliases, Patroni, the exporters). A member that
 * does not answer, or not in time, is named: it replays it when it is back.
 */
async function waitReplayed(ctx: RotationCtx, leader: HostSpec, user: string, timeoutMs: number): Promise<string[]> {
  const sessions = await Sessions.open(ctx.secrets, [leader, ...members(ctx.inventory).filter((h) => h.name !== leader.name)].map((h) => superuserOn(ctx.inventory, h)));
  try {
    return await sessions.replayed(user, (await verifierOn(sessions.first(), user)) ?? '', timeoutMs);
  } finally {
    sessions.close();
  }
}

// ---------------------------------------------------------------- routed roles

/**
 * PgBouncer logs in to PostgreSQL with the SCRAM keys it took from the last
 * client that logged in to it (its auth file holds only the verifier). So,
 * with every application database paused on every PgBouncer (no server login
 * can happen, clients wait): the new verifier on the leader and the replicas,
 * the same verifier in each auth file, RELOAD, then one login with the new
 * password through each PgBouncer, which gives it the new keys; then RESUME.
 * Without that login, PgBouncer would go on logging in with the old keys and,
 * every server connection having been closed by the PAUSE, refuse clients
 * ("server login has been failing") until an application logged in with the
 * new password.
 */
export async function changeRouted(ctx: RotationCtx, r: Rotatable, next: string, o: { pauseTimeoutMs: number }): Promise<Change> {
  const inv = ctx.inventory;
  const creds = withNew(ctx.secrets, r, next);
  const leader = await writableHost(inv, ctx.secrets);
  const cur = await storedVerifier(ctx.secrets, superuserOn(inv, leader), r.user);
  if (cur === undefined) throw noRole(leader, r);
  const held = await Promise.all(bouncers(inv).map(async (h) => ({ h, file: await authFile(ctx, h), dbs: await pgbouncerDatabases(ctx.secrets, inv, h) })));
  if (scramMatches(cur, next) && held.every((b) => b.file.entries.get(r.user) === cur && !b.dbs.some((d) => d.paused))) return { changed: false, note: 'already in place' };

  // Everything the paused window needs is connected before it opens: clients wait only for the work itself.
  const sessions = await Sessions.open(ctx.secrets, [leader, ...members(inv).filter((h) => h.name !== leader.name)].map((h) => superuserOn(inv, h)));
  const consoles = await Promise.all(held.map((b) => connect(ctx.secrets, pgbouncerAdmin(inv, b.h))));
  const names = (b: (typeof held)[number]) => b.dbs.map((d) => d.name);
  const resumeAll = async () => {
    await Promise.all(held.map((b, i) => resumeDatabases(ctx.secrets, inv, b.h, names(b), consoles[i])));
  };
  let note = '';
  try {
    const t0 = Date.now();
    await holding(`resume PgBouncer on ${held.map((b) => b.h.name).join(', ')}`, resumeAll, async () => {
      await Promise.all(held.map((b) => pauseDatabases(ctx.secrets, inv, b.h, names(b), o.pauseTimeoutMs)));
      const su = sessions.get(leader.name);
      const before = await verifierOn(su, r.user);
      const altered = !scramMatches(before ?? null, next);
      if (altered) await su.query(`ALTER ROLE ${quoteIdent(r.user)} PASSWORD '${scramVerifier(next)}'`);
      try {
        const verifier = (await verifierOn(su, r.user))!;
        // The read-only aliases log in to the replicas: they must have replayed it before PgBouncer logs in there.
        const lagging = await sessions.replayed(r.user, verifier, 10_000);
        await Promise.all(held.map((b, i) => installAndPrime(ctx, b.h, b.file, r, verifier, creds, consoles[i]!)));
        note = [altered ? `ALTER ROLE on ${leader.name}` : `${leader.name} already had it`, ...(lagging.length ? [`not replayed yet on ${lagging.join(', ')}`] : [])].join('; ');
      } catch (e) {
        // Resumed half done, a PgBouncer with the old verifier would refuse its clients: back to the old state first.
        if (altered && before) await rollBack(ctx, r, sessions, before, held, consoles).catch((x: unknown) => ctx.logger.warn(`putting ${r.user}'s old password back failed too: ${(x as Error).message}`));
        throw e;
      }
    });
    return { changed: true, note: `${note}; PgBouncer paused ${((Date.now() - t0) / 1000).toFixed(2)} s on ${held.map((b) => b.h.name).join(', ')}` };
  } finally {
    sessions.close();
    for (const c of consoles) void c.end().catch(() => {});
  }
}

/**
 * The state before the rotation, exactly: the old verifier string (same salt,
 * so the SCRAM keys PgBouncer still holds fit it again), each auth file as it
 * was, and one login with the old password through each PgBouncer. Best
 * effort on each PgBouncer (the one that failed may be gone).
 */
async function rollBack(ctx: RotationCtx, r: Rotatable, sessions: Sessions, before: string, held: { h: HostSpec; file: { path: string; entries: Map<string, string> } }[], consoles: Client[]): Promise<void> {
  const su = sessions.first();
  await su.query(`ALTER ROLE ${quoteIdent(r.user)} PASSWORD '${before.replace(/'/g, "''")}'`);
  await sessions.replayed(r.user, before, 10_000);
  const old = await ctx.secrets.get(r.secret);
  await Promise.allSettled(held.map((b, i) => installAndPrime(ctx, b.h, b.file, r, before, { get: async () => old, clusterCa: () => ctx.secrets.clusterCa() }, consoles[i]!)));
  ctx.logger.warn(`${r.user}: the rotation failed half way; the old password is back in place (the new one stays pending for the next run)`);
}

const noRole = (leader: HostSpec, r: Rotatable) => new HostError(`${leader.name}: role ${r.user} does not exist, so there is no password to rotate`, { hint: 'Run the sprint that creates it first (`dpgc up`).' });

async function verifierOn(c: Client, user: string): Promise<string | null | undefined> {
  return (await c.query<{ p: string | null }>('SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1', [user])).rows[0]?.p;
}

/** Superuser connections to the members, opened once; a member that does not answer is left out (and named when it matters). */
class Sessions {
  private constructor(
    private readonly byName: Map<string, Client>,
    private readonly unreachable: string[],
  ) {}

  static async open(secrets: Credentials, eps: Endpoint[]): Promise<Sessions> {
    // The leader (first) must answer; a replica that does not is left out, and named by replayed().
    const pairs = await Promise.all(eps.map(async (ep, i) => [ep.name, i === 0 ? await connect(secrets, ep) : await connect(secrets, ep).catch(() => undefined)] as const));
    return new Sessions(new Map(pairs.filter((p): p is readonly [string, Client] => p[1] !== undefined)), pairs.filter((p) => p[1] === undefined).map((p) => p[0]));
  }

  /** The leader's session (the first endpoint). */
  first(): Client {
    return [...this.byName.values()][0]!;
  }

  get(name: string): Client {
    const c = this.byName.get(name);
    if (!c) throw new HostError(`${name}: no connection`);
    return c;
  }

  /** Every other member has replayed `verifier` for `user`; the names of those that did not within the time, or do not answer. */
  async replayed(user: string, verifier: string, timeoutMs: number): Promise<string[]> {
    const late: string[] = [...this.unreachable];
    const others = [...this.byName.entries()].slice(1);
    await Promise.all(
      others.map(async ([name, c]) => {
        const ok = await becomes(async () => (await verifierOn(c, user).catch(() => undefined)) === verifier, { timeoutMs, everyMs: 20 }, `${name} replaying ${user}'s new password`);
        if (!ok) late.push(name);
      }),
    );
    return late.sort();
  }

  close(): void {
    for (const c of this.byName.values()) void c.end().catch(() => {});
  }
}

async function authFile(ctx: RotationCtx, h: HostSpec): Promise<{ path: string; entries: Map<string, string> }> {
  const n = await ctx.pool.node(h.name);
  const path = pgbouncerFiles(n.paths).authFile;
  return { path, entries: parseAuthFile((await n.host.readFile(path)) ?? '') };
}

/**
 * The role's new verifier (the leader's own: the same salt, or PgBouncer's
 * keys would not fit the server) in the auth file, every other line kept;
 * RELOAD; then one login with the new password: it proves the reload took
 * the file (PgBouncer re-reads it only when its stat changed) and gives
 * PgBouncer the new SCRAM keys.
 */
async function installAndPrime(ctx: RotationCtx, h: HostSpec, file: { path: string; entries: Map<string, string> }, r: Rotatable, verifier: string, creds: Credentials, console: Client): Promise<void> {
  const inv = ctx.inventory;
  const n = await ctx.pool.node(h.name);
  const text = renderAuthFile([...new Map([...file.entries, [r.user, verifier]])].map(([user, v]) => ({ user, verifier: v })));
  const ep = viaPgbouncer(inv, h, r);
  const password = await creds.get(r.secret);
  for (let attempt = 1; ; attempt++) {
    // A second attempt removes the file first: a new inode is a stat change whatever the clock says.
    if (attempt > 1) await n.host.exec(['rm', '-f', '--', file.path]);
    await n.host.writeFile(file.path, text, { mode: 0o600, owner: 'postgres' });
    await reloadPgbouncer(ctx.secrets, inv, h, console);
    try {
      await passwordAccepted(creds, ep, password);
      return;
    } catch (e) {
      if (attempt >= 3 || !isAuthFailure(e)) throw e;
    }
  }
}

/** Through every PgBouncer, each database alias the role uses (the read-only ones reach the replicas): a query with the new password. */
export async function verifyRouted(ctx: RotationCtx, r: Rotatable, next: string, old: string): Promise<Change> {
  const inv = ctx.inventory;
  const creds = withNew(ctx.secrets, r, next);
  const checked: string[] = [];
  for (const h of bouncers(inv)) {
    const aliases = (await pgbouncerDatabases(ctx.secrets, inv, h)).map((d) => d.name).filter((a) => (r.databases ?? []).some((k) => a === DATABASES[k].name || a.startsWith(`${DATABASES[k].name}_`)));
    for (const alias of aliases) {
      const ep = viaPgbouncer(inv, h, r, alias);
      // A server login that failed before the new keys were primed makes PgBouncer wait server_login_retry before the next.
      await waitUntil(
        async (seen) => withClient(creds, ep, (c) => c.query('SELECT 1')).then(() => true, (e: unknown) => (seen((e as Error).message), undefined)),
        { timeoutMs: 15_000, everyMs: 500 },
        `${r.user} querying ${alias} through PgBouncer on ${h.name} with the new password`,
      );
      checked.push(`${h.name}/${alias}`);
    }
    await refused(ctx.secrets, viaPgbouncer(inv, h, r), old);
  }
  return { changed: false, note: `new password works through ${checked.join(', ')}; the old one is refused` };
}

/** The role through one PgBouncer, to `database` (default: the first database it uses). */
function viaPgbouncer(inv: Inventory, h: HostSpec, r: Rotatable, database: string = DATABASES[r.databases?.[0] ?? 'project'].name): Endpoint {
  return { name: h.name, address: h.address, port: inv.ports.pgbouncer, database, user: r.user, secret: r.secret };
}

/** The old password must not log in any more. */
async function refused(secrets: Pick<Secrets, 'clusterCa'>, ep: Endpoint, old: string): Promise<void> {
  const accepted = await passwordAccepted({ get: async () => old, clusterCa: () => secrets.clusterCa() }, ep, old).then(
    () => true,
    (e: unknown) => {
      if (isAuthFailure(e)) return false;
      throw e;
    },
  );
  if (accepted) throw new HostError(`${ep.name}: ${ep.user} still logs in with the old password at ${ep.address}:${ep.port}`, { hint: 'Run `dpgc rotate` again: the rotation is still pending and completes on a re-run.' });
}

// ---------------------------------------------------------------- roles of the cluster's own daemons

/**
 * dpgc_monitor: the server first (postgres_exporter's open connection stays
 * logged in), then each member's exporter gets the new password and restarts
 * (it has no reload). A scrape that falls in the restart is missed.
 */
export async function changeExporterRole(ctx: RotationCtx, r: Rotatable, next: string): Promise<Change> {
  const set = await setServerPassword(ctx, r, next);
  const lagging = await waitReplayed(ctx, set.leader, r.user, 30_000);
  const creds = withNew(ctx.secrets, r, next);
  const restarted: string[] = [];
  for (const h of members(ctx.inventory)) {
    const n = await ctx.pool.node(h.name);
    if ((await ensurePostgresExporter({ inventory: ctx.inventory, secrets: creds, pool: ctx.pool }, n)).changed) restarted.push(h.name);
  }
  return { changed: set.changed || restarted.length > 0, note: notes(set, lagging, restarted.length ? `postgres_exporter restarted on ${restarted.join(', ')}` : undefined) };
}

/**
 * PgBouncer's admin user exists only in PgBouncer: the new verifier in each
 * auth file and RELOAD (dpgc's open console connection stays), then the
 * PgBouncer exporter's environment file and a restart.
 */
export async function changePgbouncerAdmin(ctx: RotationCtx, r: Rotatable, next: string): Promise<Change> {
  const inv = ctx.inventory;
  const creds = withNew(ctx.secrets, r, next);
  const done: string[] = [];
  for (const h of bouncers(inv)) {
    const n = await ctx.pool.node(h.name);
    const f = pgbouncerFiles(n.paths);
    const w = await n.host.writeFile(f.authFile, renderAuthFile(await authEntries(inv, creds, await n.host.readFile(f.authFile))), { mode: 0o600, owner: 'postgres' });
    if (w.changed) await reloadPgbouncer(ctx.secrets, inv, h);
    await passwordAccepted(creds, pgbouncerAdmin(inv, h), next);
    // The whole environment file as the sprints write it: with TLS on, its certificate and metrics credentials stay.
    const e = await ensurePgbouncerExporter({ inventory: inv, secrets: creds, pool: ctx.pool }, n);
    if (w.changed || e.changed) done.push(`${h.name}${e.changed ? ' (exporter restarted)' : ''}`);
  }
  return done.length ? { changed: true, note: `auth file reloaded on ${done.join(', ')}` } : { changed: false, note: 'already in place' };
}

/**
 * A role Patroni logs in as: the server first (open sessions and replication
 * streams stay logged in), then patroni.yml on every member and a reload of
 * Patroni, which hands the new password to libpq (pgpass) for the next login:
 * a stream that reconnects, pg_rewind, a base backup.
 */
export async function changePatroniRole(ctx: RotationCtx, r: Rotatable, next: string): Promise<Change> {
  const set = await setServerPassword(ctx, r, next);
  const lagging = await waitReplayed(ctx, set.leader, r.user, 30_000);
  const p = await renderPatroniEverywhere(ctx, r, next);
  return { changed: set.changed || p.changed, note: notes(set, lagging, p.note) };
}

/**
 * A replica's stream logs in with primary_conninfo's passfile. Patroni 4.0
 * rewrites that file on a reload from the recovery parameters it built
 * before the reload, so with the old password, and compares it with its
 * configuration only once the WAL receiver has stopped (postgresql/config.py,
 * _check_primary_conninfo): the stream's next reconnect would fail its first
 * logins. Once Patroni has reloaded (the file's mtime moved), the replication
 * user's lines get the new password here, in Patroni's own format, which is
 * what Patroni's next comparison wants to find.
 */
async function refreshPassfiles(ctx: RotationCtx, user: string, password: string, reloaded: { name: string; passfileAt: string }[]): Promise<string[]> {
  const out: string[] = [];
  for (const h of members(ctx.inventory)) {
    const n = await ctx.pool.node(h.name);
    const before = reloaded.find((x) => x.name === h.name)?.passfileAt;
    if (before !== undefined) await becomes(async () => (await passfileAt(n)) !== before, { timeoutMs: 15_000, everyMs: 200 }, `Patroni on ${h.name} reloading`);
    const text = await n.host.readFile(n.paths.pgpass);
    if (text === undefined) continue;
    const want = withPassword(text, user, password);
    if (want === text) continue;
    await n.host.writeFile(n.paths.pgpass, want, { mode: 0o600, owner: 'postgres' });
    out.push(h.name);
  }
  return out;
}

const passfileAt = async (n: Awaited<ReturnType<RotationCtx['pool']['node']>>): Promise<string> =>
  (await n.host.exec(['stat', '-c', '%y', '--', n.paths.pgpass], { mutates: false, allowFailure: true })).stdout.trim();

/** A pgpass file with `user`'s lines carrying `password` (escaped as libpq and Patroni do); other lines as they were. */
export function withPassword(pgpass: string, user: string, password: string): string {
  const field = String.raw`(?:[^:\\]|\\.)*`;
  const line = new RegExp(`^(${field}:${field}:${field}:)(${field}):(.*)$`);
  const esc = (v: string) => v.replace(/([:\\])/g, '\\$1');
  return pgpass
    .split('\n')
    .map((l) => {
      const m = line.exec(l);
      return m && m[2] === esc(user) ? `${m[1]}${m[2]}:${esc(password)}` : l;
    })
    .join('\n');
}

/**
 * patroni.yml with the new password on every member, Patroni reloaded where
 * it changed; then every replica's passfile holds the replication password
 * in force (any reload of Patroni puts back the one it started with: see
 * refreshPassfiles), whichever credential this rotation is about.
 */
async function renderPatroniEverywhere(ctx: RotationCtx, r: Rotatable, next: string): Promise<{ changed: boolean; note?: string }> {
  const secrets = withNew(ctx.secrets, r, next);
  const creds = await patroniCredentials(secrets);
  // Rendered as the sprints render it: TLS required once the cluster serves it.
  const tls = await tlsRequired({ inventory: ctx.inventory, pool: ctx.pool, secrets: ctx.secrets });
  const reloaded: { name: string; passfileAt: string }[] = [];
  for (const h of members(ctx.inventory)) {
    const n = await ctx.pool.node(h.name);
    const passfile = await passfileAt(n);
    if ((await ensurePatroniConfig(ctx.inventory, n, creds, await memberTls(ctx.inventory, h, tls))).written) reloaded.push({ name: h.name, passfileAt: passfile });
  }
  const refreshed = await refreshPassfiles(ctx, ROLES_DB.replication.user, await secrets.get(ROLES_DB.replication.secret), reloaded);
  const said = [reloaded.length ? `patroni.yml written and Patroni reloaded on ${reloaded.map((x) => x.name).join(', ')}` : '', refreshed.length ? `replication passfile refreshed on ${refreshed.join(', ')}` : ''].filter(Boolean);
  return { changed: said.length > 0, ...(said.length ? { note: said.join('; ') } : {}) };
}

function notes(set: { leader: HostSpec; changed: boolean }, lagging: string[], then?: string): string {
  return [set.changed ? `ALTER ROLE on ${set.leader.name}` : undefined, lagging.length ? `not replayed yet on ${lagging.join(', ')} (they replay it when back)` : undefined, then]
    .filter(Boolean)
    .join('; ') || 'already in place';
}

/** Patroni's REST password: each member's patroni.yml and a reload; done on a member once it accepts the new password. */
export async function changePatroniRest(ctx: RotationCtx, r: Rotatable, next: string): Promise<Change> {
  const p = await renderPatroniEverywhere(ctx, r, next);
  for (const h of members(ctx.inventory)) {
    await waitUntil(
      async (seen) => {
        const s = (await rest(restTarget(ctx.inventory, h), 'POST', '/reload', { auth: { username: REST_USER, password: next } })).status;
        seen(`HTTP ${s}`);
        return s !== 401 || undefined;
      },
      { timeoutMs: 30_000, everyMs: 500 },
      `Patroni on ${h.name} accepting the new REST password`,
    );
  }
  return p.changed ? { changed: true, note: p.note ?? '' } : { changed: false, note: 'already in place' };
}

/** Logins with the new password on every member (and the old one refused on the leader). */
export async function verifyDirect(ctx: RotationCtx, r: Rotatable, next: string, old: string): Promise<Change> {
  const inv = ctx.inventory;
  const ep = (h: HostSpec): Endpoint => ({ ...superuserOn(inv, h), user: r.user, secret: r.secret });
  const ok: string[] = [];
  for (const h of members(inv)) {
    // Patroni may still be writing a member's pgpass; the server side is what is checked here.
    await waitUntil(
      async (seen) => passwordAccepted(withNew(ctx.secrets, r, next), ep(h), next).then(() => true, (e: unknown) => (seen((e as Error).message), undefined)),
      { timeoutMs: 15_000, everyMs: 500 },
      `${r.user} logging in on ${h.name} with the new password`,
    );
    ok.push(h.name);
  }
  const leader = await writableHost(inv, ctx.secrets);
  await refused(ctx.secrets, ep(leader), old);
  return { changed: false, note: `new password logs in on ${ok.join(', ')}; the old one is refused` };
}

/** PgBouncer's console: the new password logs in on every PgBouncer, the old one is refused. */
export async function verifyPgbouncerAdmin(ctx: RotationCtx, r: Rotatable, next: string, old: string): Promise<Change> {
  for (const h of bouncers(ctx.inventory)) {
    await passwordAccepted(withNew(ctx.secrets, r, next), pgbouncerAdmin(ctx.inventory, h), next);
    await refused(ctx.secrets, pgbouncerAdmin(ctx.inventory, h), old);
  }
  return { changed: false, note: `the new password logs in on ${bouncers(ctx.inventory).map((h) => h.name).join(', ')}; the old one is refused` };
}

/** REST: the old password is refused by every member. */
export async function verifyRest(ctx: RotationCtx, old: string): Promise<Change> {
  for (const h of members(ctx.inventory)) {
    const s = (await rest(restTarget(ctx.inventory, h), 'POST', '/reload', { auth: { username: REST_USER, password: old } })).status;
    if (s !== 401) throw new HostError(`${h.name}: Patroni's REST API still accepts the old password (HTTP ${s})`, { hint: 'Run `dpgc rotate` again: the rotation is still pending and completes on a re-run.' });
  }
  return { changed: false, note: 'every member refuses the old REST password' };
}


// ---------------------------------------------------------------- HAProxy's stats page

/** haproxy.cfg with the new password, validated, and a reload: new workers take it, old ones finish their connections. */
export async function changeHaproxyStats(ctx: RotationCtx, r: Rotatable, next: string): Promise<Change> {
  const creds = withNew(ctx.secrets, r, next);
  const done: string[] = [];
  for (const h of ctx.inventory.hosts.filter((x) => x.roles.includes('haproxy'))) {
    const n = await ctx.pool.node(h.name);
    const changed = await configureHaproxy(ctx.inventory, n, creds);
    await ensureHaproxyRunning(ctx.inventory, n, changed);
    if (changed) done.push(h.name);
  }
  return done.length ? { changed: true, note: `haproxy.cfg written and HAProxy reloaded on ${done.join(', ')}` } : { changed: false, note: 'already in place' };
}

/** The stats page answers the new password and refuses the old one on every HAProxy. */
export async function verifyHaproxyStats(ctx: RotationCtx, r: Rotatable, next: string, old: string): Promise<Change> {
  const hosts = ctx.inventory.hosts.filter((x) => x.roles.includes('haproxy'));
  for (const h of hosts) {
    const status = (password: string) =>
      fetch(`http://${h.address}:${ctx.inventory.ports.haproxy_stats}/stats;csv`, {
        headers: { authorization: `Basic ${Buffer.from(`${r.user}:${password}`).toString('base64')}` },
        signal: AbortSignal.timeout(3000),
      }).then((x) => x.status, () => 0);
    // The reload is asynchronous: the new workers answer once they are up.
    await waitUntil(async (seen) => ((s: number) => (seen(`HTTP ${s}`), s === 200 || undefined))(await status(next)), { timeoutMs: 15_000, everyMs: 250 }, `HAProxy on ${h.name} accepting the new stats password`);
    const before = await status(old);
    if (before !== 401) throw new HostError(`${h.name}: HAProxy's stats page answered ${before} to the old password (want 401)`, { hint: 'Run `dpgc rotate` again: the rotation is still pending and completes on a re-run.' });
  }
  return { changed: false, note: `the stats page takes the new password on ${hosts.map((h) => h.name).join(', ')}; the old one is refused` };
}
