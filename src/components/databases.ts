import type pg from 'pg';
import type { HostSpec, Inventory } from '../config/schema.js';
import type { SecretName, Secrets } from '../config/secrets.js';
import { withClient } from '../db/client.js';
import { firstPostgres, ROLES_DB, superuserOn } from './endpoints.js';
import { scramMatches, scramVerifier } from './scram.js';
import { createExtensionSql, ENGINES, extensionName, quoteIdent, type VectorEngine } from './vector.js';

/**
 * Roles, databases and the vector extension, each checked before it is
 * touched so that a second run changes nothing. Passwords travel as SCRAM
 * verifiers computed here: the SQL text never holds a password.
 */

/** Creates the login role, or fixes its password/login; `changed` only when it had to. */
export async function ensureLoginRole(su: pg.Client, role: string, secrets: Pick<Secrets, 'get'>, secret: SecretName): Promise<{ changed: boolean; note?: string }> {
  const password = await secrets.get(secret);
  const r = await su.query<{ rolpassword: string | null; rolcanlogin: boolean }>('SELECT rolpassword, rolcanlogin FROM pg_authid WHERE rolname = $1', [role]);
  const cur = r.rows[0];
  if (cur && cur.rolcanlogin && scramMatches(cur.rolpassword, password)) return { changed: false };
  // A verifier is base64 plus `$` and `:`, so it needs no quoting beyond the literal's own quotes.
  const verifier = scramVerifier(password);
  await su.query(`${cur ? 'ALTER' : 'CREATE'} ROLE ${quoteIdent(role)} LOGIN PASSWORD '${verifier}'`);
  return { changed: true, note: cur ? 'password or login reset' : 'created' };
}

/**
 * What the monitoring role reads beyond pg_monitor: the pg_hba rules and the
 * configuration files' settings as they are on disk, for the alerts on
 * configuration changed outside dpgc (postgres_exporter's pg_local_config
 * query). Superuser-only by default; they show rules and setting values, no
 * secret pg_monitor does not already see (pg_settings), and no file beyond.
 */
export const MONITOR_VIEWS = [
  { view: 'pg_hba_file_rules', fn: 'pg_hba_file_rules()' },
  { view: 'pg_file_settings', fn: 'pg_show_all_file_settings()' },
] as const;

/** The monitoring role: a login with pg_monitor, never a superuser, and SELECT on MONITOR_VIEWS. */
export async function ensureMonitoringRole(su: pg.Client, secrets: Pick<Secrets, 'get'>): Promise<{ changed: boolean; note?: string }> {
  const role = ROLES_DB.monitoring.user;
  const login = await ensureLoginRole(su, role, secrets, ROLES_DB.monitoring.secret);
  const r = await su.query<{ sup: boolean; mon: boolean }>("SELECT rolsuper AS sup, pg_has_role(oid, 'pg_monitor', 'MEMBER') AS mon FROM pg_roles WHERE rolname = $1", [role]);
  // No row: the role is still to be created (an observation sends no CREATE ROLE), so it is no superuser yet.
  const cur = r.rows[0] ?? { sup: false, mon: false };
  if (cur.sup) await su.query(`ALTER ROLE ${role} NOSUPERUSER`);
  if (!cur.mon) await su.query(`GRANT pg_monitor TO ${role}`);
  const missing: string[] = [];
  for (const v of MONITOR_VIEWS) {
    const g = r.rows[0]
      ? (await su.query<{ sel: boolean; exe: boolean }>("SELECT has_table_privilege($1, $2, 'SELECT') AS sel, has_function_privilege($1, $3, 'EXECUTE') AS exe", [role, v.view, v.fn])).rows[0]!
      : { sel: false, exe: false };
    if (g.sel && g.exe) continue;
    await su.query(`GRANT SELECT ON ${v.view} TO ${role}`);
    await su.query(`GRANT EXECUTE ON FUNCTION ${v.fn} TO ${role}`);
    missing.push(v.view);
  }
  return { changed: login.changed || cur.sup || !cur.mon || missing.length > 0, ...(missing.length ? { note: `SELECT on ${missing.join(', ')} granted` } : {}) };
}

/** The database with its owner, and the owner's CONNECT privilege (a revoked grant is restored). */
export async function ensureDatabase(su: pg.Client, db: string, owner: string): Promise<{ changed: boolean; note?: string }> {
  const r = await su.query<{ owner: string; can: boolean }>(
    `SELECT pg_get_userbyid(datdba) AS owner, has_database_privilege($2, oid, 'CONNECT') AS can FROM pg_database WHERE datname = $1`,
    [db, owner],
  );
  const cur = r.rows[0];
  const notes: string[] = [];
  if (!cur) {
    // template0: the encoding and locale are ours, not whatever template1 collected.
    await su.query(`CREATE DATABASE ${quoteIdent(db)} OWNER ${quoteIdent(owner)} TEMPLATE template0 ENCODING 'UTF8'`);
    return { changed: true, note: 'created' };
  }
  if (cur.owner !== owner) {
    await su.query(`ALTER DATABASE ${quoteIdent(db)} OWNER TO ${quoteIdent(owner)}`);
    notes.push(`owner ${cur.owner} → ${owner}`);
  }
  if (!cur.can) {
    await su.query(`GRANT CONNECT ON DATABASE ${quoteIdent(db)} TO ${quoteIdent(owner)}`);
    notes.push(`CONNECT granted to ${owner}`);
  }
  return notes.length ? { changed: true, note: notes.join(', ') } : { changed: false };
}

/** The extension in the database `su` is connected to (superuser: extensions are created by one). */
export async function ensureExtension(su: pg.Client, engine: VectorEngine): Promise<{ changed: boolean; note: string }> {
  const ext = extensionName(engine);
  const version = async () => (await su.query<{ v: string }>('SELECT extversion AS v FROM pg_extension WHERE extname = $1', [ext])).rows[0]?.v;
  const before = await version();
  if (before) return { changed: false, note: `${ENGINES[engine].label} ${before}` };
  await su.query(createExtensionSql(engine));
  return { changed: true, note: `${ENGINES[engine].label} ${await version()}` };
}

/**
 * The ruvector image ships a login role `ruvector` with password `ruvector`
 * (NOTES.md): wherever it exists it loses its login and password.
 */
export async function lockImageLoginRole(su: pg.Client): Promise<{ changed: boolean; note?: string }> {
  const role = ENGINES.ruvector.imageLoginRole;
  const r = await su.query<{ rolcanlogin: boolean; haspw: boolean }>('SELECT rolcanlogin, rolpassword IS NOT NULL AS haspw FROM pg_authid WHERE rolname = $1', [role]);
  const cur = r.rows[0];
  if (!cur || (!cur.rolcanlogin && !cur.haspw)) return { changed: false };
  await su.query(`ALTER ROLE ${quoteIdent(role)} NOLOGIN PASSWORD NULL`);
  return { changed: true, note: `${role} can no longer log in` };
}

/**
 * Where the databases are written: the base host, or after sprint 3 and a
 * failover, whichever postgres host is not in recovery. Falls back to the
 * base host, so an error names the host sprint 0 is about.
 */
export async function writableHost(inv: Pick<Inventory, 'hosts' | 'file' | 'ports'>, secrets: Pick<Secrets, 'get'>): Promise<HostSpec> {
  const base = firstPostgres(inv);
  const others = inv.hosts.filter((h) => h.roles.includes('postgres') && h.name !== base.name);
  for (const h of [base, ...others]) {
    try {
      const r = await withClient(secrets, superuserOn(inv, h), (c) => c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'));
      if (r.rows[0]?.r === false) return h;
    } catch {
      // down or not there yet: the next one
    }
  }
  return base;
}
