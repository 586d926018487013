import bcrypt from 'bcryptjs';
import { pbkdf2Sync, scryptSync } from 'node:crypto';
import { parse } from 'yaml';
import type { HostSpec } from '../config/schema.js';
import type { HostPaths } from '../config/paths.js';
import type { RunContext } from '../context.js';
import type { Credentials } from '../db/client.js';
import type { Node } from '../hosts/pool.js';
import { assertOwnedPath } from '../hosts/owned.js';
import { render } from '../templates.js';
import { CertificateAuthority, type CertRequest } from './ca.js';
import { clientTls, type ClientTlsChoice } from './deployed.js';

/**
 * TLS and basic auth on every metrics endpoint dpgc runs: node_exporter,
 * postgres_exporter, Prometheus and Alertmanager read one exporter-toolkit
 * web config per host (`--web.config.file`, always passed: before sprint 5
 * the file says plaintext); dpgc's own PgBouncer exporter gets the same
 * certificate through its environment file and the same users from a file
 * beside the web config (`webUsers`). Each host has
 * one certificate from the cluster CA for them all (its name and address as
 * SANs, the key made on the host, owned by the `prometheus` user every one
 * of these daemons runs as).
 *
 * On when the cluster's PostgreSQL serves TLS (components/deployed.ts
 * clientTls): the decision sprint 5 takes, and that any earlier sprint
 * re-run on a sprint-5 cluster reads back, so none of them reverts to
 * plaintext. The exporters read whether to serve TLS at start only, and the
 * certificate and the users on every request: turning it on restarts them
 * (the stamp file `serves`, written when that decision changes, newer than
 * the process: exporters.ts restartReason); a renewed certificate or a web
 * config rewritten for its users restarts nothing.
 *
 * The user name is tagged from the password (metricsUser): exporter-toolkit
 * holds one hash per user name, so a rotation has the endpoints accept the
 * old user and the new one at once, moves the clients to the new one, then
 * drops the old (components/metrics-rotation.ts). Every consumer derives
 * the name from the password it holds: no other state.
 */
export const METRICS_USER_PREFIX = 'dpgc_metrics';
export const METRICS_CERT = 'metrics';
/** Debian's exporters, Prometheus and Alertmanager run as this user, and so does the PgBouncer exporter. */
export const METRICS_OWNER = 'prometheus';
/** The cost exporter-toolkit's own docs use; it caches a verified password, so a scrape pays it once. */
const BCRYPT_COST = 10;

const tags = new Map<string, string>();
/**
 * Pure: `dpgc_metrics_<8 hex>`, tagged from the password. scrypt, not a
 * plain hash: the name is in files any local user may read (prometheus.yml),
 * and a weak password given as DPGC_SECRET_METRICS_WEB must be no easier to
 * guess from it than from the bcrypt hash in the web config.
 */
export function metricsUser(password: string): string {
  let tag = tags.get(password);
  if (tag === undefined) {
    tag = scryptSync(password, 'dpgc metrics user', 4, { N: 2 ** 14, r: 8, p: 1 }).toString('hex');
    tags.set(password, tag);
  }
  return `${METRICS_USER_PREFIX}_${tag}`;
}

/** What a client needs to talk to a metrics endpoint with TLS on (undefined: plaintext, no auth). */
export interface MetricsWeb {
  /** The cluster CA's certificate (PEM). */
  ca: string;
  username: string;
  password: string;
}

type DecisionCtx = Parameters<typeof clientTls>[0];

/** On or off for the whole cluster: `o.tlsCa` when the caller (sprint 5) says so, else read from the live cluster. */
export async function metricsWeb(ctx: DecisionCtx, o: ClientTlsChoice = {}): Promise<MetricsWeb | undefined> {
  const ca = o.tlsCa ?? (await clientTls(ctx));
  if (ca === undefined) return undefined;
  const password = await ctx.secrets.get('metrics_web');
  return { ca, username: metricsUser(password), password };
}

type MetricsPaths = Pick<HostPaths, 'prometheusDir' | 'tlsDir' | 'metricsSecrets' | 'grafanaSecrets'>;

export function metricsFiles(paths: MetricsPaths) {
  return {
    webConfig: `${paths.prometheusDir}/web-config.yml`,
    /** `tls` or `plaintext`: what the daemons read at start, so its time (not the web config's) says whether they must restart. */
    serves: `${paths.prometheusDir}/web-config.serves`,
    /** The web config's users for dpgc's PgBouncer exporter, which has no bcrypt (pbkdf2Line). */
    webUsers: `${paths.prometheusDir}/web-users`,
    cert: `${paths.tlsDir}/${METRICS_CERT}.crt`,
    key: `${paths.tlsDir}/${METRICS_CERT}.key`,
    ca: `${paths.tlsDir}/ca.crt`,
    /**
     * On monitoring hosts: each accepted user's password where Prometheus and amtool read it
     * (password_file, read on every request), and amtool's client config. One file per user: a
     * client's user name and its password file change together, in one reload.
     */
    secretsDir: paths.metricsSecrets,
    password: (user: string) => `${paths.metricsSecrets}/${user}.password`,
    amtool: `${paths.metricsSecrets}/amtool.yml`,
    grafanaDir: paths.grafanaSecrets,
    grafanaPassword: (user: string) => `${paths.grafanaSecrets}/${user}.password`,
  };
}

/** The name every client dials (Prometheus scrapes by address) and the host's name. */
export function metricsCertRequest(spec: Pick<HostSpec, 'name' | 'address'>): CertRequest {
  return { name: METRICS_CERT, cn: spec.name, dns: [spec.name], ips: [spec.address], usage: ['server'] };
}

export interface WebUser {
  username: string;
  hash: string;
}

/** Pure: the web config; without `tls`, plaintext and no users (what every exporter did before sprint 5). */
export function renderWebConfig(spec: Pick<HostSpec, 'name'>, tls?: { cert: string; key: string; users: WebUser[] }): string {
  return render('prometheus/web-config.yml.eta', { host: spec.name, tls });
}

/** PBKDF2-SHA256 rounds of the PgBouncer exporter's users file: Python's standard library has no bcrypt. */
const PBKDF2_ROUNDS = 100_000;

/**
 * Pure: one line of the PgBouncer exporter's users file, `user:rounds:salt:hex`.
 * The salt is the host and user (a salt only has to differ between files and
 * users), so the line is the same on every run and the file is not rewritten.
 */
export function pbkdf2Line(host: string, username: string, password: string): string {
  const salt = `${host}/${username}`;
  return `${username}:${PBKDF2_ROUNDS}:${Buffer.from(salt).toString('hex')}:${pbkdf2Sync(password, salt, PBKDF2_ROUNDS, 32, 'sha256').toString('hex')}`;
}

/** Pure: amtool's HTTP client config (Prometheus's http_config format), so no password is ever in its argv. */
export function renderAmtoolConfig(f: Pick<ReturnType<typeof metricsFiles>, 'ca' | 'password'>, username: string): string {
  return render('alertmanager/amtool-http.yml.eta', { username, passwordFile: f.password(username), caFile: f.ca });
}

/** How Prometheus reaches a metrics endpoint with TLS on: the CA and the password as files on its host. */
export interface ScrapeTls {
  caFile: string;
  username: string;
  passwordFile: string;
}

export const scrapeTls = (paths: MetricsPaths, username: string): ScrapeTls => ({ caFile: metricsFiles(paths).ca, username, passwordFile: metricsFiles(paths).password(username) });

/**
 * The bcrypt hash `username` has in the web config now, when it still
 * matches the password; else a new one. A new salt every run would rewrite
 * the file on every run.
 */
export async function keptHash(password: string, webConfig: string | undefined, username = metricsUser(password)): Promise<string> {
  let old: unknown;
  try {
    old = (parse(webConfig ?? '') as { basic_auth_users?: Record<string, unknown> } | null)?.basic_auth_users?.[username];
  } catch {
    old = undefined; // a file edited by hand into something else: replaced
  }
  if (typeof old === 'string' && old.startsWith('$2') && (await bcrypt.compare(password, old))) return old;
  return bcrypt.hash(password, BCRYPT_COST);
}

export interface HostWeb {
  tls: MetricsWeb | undefined;
  changed: boolean;
  note?: string;
}

/** `logger` and `options` only to open the CA (`o.ca` spares it): a caller without them (a rotation) goes by the host's dry-run. */
export type MetricsCtx = Pick<RunContext, 'inventory' | 'pool'> & { secrets: Credentials } & Partial<Pick<RunContext, 'logger' | 'options' | 'reissueCertsBefore'>>;
export interface MetricsTlsChoice extends ClientTlsChoice {
  /** The run's CA, when the caller already holds one (sprint 5); else opened here when TLS is on. */
  ca?: () => Promise<CertificateAuthority>;
  /** The host's web config as this step already ensured it: several daemons of one step share it. */
  web?: HostWeb;
  /**
   * The passwords the host's endpoints accept, each under its own user name
   * (default: the one in force). A rotation accepts the old and the new one
   * while the clients move over.
   */
  accept?: string[];
}

/** In flight per run (pool) and host: two exporters' steps on one host in parallel must not issue two keys. */
const inflight = new WeakMap<object, Map<string, Promise<HostWeb>>>();

/**
 * One host's web config, its certificate (with TLS on), and on a monitoring
 * host the files Prometheus and amtool read the password and the CA
 * from. Every step that starts a metrics daemon calls it first.
 */
export function ensureMetricsWeb(ctx: MetricsCtx, node: Node, o: MetricsTlsChoice = {}): Promise<HostWeb> {
  if (o.web) return Promise.resolve(o.web);
  let perRun = inflight.get(ctx.pool);
  if (!perRun) inflight.set(ctx.pool, (perRun = new Map<string, Promise<HostWeb>>()));
  const running = perRun.get(node.spec.name);
  if (running) return running;
  const p = ensureOnce(ctx, node, o).finally(() => perRun.delete(node.spec.name));
  perRun.set(node.spec.name, p);
  return p;
}

async function ensureOnce(ctx: MetricsCtx, node: Node, o: MetricsTlsChoice): Promise<HostWeb> {
  const tls = await metricsWeb(ctx, o);
  const f = metricsFiles(node.paths);
  const notes: string[] = [];
  let changed = false;
  let text: string;
  if (tls) {
    const ca = await (o.ca ?? caOf(ctx, node))();
    const cert = await ca.ensureHostCert(node.host, node.paths.tlsDir, metricsCertRequest(node.spec), METRICS_OWNER);
    changed = cert.changed;
    if (cert.reason) notes.push(`certificate issued: ${cert.reason}`);
    const accepted = [...new Set(o.accept ?? [tls.password])];
    const now = await node.host.readFile(f.webConfig);
    const users = await Promise.all(accepted.map(async (p) => ({ username: metricsUser(p), hash: await keptHash(p, now) })));
    text = renderWebConfig(node.spec, { cert: f.cert, key: f.key, users });
    if (node.spec.roles.includes('pgbouncer')) {
      const lines = accepted.map((p) => `${pbkdf2Line(node.spec.name, metricsUser(p), p)}\n`).join('');
      changed = (await node.host.writeFile(f.webUsers, lines, { mode: 0o640, owner: 'root', group: METRICS_OWNER })).changed || changed;
    }
    if (node.spec.roles.includes('monitoring')) changed = (await ensureClientFiles(node, tls, accepted)) || changed;
  } else {
    text = renderWebConfig(node.spec);
  }
  const w = await node.host.writeFile(f.webConfig, text, { mode: 0o640, owner: 'root', group: METRICS_OWNER });
  if (w.changed) notes.push(tls ? `web config: TLS and basic auth (${[...new Set(o.accept ?? [tls.password])].map(metricsUser).join(', ')})` : 'web config: plaintext');
  // Written after the web config: a daemon started in between reads the new one, and restarts for nothing at worst.
  const s = await node.host.writeFile(f.serves, tls ? 'tls\n' : 'plaintext\n', { mode: 0o644 });
  return { tls, changed: changed || w.changed || s.changed, ...(notes.length ? { note: notes.join('; ') } : {}) };
}

function caOf(ctx: MetricsCtx, node: Node): () => Promise<CertificateAuthority> {
  return CertificateAuthority.lazy({ ...ctx, options: { dryRun: ctx.options?.dryRun ?? node.host.dryRun } });
}

/**
 * The password of each accepted user where Prometheus (password_file) and
 * amtool read it, root's and readable by their group only; amtool's config
 * names the user in force. A password file of a user no longer accepted is
 * removed: no client uses it any more (a rotation drops a user only once
 * Prometheus has moved off it).
 */
async function ensureClientFiles(node: Node, tls: MetricsWeb, accepted: string[]): Promise<boolean> {
  const f = metricsFiles(node.paths);
  let changed = await ensureGroupDir(node, f.secretsDir, METRICS_OWNER);
  for (const p of accepted) changed = (await node.host.writeFile(f.password(metricsUser(p)), p, { mode: 0o640, owner: 'root', group: METRICS_OWNER })).changed || changed;
  changed = (await node.host.writeFile(f.amtool, renderAmtoolConfig(f, tls.username), { mode: 0o640, owner: 'root', group: METRICS_OWNER })).changed || changed;
  return (await removeStrayFiles(node, f.secretsDir, ['amtool.yml', ...accepted.map((p) => `${metricsUser(p)}.password`)], 'password of a metrics user no longer accepted')) || changed;
}

/** Every file in `dir` but `keep` removed: credentials nothing reads any more; whether one was. */
export async function removeStrayFiles(node: Pick<Node, 'host'>, dir: string, keep: string[], what: string): Promise<boolean> {
  const ls = await node.host.exec(['find', dir, '-mindepth', '1', '-maxdepth', '1', '-type', 'f', '-printf', '%f\\n'], { mutates: false, allowFailure: true });
  if (ls.exitCode !== 0) return false;
  // A temporary file of a write under way (the host adapter's) is not a stray.
  const stray = ls.stdout.split('\n').filter((n) => n && !keep.includes(n) && !n.includes('.dpgc-tmp.'));
  for (const n of stray) await node.host.exec(['rm', '-f', '--', assertOwnedPath(`${dir}/${n}`, [dir], what)]);
  return stray.length > 0;
}

/** A directory root owns and `group` may read: the credentials a daemon of that group reads, and nothing else can change. */
export async function ensureGroupDir(node: Pick<Node, 'host'>, dir: string, group: string): Promise<boolean> {
  const cur = await node.host.exec(['stat', '-c', '%a %U %G', dir], { mutates: false, allowFailure: true });
  if (cur.exitCode === 0 && cur.stdout.trim() === `750 root ${group}`) return false;
  // Why sh: three steps in one round trip; directory and group are "$1" and "$2", never spliced in.
  await node.host.exec(['sh', '-c', 'mkdir -p -- "$1" && chown root:"$2" -- "$1" && chmod 750 -- "$1"', 'sh', dir, group]);
  return true;
}
