import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { withClient } from '../db/client.js';
import { superuserOn } from './endpoints.js';

/**
 * Audit logging (sprint 5): pgaudit preloaded on every member, logging the
 * DDL and ROLE classes (schema changes, grants, role and password changes),
 * connections and disconnections logged by PostgreSQL itself, into
 * PostgreSQL's own log files in the data directory (`log/postgresql-<Day>.log`,
 * a week of them, each truncated when its weekday comes round again): a path
 * an operator finds on every member, whatever runs the service.
 *
 * Session logging only: `CREATE EXTENSION pgaudit` (event triggers that add
 * object names) is not used, because with the extension present and pgaudit
 * no longer preloaded, every DDL statement would fail.
 *
 * Each of these can be set in `postgres.settings`, which wins; a
 * `shared_preload_libraries` there keeps its libraries, pgaudit added.
 */
export const AUDIT_DEFAULTS: Record<string, string | number> = {
  'pgaudit.log': 'ddl, role',
  // The client's address on every session's lines ("[local]" on the socket): who logged in from where,
  // and what the security metrics tell apart (components/security-metrics.ts).
  log_line_prefix: '%m [%p] %q%u@%d %h ',
  log_connections: 'on',
  log_disconnections: 'on',
  logging_collector: 'on',
  log_directory: 'log',
  log_filename: 'postgresql-%a.log',
  log_truncate_on_rotation: 'on',
  log_rotation_age: '1d',
  log_rotation_size: 0,
};

export const PGAUDIT = 'pgaudit';

export function pgauditPackage(version: number | string): string {
  return `postgresql-${version}-pgaudit`;
}

/** The libraries of a shared_preload_libraries value. */
export function preloadList(value: unknown): string[] {
  return (typeof value === 'string' ? value : '')
    .split(',')
    .map((s) => s.trim().replace(/^"|"$/g, ''))
    .filter(Boolean);
}

/** A shared_preload_libraries value with `lib` in it, the others kept in their order. */
export function withPreload(value: unknown, lib = PGAUDIT): string {
  const libs = preloadList(value);
  return (libs.includes(lib) ? libs : [...libs, lib]).join(',');
}

/** The parameters audit logging adds to Patroni's dynamic configuration. */
export function auditParameters(pg: Pick<Inventory['postgres'], 'settings'>): Record<string, string | number> {
  const own = pg.settings;
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(AUDIT_DEFAULTS)) {
    const mine = own[k];
    out[k] = mine === undefined ? v : typeof mine === 'boolean' ? (mine ? 'on' : 'off') : mine;
  }
  out['shared_preload_libraries'] = withPreload(own['shared_preload_libraries']);
  return out;
}

/**
 * Why `member` must be restarted for audit logging, or undefined: it does not
 * preload pgaudit yet. Read from the server itself rather than from Patroni's
 * pending_restart, which a member sets only once it has applied the new
 * configuration (a loop or two after the PATCH): a restart (Patroni stopped
 * and started, reading the dynamic configuration afresh) is then certain to
 * load it.
 */
export async function pgauditNotLoaded(inv: Pick<Inventory, 'hosts' | 'ports'>, secrets: Pick<Secrets, 'get'>, member: string): Promise<string | undefined> {
  const host = inv.hosts.find((h) => h.name === member);
  if (!host) return undefined;
  const pre = await withClient(secrets, superuserOn(inv, host), async (c) => (await c.query<{ p: string }>("SELECT current_setting('shared_preload_libraries') AS p")).rows[0]?.p);
  return preloadList(pre).includes(PGAUDIT) ? undefined : 'pgaudit is not loaded yet';
}
