import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import type { Node } from '../hosts/pool.js';
import { clientTls } from './deployed.js';
import type { ServiceSpec } from '../hosts/services.js';
import { templateText } from '../templates.js';
import { ROLES_DB } from './endpoints.js';
import { ensureMetricsWeb, METRICS_OWNER, metricsFiles, type MetricsCtx, type MetricsTlsChoice, type MetricsWeb } from './metrics-web.js';

/**
 * The exporters Prometheus scrapes: node_exporter on every host,
 * postgres_exporter beside each PostgreSQL instance, and dpgc's own PgBouncer
 * exporter (Debian's crashes on PgBouncer 1.18, docs/lab-facts.md). Secrets reach them
 * only through mode-0600 environment files read by the service manager. Each
 * serves TLS with basic auth once sprint 5 turns it on (components/metrics-web.ts).
 */
export const EXPORTER_USER = METRICS_OWNER;

export function exporterFiles(node: Pick<Node, 'paths'>) {
  return {
    postgresEnv: `${node.paths.envDir}/postgres-exporter.env`,
    postgresQueries: `${node.paths.prometheusDir}/postgres-exporter-queries.yml`,
    postgresCa: `${node.paths.prometheusDir}/postgres-exporter-ca.crt`,
    pgbouncerEnv: `${node.paths.envDir}/pgbouncer-exporter.env`,
    pgbouncerScript: `${node.paths.root === '/' ? '' : node.paths.root}/usr/local/lib/dpgc/pgbouncer-exporter.py`,
  };
}

/**
 * What a daemon behind the web config reads only at start: whether to serve
 * TLS, which the stamp beside it records (its users and certificate are
 * read on every request, so their changes restart nothing).
 */
export const webReadsAtStart = (node: Pick<Node, 'paths'>): string[] => [metricsFiles(node.paths).serves];

/** Always passed: the file itself says plaintext or TLS, so a restart by any sprint keeps what is on. */
const webConfigFlag = (node: Pick<Node, 'paths'>) => `--web.config.file=${metricsFiles(node.paths).webConfig}`;

export function nodeExporterService(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>): ServiceSpec {
  return {
    name: 'node-exporter',
    user: EXPORTER_USER,
    argv: [
      '/usr/bin/prometheus-node-exporter',
      `--web.listen-address=${node.spec.address}:${inv.ports.node_exporter}`,
      webConfigFlag(node),
      // Named, not Debian's built-in default: in the lab each host's directory is under its own root.
      // The backup host's metrics arrive here (components/backup-metrics.ts).
      `--collector.textfile.directory=${node.paths.textfileDir}`,
      // Debian's build enables the systemd collector, which fails every scrape on a host without systemd.
      ...(node.spec.services === 'systemd' ? [] : ['--no-collector.systemd']),
    ],
    listen: { address: node.spec.address, port: inv.ports.node_exporter },
  };
}

/** KEY=VALUE lines for dpgc's env-file parser (src/hosts/env-file.ts, never a shell) and systemd's EnvironmentFile alike: single-quoted values. */
export function envFileText(vars: Record<string, string>): string {
  return `${Object.entries(vars)
    .map(([k, v]) => {
      if (/['\n]/.test(v)) throw new Error(`environment value for ${k} contains a quote or newline`);
      return `${k}='${v}'`;
    })
    .join('\n')}\n`;
}

/**
 * `caFile`: PostgreSQL serves TLS (components/deployed.ts clientTls), and the
 * exporter verifies it like libpq's verify-full (lib/pq checks an IP SAN
 * against an address); without it, plaintext, as before sprint 5.
 */
export async function postgresExporterEnv(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec'>, secrets: Pick<Secrets, 'get'>, caFile?: string): Promise<string> {
  const m = ROLES_DB.monitoring;
  const tls = caFile ? `sslmode=verify-full&sslrootcert=${encodeURIComponent(caFile)}` : 'sslmode=disable';
  return envFileText({
    DATA_SOURCE_URI: `${node.spec.address}:${inv.ports.postgres}/postgres?${tls}`,
    DATA_SOURCE_USER: m.user,
    DATA_SOURCE_PASS: await secrets.get(m.secret),
  });
}

export function postgresExporterService(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>): ServiceSpec {
  const f = exporterFiles(node);
  return {
    name: 'postgres-exporter',
    user: EXPORTER_USER,
    argv: [
      '/usr/bin/prometheus-postgres-exporter',
      `--web.listen-address=${node.spec.address}:${inv.ports.postgres_exporter}`,
      webConfigFlag(node),
      `--extend.query-path=${f.postgresQueries}`,
    ],
    envFile: f.postgresEnv,
    listen: { address: node.spec.address, port: inv.ports.postgres_exporter },
  };
}

/**
 * With `tls`, the host's metrics certificate and the users file: the script
 * is not exporter-toolkit and reads no web config, and Python's standard
 * library has no bcrypt, so ensureMetricsWeb writes the same users, PBKDF2
 * hashed, beside the web config. The script reads it on every request, as
 * exporter-toolkit does its web config, so a rotation restarts nothing.
 */
export async function pgbouncerExporterEnv(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>, secrets: Pick<Secrets, 'get'>, tls?: MetricsWeb): Promise<string> {
  const a = ROLES_DB.pgbouncerAdmin;
  const m = metricsFiles(node.paths);
  return envFileText({
    PGBOUNCER_EXPORTER_LISTEN: `${node.spec.address}:${inv.ports.pgbouncer_exporter}`,
    ...(tls
      ? { PGBOUNCER_EXPORTER_TLS_CERT: m.cert, PGBOUNCER_EXPORTER_TLS_KEY: m.key, PGBOUNCER_EXPORTER_USERS_FILE: m.webUsers }
      : {}),
    PGHOST: node.spec.address,
    PGPORT: String(inv.ports.pgbouncer),
    // PgBouncer requires TLS of its clients by then (sprint 5): verified like every other client, not libpq's `prefer`.
    ...(tls ? { PGSSLMODE: 'verify-full', PGSSLROOTCERT: m.ca } : {}),
    PGUSER: a.user,
    PGPASSWORD: await secrets.get(a.secret),
    PGAPPNAME: 'dpgc-pgbouncer-exporter',
  });
}

export function pgbouncerExporterService(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>): ServiceSpec {
  const f = exporterFiles(node);
  return {
    name: 'pgbouncer-exporter',
    // The owner of the host's metrics key; it needs no other privilege (it logs in to PgBouncer with a password).
    user: EXPORTER_USER,
    argv: ['/usr/bin/python3', f.pgbouncerScript],
    envFile: f.pgbouncerEnv,
    listen: { address: node.spec.address, port: inv.ports.pgbouncer_exporter },
  };
}

export const pgbouncerExporterScript = (): string => templateText('pgbouncer/pgbouncer-exporter.py');
export const postgresExporterQueries = (): string => templateText('prometheus/postgres-exporter-queries.yml');

/**
 * Write an exporter's files, then start it, or restart it when it does not
 * run as they say (exporters have no reload): see restartReason. `readsAtStart`:
 * other files it reads only at start (the web config's TLS stamp, webReadsAtStart).
 */
export async function ensureExporter(
  node: Node,
  spec: ServiceSpec,
  files: { path: string; content: string; mode: number; owner?: string }[],
  o: { readsAtStart?: string[] } = {},
): Promise<{ changed: boolean; note?: string }> {
  let changed = false;
  for (const f of files) changed = (await node.host.writeFile(f.path, f.content, { mode: f.mode, owner: f.owner ?? 'root' })).changed || changed;
  const before = await node.services.status(spec);
  if (before.running && (changed || (await restartReason(node, before.pid, spec, [...files.map((f) => f.path), ...(o.readsAtStart ?? [])])))) {
    await node.services.restart(spec);
    return { changed: true, note: 'restarted' };
  }
  const s = await node.services.start(spec);
  return s.changed ? { changed: true, note: 'started' } : { changed };
}

/**
 * Why a running daemon must restart to be as dpgc configures it, or
 * undefined: it runs with other arguments than `spec` (started by hand, or by
 * an older dpgc: its command line says), or a file it reads only at start
 * changed after it started (written by this run's step before, or by a run
 * interrupted before its restart). Both read on the host itself, its clock
 * against its files' times.
 */
export async function restartReason(node: Pick<Node, 'host'>, pid: number, spec: Pick<ServiceSpec, 'argv'>, readsAtStart: string[]): Promise<string | undefined> {
  const cmdline = await node.host.readFile(`/proc/${pid}/cmdline`);
  if (cmdline === undefined) return undefined; // gone meanwhile: the start that follows decides
  if (cmdline.replace(/\0$/, '') !== spec.argv.join('\0')) return 'it runs with other arguments';
  if (!readsAtStart.length) return undefined;
  // Why sh: the process's start (boot time + its start in clock ticks, field 22 of /proc/<pid>/stat) and
  // each file's mtime in one round trip; pid and paths are "$1", "$@", never spliced in.
  const r = await node.host.exec(
    [
      'sh', '-c',
      't=$(sed "s/^.*) //" "/proc/$1/stat" | cut -d" " -f20); b=$(sed -n "s/^btime //p" /proc/stat); echo $(( b + t / $(getconf CLK_TCK) )); shift; for f; do [ -e "$f" ] && stat -c "%Y %n" -- "$f"; done; true',
      'sh', String(pid), ...readsAtStart,
    ],
    { mutates: false, allowFailure: true },
  );
  const [first, ...rest] = r.stdout.trim().split('\n');
  const started = Number(first);
  if (r.exitCode !== 0 || !Number.isFinite(started)) return undefined;
  // One second of slack: both times are whole seconds, and boot time is itself rounded.
  const newer = rest.map((l) => /^(\d+) (.*)$/.exec(l)).filter((m): m is RegExpExecArray => m !== null && Number(m[1]) > started + 1);
  return newer.length ? `${newer.map((m) => m[2]).join(', ')} changed after it started` : undefined;
}

/** node_exporter's textfile directory, made when missing and never re-owned (sprint 4 lets the backup user write there). */
export async function ensureTextfileDir(node: Node): Promise<boolean> {
  const dir = node.paths.textfileDir;
  if ((await node.host.exec(['test', '-d', dir], { mutates: false, allowFailure: true })).exitCode === 0) return false;
  await node.host.exec(['install', '-d', '-m', '755', dir]);
  return true;
}

type Outcome = { changed: boolean; note?: string };
/** Several outcomes as one step's: changed if any did, their notes in order, each once. */
export const mergeOutcomes = (...rs: Outcome[]): Outcome => {
  const note = [...new Set(rs.map((r) => r.note).filter(Boolean))].join('; ');
  return { changed: rs.some((r) => r.changed), ...(note ? { note } : {}) };
};

/**
 * postgres_exporter on one PostgreSQL node: its 0600 env file, its queries,
 * the CA once PostgreSQL serves TLS, the host's web config, its service.
 * `o.tlsCa` decides both its connection to PostgreSQL and its own endpoint.
 */
export async function ensurePostgresExporter(ctx: MetricsCtx, node: Node, o: MetricsTlsChoice = {}): Promise<Outcome> {
  const inv = ctx.inventory;
  const f = exporterFiles(node);
  const ca = o.tlsCa ?? (await clientTls(ctx));
  const web = await ensureMetricsWeb(ctx, node, { ...o, ...(ca === undefined ? {} : { tlsCa: ca }) });
  const r = await ensureExporter(
    node,
    postgresExporterService(inv, node),
    [
      ...(ca === undefined ? [] : [{ path: f.postgresCa, content: ca, mode: 0o644 }]),
      { path: f.postgresEnv, content: await postgresExporterEnv(inv, node, ctx.secrets, ca === undefined ? undefined : f.postgresCa), mode: 0o600 },
      { path: f.postgresQueries, content: postgresExporterQueries(), mode: 0o644 },
    ],
    { readsAtStart: webReadsAtStart(node) },
  );
  return mergeOutcomes(web, r);
}

/** node_exporter on any host: its textfile directory, the host's web config, its service. */
export async function ensureNodeExporter(ctx: MetricsCtx, node: Node, o: MetricsTlsChoice = {}): Promise<Outcome> {
  const web = await ensureMetricsWeb(ctx, node, o);
  const dir = await ensureTextfileDir(node);
  const r = await ensureExporter(node, nodeExporterService(ctx.inventory, node), [], { readsAtStart: webReadsAtStart(node) });
  return mergeOutcomes(web, dir ? { ...r, changed: true } : r);
}

/** dpgc's PgBouncer exporter: its script, its 0600 env file (TLS and credentials in it once on), its service. */
export async function ensurePgbouncerExporter(ctx: MetricsCtx, node: Node, o: MetricsTlsChoice = {}): Promise<Outcome> {
  const web = await ensureMetricsWeb(ctx, node, o);
  const f = exporterFiles(node);
  const r = await ensureExporter(node, pgbouncerExporterService(ctx.inventory, node), [
    { path: f.pgbouncerScript, content: pgbouncerExporterScript(), mode: 0o755 },
    { path: f.pgbouncerEnv, content: await pgbouncerExporterEnv(ctx.inventory, node, ctx.secrets, web.tls), mode: 0o600 },
  ]);
  // Its certificate is read again by the script itself when it changes.
  return mergeOutcomes(web, r);
}

/**
 * Every exporter a host of a sprint-3-or-later cluster runs: node_exporter,
 * postgres_exporter on a PostgreSQL host, the PgBouncer exporter on a
 * PgBouncer host; one after another, sharing the host's web config.
 */
export async function ensureHostExporters(ctx: MetricsCtx, node: Node, o: MetricsTlsChoice = {}): Promise<Outcome> {
  const web = await ensureMetricsWeb(ctx, node, o);
  const shared = { ...o, web: { tls: web.tls, changed: false } };
  const named = (what: string, r: Outcome): Outcome => ({ changed: r.changed, ...(r.note ? { note: `${what} ${r.note}` } : {}) });
  const rs = [web, named('node_exporter', await ensureNodeExporter(ctx, node, shared))];
  if (node.spec.roles.includes('postgres')) rs.push(named('postgres_exporter', await ensurePostgresExporter(ctx, node, shared)));
  if (node.spec.roles.includes('pgbouncer')) rs.push(named('the PgBouncer exporter', await ensurePgbouncerExporter(ctx, node, shared)));
  return mergeOutcomes(...rs);
}
