import type { HostSpec, Inventory, Role } from '../config/schema.js';
import type { Node } from '../hosts/pool.js';
import type { ServiceSpec } from '../hosts/services.js';
import { installValidated, runValidator } from './config-file.js';
import { render, templateText } from '../templates.js';
import type { HostPool } from '../hosts/pool.js';
import { liveSprint } from './deployed.js';
import { alertmanagerAddress } from './alertmanager.js';
import { firstPostgres } from './endpoints.js';
import { HostError } from '../errors.js';
import { sleep } from '../wait.js';
import { restartReason, webReadsAtStart } from './exporters.js';
import { etcdTlsOn } from './etcd.js';
import { ensureMetricsWeb, metricsFiles, scrapeTls, type MetricsCtx, type MetricsTlsChoice, type MetricsWeb, type ScrapeTls } from './metrics-web.js';
import { webGet, webTarget, type WebTarget } from './web-client.js';

/**
 * Prometheus on the monitoring host. Scrape targets are generated from the
 * inventory: one entry per job in SCRAPE_JOBS, enabled from the sprint that
 * deploys what it scrapes, so Prometheus never waits on a daemon that does
 * not exist yet. Adding a job is one entry.
 */
export interface ScrapeJob {
  job: string;
  /** The first sprint after which the target exists. */
  sinceSprint: number;
  port: keyof Inventory['ports'];
  path?: string;
  /**
   * The daemon, when it is one of dpgc's metrics endpoints behind the host's
   * web config (components/metrics-web.ts): scraped over TLS with basic auth
   * once sprint 5 turns them on.
   */
  web?: string;
  /**
   * Served over https without basic auth once sprint 5 turns TLS on: Patroni's
   * REST API (components/patroni-tls.ts), whose GET /metrics is a safe endpoint.
   */
  httpsOnly?: boolean;
  /** Over TLS with a client certificate once the daemon serves TLS: etcd (components/etcd-tls.ts). */
  clientCert?: boolean;
  /** Hosts running the target once `sprint` has been deployed. */
  hosts(inv: Pick<Inventory, 'hosts' | 'file'>, sprint: number): HostSpec[];
}

const withRole = (role: Role) => (inv: Pick<Inventory, 'hosts'>) => inv.hosts.filter((h) => h.roles.includes(role));

export const SCRAPE_JOBS: ScrapeJob[] = [
  { job: 'prometheus', sinceSprint: 1, port: 'prometheus', hosts: withRole('monitoring'), web: 'Prometheus' },
  { job: 'node', sinceSprint: 1, port: 'node_exporter', hosts: (inv) => inv.hosts, web: 'node_exporter' },
  // One instance (the base one) until the HA cluster runs PostgreSQL on every postgres host.
  { job: 'postgres', sinceSprint: 1, port: 'postgres_exporter', hosts: (inv, s) => (s >= 3 ? withRole('postgres')(inv) : [firstPostgres(inv)]), web: 'postgres_exporter' },
  { job: 'pgbouncer', sinceSprint: 1, port: 'pgbouncer_exporter', hosts: withRole('pgbouncer'), web: 'the PgBouncer exporter' },
  { job: 'etcd', sinceSprint: 2, port: 'etcd_client', hosts: withRole('etcd'), clientCert: true },
  // Patroni runs from sprint 3 (sprint 2 only renders its configuration).
  { job: 'patroni', sinceSprint: 3, port: 'patroni', hosts: withRole('postgres'), httpsOnly: true },
  { job: 'haproxy', sinceSprint: 2, port: 'haproxy_stats', hosts: withRole('haproxy') },
  // mtail serves no TLS (components/security-metrics.ts): scraped in plaintext, on the host's address only.
  { job: 'mtail', sinceSprint: 5, port: 'mtail', hosts: withRole('postgres') },
];

export interface Target {
  job: string;
  host: string;
  /** address:port, Prometheus's `instance` label. */
  instance: string;
  path: string;
  /** ScrapeJob.web: the daemon behind the host's metrics web config. */
  web?: string;
}

/** Every target that should be up once `sprint` is deployed (the `up == 1` check expects exactly these). */
export function scrapeTargets(inv: Pick<Inventory, 'hosts' | 'file' | 'ports'>, sprint: number, jobs: ScrapeJob[] = SCRAPE_JOBS): Target[] {
  return jobs
    .filter((j) => j.sinceSprint <= sprint)
    .flatMap((j) => j.hosts(inv, sprint).map((h) => ({ job: j.job, host: h.name, instance: `${h.address}:${inv.ports[j.port]}`, path: j.path ?? '/metrics', ...(j.web ? { web: j.web } : {}) })));
}

export interface MetricsEndpoint {
  host: string;
  /** The daemon, as an operator knows it (node_exporter, Alertmanager…). */
  what: string;
  hostPort: string;
  path: string;
}

/** Pure: the exporters and Prometheus Prometheus scrapes (jobs with `web`), and Alertmanager on each monitoring host. */
export function metricsEndpoints(inv: Pick<Inventory, 'hosts' | 'file' | 'ports'>, sprint: number): MetricsEndpoint[] {
  return [
    ...scrapeTargets(inv, sprint).flatMap((t) => (t.web ? [{ host: t.host, what: t.web, hostPort: t.instance, path: t.path }] : [])),
    ...inv.hosts.filter((h) => h.roles.includes('monitoring')).map((h) => ({ host: h.name, what: 'Alertmanager', hostPort: alertmanagerAddress(inv, h), path: '/-/ready' })),
  ];
}

/**
 * The sprint whose targets Prometheus should scrape: the one running now, or
 * the one the live cluster is already at (never the state file), so
 * re-running sprint 1 after sprint 3 keeps sprint 3's targets.
 */
export async function monitoredSprint(ctx: { inventory: Pick<Inventory, 'cluster' | 'hosts' | 'ports'>; pool: HostPool }, atLeast: number): Promise<number> {
  return Math.max(atLeast, await liveSprint(ctx));
}

export const RULE_FILES = ['postgres.yml', 'pgbouncer.yml', 'node.yml', 'backup.yml', 'security.yml'] as const;
export type RuleFile = (typeof RULE_FILES)[number];
/** The sprint that installs each rule file (its alerts read what that sprint deploys), and whose criteria judge it. */
export const RULE_FILE_SPRINT: Record<RuleFile, number> = { 'postgres.yml': 1, 'pgbouncer.yml': 1, 'node.yml': 1, 'backup.yml': 4, 'security.yml': 5 };
export const ruleFilesOf = (sprint: number): RuleFile[] => RULE_FILES.filter((f) => RULE_FILE_SPRINT[f] === sprint);
export const SCRAPE_INTERVAL_S = 15;

export function prometheusFiles(paths: Pick<Node['paths'], 'prometheusDir' | 'prometheusData'>) {
  return {
    config: `${paths.prometheusDir}/prometheus.yml`,
    rulesDir: `${paths.prometheusDir}/rules`,
    rule: (f: string) => `${paths.prometheusDir}/rules/${f}`,
    /** Each rule file's promtool tests, installed beside it: `../rules/<file>` in a test names the installed rules. */
    ruleTest: (f: string) => `${paths.prometheusDir}/tests/${ruleTestName(f)}`,
    data: paths.prometheusData,
  };
}

export const ruleTestName = (f: string): string => f.replace(/\.yml$/, '.test.yml');

/**
 * `tls`: the metrics endpoints (jobs with `web`) and Alertmanager are reached
 * over TLS, verified against the CA file, with basic auth from the password
 * file; Patroni's REST API over TLS verified against the CA, without auth;
 * the other jobs (etcd, HAProxy) as they serve.
 */
export function renderPrometheusYml(
  inv: Pick<Inventory, 'hosts' | 'file' | 'ports' | 'cluster'>,
  paths: Pick<Node['paths'], 'prometheusDir' | 'prometheusData'>,
  sprint: number,
  ruleFiles: readonly RuleFile[] = RULE_FILES.filter((f) => RULE_FILE_SPRINT[f] <= sprint),
  tls?: ScrapeTls,
  clientCert?: ClientCertFiles,
): string {
  const targets = scrapeTargets(inv, sprint);
  const jobs = [...new Set(targets.map((t) => t.job))].map((job) => {
    const ts = targets.filter((t) => t.job === job);
    const j = SCRAPE_JOBS.find((x) => x.job === job);
    const jobTls = ts[0]!.web ? tls : j?.httpsOnly && tls ? { caFile: tls.caFile } : j?.clientCert && clientCert ? clientCert : undefined;
    return { job, path: ts[0]!.path, targets: ts, tls: jobTls };
  });
  return render('prometheus/prometheus.yml.eta', {
    cluster: inv.cluster,
    interval: `${SCRAPE_INTERVAL_S}s`,
    ruleFiles: ruleFiles.map((f) => prometheusFiles(paths).rule(f)),
    alertmanagers: withRole('monitoring')(inv).map((h) => alertmanagerAddress(inv, h)),
    alertingTls: tls,
    jobs,
  });
}

/** Prometheus's own client certificate (etcd requires one once it serves TLS), with the CA, on the monitoring host. */
export interface ClientCertFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}
export const PROMETHEUS_CLIENT_CERT = 'etcd-client-prometheus';
export const prometheusClientCert = (paths: Pick<Node['paths'], 'tlsDir'>): ClientCertFiles => ({
  caFile: `${paths.tlsDir}/ca.crt`,
  certFile: `${paths.tlsDir}/${PROMETHEUS_CLIENT_CERT}.crt`,
  keyFile: `${paths.tlsDir}/${PROMETHEUS_CLIENT_CERT}.key`,
});

export const ruleFileText = (f: RuleFile): string => templateText(`prometheus/rules/${f}`);
export const ruleTestText = (f: RuleFile): string => templateText(`prometheus/tests/${ruleTestName(f)}`);

/** The alerting rules of these rule files (what /api/v1/rules must report). */
export function expectedAlertNames(files: readonly RuleFile[] = RULE_FILES): string[] {
  return files.flatMap((f) => [...ruleFileText(f).matchAll(/^\s*- alert:\s*(\S+)/gm)].map((m) => m[1]!));
}

export function prometheusService(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>): ServiceSpec {
  const f = prometheusFiles(node.paths);
  return {
    name: 'prometheus',
    user: 'prometheus',
    argv: [
      '/usr/bin/prometheus',
      `--config.file=${f.config}`,
      `--storage.tsdb.path=${f.data}`,
      `--web.listen-address=${node.spec.address}:${inv.ports.prometheus}`,
      // Always passed: the file says plaintext or TLS (components/metrics-web.ts).
      `--web.config.file=${metricsFiles(node.paths).webConfig}`,
      '--storage.tsdb.retention.time=15d',
    ],
    listen: { address: node.spec.address, port: inv.ports.prometheus },
  };
}

/** Prometheus on the monitoring host, as checks, Grafana and the reload confirmation reach it: https with `tls`, else http. */
export function prometheusTarget(inv: Pick<Inventory, 'hosts' | 'ports'>, tls: MetricsWeb | undefined): WebTarget {
  const m = inv.hosts.find((h) => h.roles.includes('monitoring'));
  if (!m) throw new HostError('no host has the monitoring role: there is no Prometheus to ask', { hint: 'Give one host the monitoring role in the inventory.' });
  return webTarget(`${m.address}:${inv.ports.prometheus}`, tls);
}

/**
 * The host's web config (components/metrics-web.ts), rules (each with its
 * promtool tests beside it), then the config that names them, each validated;
 * then start, restart (a new web config: whether to serve TLS is read at
 * start) or SIGHUP. The rule files are those of `sprint` and earlier, and
 * any a later sprint already installed: re-running sprint 1 keeps sprint 4's
 * backup alerts.
 */
export async function ensurePrometheus(ctx: MetricsCtx, node: Node, sprint: number, o: MetricsTlsChoice = {}): Promise<{ changed: boolean; note?: string }> {
  const inv = ctx.inventory;
  const web = await ensureMetricsWeb(ctx, node, o);
  const f = prometheusFiles(node.paths);
  const present = await Promise.all(RULE_FILES.map(async (r) => (await node.host.exec(['test', '-f', f.rule(r)], { mutates: false, allowFailure: true })).exitCode === 0));
  const files = RULE_FILES.filter((r, i) => RULE_FILE_SPRINT[r] <= sprint || present[i]);
  let changed = false;
  for (const r of files) {
    const w = await installValidated(node.host, f.rule(r), ruleFileText(r), { mode: 0o644 }, (s) => runValidator(node.host, `alert rule file ${r}`, ['promtool', 'check', 'rules', s]));
    const t = await node.host.writeFile(f.ruleTest(r), ruleTestText(r), { mode: 0o644 });
    changed = w.changed || t.changed || changed;
  }
  // A rule file a later sprint installed says that sprint ran, so its scrape targets stay too: the live
  // cluster reads as sprint 3 at most (deployed.ts), and sprint 1 re-run on a sprint-5 cluster keeps mtail.
  const scrapeSprint = Math.max(sprint, ...files.map((r) => RULE_FILE_SPRINT[r]));
  // --syntax-only: the staged config's rule files are the live ones, checked above.
  // etcd as it serves now: sprint 5 renders this again once its switch to TLS is done.
  const etcdTls = scrapeSprint >= 2 && (await etcdTlsOn(inv));
  const cfg = renderPrometheusYml(inv, node.paths, scrapeSprint, files, web.tls ? scrapeTls(node.paths, web.tls.username) : undefined, etcdTls ? prometheusClientCert(node.paths) : undefined);
  const w = await installValidated(node.host, f.config, cfg, { mode: 0o644 }, (s) => runValidator(node.host, 'Prometheus config', ['promtool', 'check', 'config', '--syntax-only', s]));
  changed = w.changed || changed;
  const dir = await node.host.exec(['stat', '-c', '%U', f.data], { mutates: false, allowFailure: true });
  if (dir.stdout.trim() !== 'prometheus') {
    // Why sh: two steps in one round trip; the directory is "$1", never spliced in.
    await node.host.exec(['sh', '-c', 'mkdir -p -- "$1" && chown -R prometheus: -- "$1"', 'sh', f.data]);
    changed = true;
  }
  const spec = prometheusService(inv, node);
  const before = await node.services.status(spec);
  if (before.running && (await restartReason(node, before.pid, spec, [...webReadsAtStart(node)]))) {
    await node.services.restart(spec);
    return { changed: true, note: withNote(web.note, 'restarted') };
  }
  const s = await node.services.start(spec);
  if (s.changed) return { changed: true, note: withNote(web.note, 'started') };
  if (changed) {
    await reloadAndConfirm(inv, node, spec, web.tls);
    return { changed: true, note: withNote(web.note, 'reloaded') };
  }
  return web.changed ? { changed: true, ...(web.note ? { note: web.note } : {}) } : { changed: false };
}

const withNote = (a: string | undefined, b: string): string => (a ? `${a}; ${b}` : b);

/**
 * SIGHUP, then wait until Prometheus says it applied a new configuration.
 * Why wait: SIGHUP returns at once and Prometheus reloads behind it, so the
 * criteria measured right after would judge the old scrape loops, or new ones
 * that have not scraped yet. Compared with the time Prometheus itself last
 * recorded, never this machine's clock (a remote host's may differ).
 */
async function reloadAndConfirm(inv: Inventory, node: Node, spec: ServiceSpec, tls: MetricsWeb | undefined): Promise<void> {
  const base = prometheusTarget(inv, tls);
  const before = await runtimeInfo(base);
  await node.services.reload(spec);
  // A dry run sent no SIGHUP: there is nothing to confirm.
  if (node.host.dryRun) return;
  const refused = () =>
    new HostError(`${node.spec.name}: Prometheus refused its new configuration (${prometheusFiles(node.paths).config})`, { hint: `Its log on ${node.spec.name} says why; the file passed \`promtool check\`, so look for a path or permission it cannot read.` });
  // After an earlier reload that failed (a rule file broken by hand: the repair's case), "failed" is what
  // Prometheus says until this one is applied: only a new lastConfigTime tells, and its absence, at the end.
  const failedBefore = before?.reloadConfigSuccess === false;
  let now: Awaited<ReturnType<typeof runtimeInfo>>;
  for (const until = Date.now() + 15_000; Date.now() < until; await sleep(250)) {
    now = await runtimeInfo(base);
    if (now?.reloadConfigSuccess === false && !failedBefore) throw refused();
    if (now && now.lastConfigTime !== before?.lastConfigTime) return;
  }
  if (now?.reloadConfigSuccess === false) throw refused();
  throw new HostError(`${node.spec.name}: Prometheus did not confirm reloading its configuration within 15 s of SIGHUP`, { hint: `Look at its log on ${node.spec.name}; \`dpgc sprint 1\` again reloads it.` });
}

async function runtimeInfo(base: WebTarget): Promise<{ reloadConfigSuccess: boolean; lastConfigTime: string } | undefined> {
  try {
    const res = await webGet(base, '/api/v1/status/runtimeinfo', { timeoutMs: 5000 });
    const body = JSON.parse(res.body) as { status?: string; data?: { reloadConfigSuccess: boolean; lastConfigTime: string } };
    return body.status === 'success' ? body.data : undefined;
  } catch {
    return undefined; // not answering yet (a reload in progress): the caller waits
  }
}
