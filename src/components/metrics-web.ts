import bcrypt from 'bcryptjs';
import { parse } from 'yaml';
import type { HostSpec } from '../config/schema.js';
import type { HostPaths } from '../config/paths.js';
import type { RunContext } from '../context.js';
import type { Credentials } from '../db/client.js';
import type { Node } from '../hosts/pool.js';
import { render } from '../templates.js';
import { CertificateAuthority, type CertRequest } from './ca.js';
import { clientTls, type ClientTlsChoice } from './deployed.js';

/**
 * TLS and basic auth on every metrics endpoint dpgc runs: node_exporter,
 * postgres_exporter, Prometheus and Alertmanager read one exporter-toolkit
 * web config per host (`--web.config.file`, always passed: before sprint 5
 * the file says plaintext); dpgc's own PgBouncer exporter gets the same
 * certificate and credentials through its environment file. Each host has
 * one certificate from the cluster CA for them all (its name and address as
 * SANs, the key made on the host, owned by the `prometheus` user every one
 * of these daemons runs as).
 *
 * On when the cluster's PostgreSQL serves TLS (components/deployed.ts
 * clientTls): the decision sprint 5 takes, and that any earlier sprint
 * re-run on a sprint-5 cluster reads back, so none of them reverts to
 * plaintext. The exporters read whether to serve TLS at start only, and the
 * certificate and the users on every connection: turning it on restarts
 * them (a web config newer than the process: exporters.ts restartReason), a
 * renewed certificate does not.
 */
export const METRICS_USER = 'dpgc_metrics';
export const METRICS_CERT = 'metrics';
/** Debian's exporters, Prometheus and Alertmanager run as this user, and so does the PgBouncer exporter. */
export const METRICS_OWNER = 'prometheus';
/** The cost exporter-toolkit's own docs use; it caches a verified password, so a scrape pays it once. */
const BCRYPT_COST = 10;

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
  return { ca, username: METRICS_USER, password: await ctx.secrets.get('metrics_web') };
}

type MetricsPaths = Pick<HostPaths, 'prometheusDir' | 'tlsDir' | 'metricsSecrets' | 'grafanaSecrets'>;

export function metricsFiles(paths: MetricsPaths) {
  return {
    webConfig: `${paths.prometheusDir}/web-config.yml`,
    cert: `${paths.tlsDir}/${METRICS_CERT}.crt`,
    key: `${paths.tlsDir}/${METRICS_CERT}.key`,
    ca: `${paths.tlsDir}/ca.crt`,
    /** On monitoring hosts: the password Prometheus sends (password_file) and amtool's client config. */
    secretsDir: paths.metricsSecrets,
    password: `${paths.metricsSecrets}/password`,
    amtool: `${paths.metricsSecrets}/amtool.yml`,
    grafanaDir: paths.grafanaSecrets,
    grafanaPassword: `${paths.grafanaSecrets}/metrics-password`,
  };
}

/** The name every client dials (Prometheus scrapes by address) and the host's name. */
export function metricsCertRequest(spec: Pick<HostSpec, 'name' | 'address'>): CertRequest {
  return { name: METRICS_CERT, cn: spec.name, dns: [spec.name], ips: [spec.address], usage: ['server'] };
}

/** Pure: the web config; without `tls`, plaintext and no users (what every exporter did before sprint 5). */
export function renderWebConfig(spec: Pick<HostSpec, 'name'>, tls?: { cert: string; key: string; username: string; hash: string }): string {
  return render('prometheus/web-config.yml.eta', { host: spec.name, tls });
}

/** Pure: amtool's HTTP client config (Prometheus's http_config format), so no password is ever in its argv. */
export function renderAmtoolConfig(f: Pick<ReturnType<typeof metricsFiles>, 'ca' | 'password'>): string {
  return render('alertmanager/amtool-http.yml.eta', { username: METRICS_USER, passwordFile: f.password, caFile: f.ca });
}

/** How Prometheus reaches a metrics endpoint with TLS on: the CA and the password as files on its host. */
export interface ScrapeTls {
  caFile: string;
  username: string;
  passwordFile: string;
}

export const scrapeTls = (paths: MetricsPaths): ScrapeTls => ({ caFile: metricsFiles(paths).ca, username: METRICS_USER, passwordFile: metricsFiles(paths).password });

/**
 * The bcrypt hash in the web config now, when it still matches the password;
 * else a new one. A new salt every run would rewrite the file, and restart
 * every exporter, on every run.
 */
export async function keptHash(password: string, webConfig: string | undefined): Promise<string> {
  let old: unknown;
  try {
    old = (parse(webConfig ?? '') as { basic_auth_users?: Record<string, unknown> } | null)?.basic_auth_users?.[METRICS_USER];
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
}

/** In flight per run (pool) and host: two exporters' steps on one host in parallel must not issue two keys. */
const inflight = new WeakMap<object, Map<string, Promise<HostWeb>>>();

/**
 * One host's web config, its certificate (with TLS on), and on a monitoring
 * host the files Prometheus, amtool and Grafana read the password and the CA
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
    const hash = await keptHash(tls.password, await node.host.readFile(f.webConfig));
    text = renderWebConfig(node.spec, { cert: f.cert, key: f.key, username: tls.username, hash });
    if (node.spec.roles.includes('monitoring')) changed = (await ensureClientFiles(node, tls)) || changed;
  } else {
    text = renderWebConfig(node.spec);
  }
  const w = await node.host.writeFile(f.webConfig, text, { mode: 0o640, owner: 'root', group: METRICS_OWNER });
  if (w.changed) notes.push(tls ? 'web config: TLS and basic auth' : 'web config: plaintext');
  return { tls, changed: changed || w.changed, ...(notes.length ? { note: notes.join('; ') } : {}) };
}

function caOf(ctx: MetricsCtx, node: Node): () => Promise<CertificateAuthority> {
  return CertificateAuthority.lazy({ ...ctx, options: { dryRun: ctx.options?.dryRun ?? node.host.dryRun } });
}

/** The password where Prometheus (password_file) and amtool read it: root's, readable by their group only. */
async function ensureClientFiles(node: Node, tls: MetricsWeb): Promise<boolean> {
  const f = metricsFiles(node.paths);
  let changed = await ensureGroupDir(node, f.secretsDir, METRICS_OWNER);
  changed = (await node.host.writeFile(f.password, tls.password, { mode: 0o640, owner: 'root', group: METRICS_OWNER })).changed || changed;
  changed = (await node.host.writeFile(f.amtool, renderAmtoolConfig(f), { mode: 0o640, owner: 'root', group: METRICS_OWNER })).changed || changed;
  return changed;
}

/** A directory root owns and `group` may read: the credentials a daemon of that group reads, and nothing else can change. */
export async function ensureGroupDir(node: Pick<Node, 'host'>, dir: string, group: string): Promise<boolean> {
  const cur = await node.host.exec(['stat', '-c', '%a %U %G', dir], { mutates: false, allowFailure: true });
  if (cur.exitCode === 0 && cur.stdout.trim() === `750 root ${group}`) return false;
  // Why sh: three steps in one round trip; directory and group are "$1" and "$2", never spliced in.
  await node.host.exec(['sh', '-c', 'mkdir -p -- "$1" && chown root:"$2" -- "$1" && chmod 750 -- "$1"', 'sh', dir, group]);
  return true;
}
