import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import type { HostPool, Node } from '../hosts/pool.js';
import type { Credentials } from '../db/client.js';
import { clientTls, type ClientTlsChoice } from './deployed.js';
import type { ServiceSpec } from '../hosts/services.js';
import { templateText } from '../templates.js';
import { ROLES_DB } from './endpoints.js';

/**
 * The exporters Prometheus scrapes: node_exporter on every host,
 * postgres_exporter beside each PostgreSQL instance, and dpgc's own PgBouncer
 * exporter (Debian's crashes on PgBouncer 1.18, docs/lab-facts.md). Secrets reach them
 * only through mode-0600 environment files read by the service manager.
 */
export const EXPORTER_USER = 'prometheus';

export function exporterFiles(node: Pick<Node, 'paths'>) {
  return {
    postgresEnv: `${node.paths.envDir}/postgres-exporter.env`,
    postgresQueries: `${node.paths.prometheusDir}/postgres-exporter-queries.yml`,
    postgresCa: `${node.paths.prometheusDir}/postgres-exporter-ca.crt`,
    pgbouncerEnv: `${node.paths.envDir}/pgbouncer-exporter.env`,
    pgbouncerScript: `${node.paths.root === '/' ? '' : node.paths.root}/usr/local/lib/dpgc/pgbouncer-exporter.py`,
  };
}

export function nodeExporterService(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>): ServiceSpec {
  return {
    name: 'node-exporter',
    user: EXPORTER_USER,
    argv: [
      '/usr/bin/prometheus-node-exporter',
      `--web.listen-address=${node.spec.address}:${inv.ports.node_exporter}`,
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
      `--extend.query-path=${f.postgresQueries}`,
    ],
    envFile: f.postgresEnv,
    listen: { address: node.spec.address, port: inv.ports.postgres_exporter },
  };
}

export async function pgbouncerExporterEnv(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec'>, secrets: Pick<Secrets, 'get'>): Promise<string> {
  const a = ROLES_DB.pgbouncerAdmin;
  return envFileText({
    PGBOUNCER_EXPORTER_LISTEN: `${node.spec.address}:${inv.ports.pgbouncer_exporter}`,
    PGHOST: node.spec.address,
    PGPORT: String(inv.ports.pgbouncer),
    PGUSER: a.user,
    PGPASSWORD: await secrets.get(a.secret),
    PGAPPNAME: 'dpgc-pgbouncer-exporter',
  });
}

export function pgbouncerExporterService(inv: Pick<Inventory, 'ports'>, node: Pick<Node, 'spec' | 'paths'>): ServiceSpec {
  const f = exporterFiles(node);
  return {
    name: 'pgbouncer-exporter',
    // PgBouncer's package guarantees this user on the host; the exporter needs no other privilege.
    user: 'postgres',
    argv: ['/usr/bin/python3', f.pgbouncerScript],
    envFile: f.pgbouncerEnv,
    listen: { address: node.spec.address, port: inv.ports.pgbouncer_exporter },
  };
}

export const pgbouncerExporterScript = (): string => templateText('pgbouncer/pgbouncer-exporter.py');
export const postgresExporterQueries = (): string => templateText('prometheus/postgres-exporter-queries.yml');

/**
 * Write an exporter's files, then start it, or restart it when a file it
 * reads only at start changed (exporters have no reload).
 */
export async function ensureExporter(node: Node, spec: ServiceSpec, files: { path: string; content: string; mode: number; owner?: string }[]): Promise<{ changed: boolean; note?: string }> {
  let changed = false;
  for (const f of files) changed = (await node.host.writeFile(f.path, f.content, { mode: f.mode, owner: f.owner ?? 'root' })).changed || changed;
  const before = await node.services.status(spec);
  if (before.running && changed) {
    await node.services.restart(spec);
    return { changed: true, note: 'restarted' };
  }
  const s = await node.services.start(spec);
  return s.changed ? { changed: true, note: 'started' } : { changed };
}

/** node_exporter's textfile directory, made when missing and never re-owned (sprint 4 lets the backup user write there). */
export async function ensureTextfileDir(node: Node): Promise<boolean> {
  const dir = node.paths.textfileDir;
  if ((await node.host.exec(['test', '-d', dir], { mutates: false, allowFailure: true })).exitCode === 0) return false;
  await node.host.exec(['install', '-d', '-m', '755', dir]);
  return true;
}

/** postgres_exporter on one PostgreSQL node: its 0600 env file, its queries, the CA once PostgreSQL serves TLS, its service. */
export async function ensurePostgresExporter(ctx: { inventory: Inventory; secrets: Credentials; pool: HostPool }, node: Node, o: ClientTlsChoice = {}): Promise<{ changed: boolean; note?: string }> {
  const inv = ctx.inventory;
  const f = exporterFiles(node);
  const ca = o.tlsCa ?? (await clientTls(ctx));
  return ensureExporter(node, postgresExporterService(inv, node), [
    ...(ca === undefined ? [] : [{ path: f.postgresCa, content: ca, mode: 0o644 }]),
    { path: f.postgresEnv, content: await postgresExporterEnv(inv, node, ctx.secrets, ca === undefined ? undefined : f.postgresCa), mode: 0o600 },
    { path: f.postgresQueries, content: postgresExporterQueries(), mode: 0o644 },
  ]);
}
