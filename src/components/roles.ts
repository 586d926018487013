import type { Secrets } from '../config/secrets.js';
import type { Client } from '../db/client.js';
import { ensureLoginRole } from './databases.js';
import { DATABASES } from './endpoints.js';
import { quoteIdent } from './vector.js';
import { DPGC_SCHEMAS } from '../db/schemas.js';

/**
 * The application's login roles (sprint 5). Owners (sprint 0) own the
 * schemas and run migrations; applications log in as these instead, so a
 * leaked application password cannot drop a table or create one:
 * - `app_user` reads and writes rows (no DDL, no TRUNCATE);
 * - `readonly_user` reads.
 * Privileges are declared once here; the same declaration is what sprint 5
 * applies and what its criterion measures (`privilegeDrift`), and default
 * privileges cover the tables an owner creates later.
 */
export const APP_ROLES = {
  app: { user: 'app_user', secret: 'app_user', tables: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'], sequences: ['USAGE', 'SELECT'] },
  readonly: { user: 'readonly_user', secret: 'readonly_user', tables: ['SELECT'], sequences: ['SELECT'] },
} as const;
export type AppRole = (typeof APP_ROLES)[keyof typeof APP_ROLES];
export const APP_ROLE_LIST: readonly AppRole[] = Object.values(APP_ROLES);

const TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'] as const;
const SEQUENCE_PRIVILEGES = ['USAGE', 'SELECT', 'UPDATE'] as const;
/** Attributes no application role may have: each would let it around its grants. */
const FORBIDDEN_ATTRIBUTES = { rolsuper: 'SUPERUSER', rolcreatedb: 'CREATEDB', rolcreaterole: 'CREATEROLE', rolreplication: 'REPLICATION', rolbypassrls: 'BYPASSRLS' } as const;

/** Creates the role or fixes its password, login, attributes and memberships; `changed` only when it had to. */
export async function ensureAppRole(su: Client, role: AppRole, secrets: Pick<Secrets, 'get'>): Promise<{ changed: boolean; note?: string }> {
  const login = await ensureLoginRole(su, role.user, secrets, role.secret);
  const drift = await roleDrift(su, role);
  if (!drift.length) return login;
  const attrs = Object.values(FORBIDDEN_ATTRIBUTES).map((a) => `NO${a}`).join(' ');
  await su.query(`ALTER ROLE ${quoteIdent(role.user)} ${attrs}`);
  const member = await memberships(su, role.user);
  for (const m of member) await su.query(`REVOKE ${quoteIdent(m)} FROM ${quoteIdent(role.user)}`);
  return { changed: true, note: [login.note, ...drift].filter(Boolean).join('; ') };
}

async function memberships(su: Client, user: string): Promise<string[]> {
  const r = await su.query<{ g: string }>('SELECT g.rolname AS g FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1', [user]);
  return r.rows.map((x) => x.g).sort();
}

/** What is wrong with the role itself: a forbidden attribute, or a role it is a member of (it would inherit its rights). */
export async function roleDrift(su: Client, role: AppRole): Promise<string[]> {
  const r = await su.query<Record<string, boolean>>(`SELECT ${Object.keys(FORBIDDEN_ATTRIBUTES).join(', ')}, rolcanlogin FROM pg_roles WHERE rolname = $1`, [role.user]);
  const row = r.rows[0];
  if (!row) return [`${role.user} does not exist`];
  const out: string[] = [];
  if (!row['rolcanlogin']) out.push(`${role.user} cannot log in`);
  for (const [col, name] of Object.entries(FORBIDDEN_ATTRIBUTES)) if (row[col]) out.push(`${role.user} has ${name}`);
  for (const g of await memberships(su, role.user)) out.push(`${role.user} is a member of ${g} (and has its rights)`);
  return out;
}

/** The schemas applications use in the database `su` is connected to: public and those its owner made, never dpgc's own (ledgers, drill writes). */
async function appSchemas(su: Client, owner: string): Promise<string[]> {
  const r = await su.query<{ n: string }>(
    `SELECT nspname AS n FROM pg_namespace WHERE (nspname = 'public' OR nspowner = $1::regrole) AND nspname <> ALL($2) AND nspname NOT LIKE 'pg\\_%' ORDER BY 1`,
    [owner, DPGC_SCHEMAS],
  );
  return r.rows.map((x) => x.n);
}

const want = (declared: readonly string[], p: string) => declared.includes(p);

/**
 * Every way the database's privileges differ from APP_ROLES, as sentences
 * ("readonly_user can INSERT on public.patterns"). Effective privileges
 * (has_*_privilege: through PUBLIC and memberships too), so a grant to PUBLIC
 * counts as much as one to the role. Empty when all is as declared.
 */
export async function privilegeDrift(su: Client, db: string, owner: string): Promise<string[]> {
  const schemas = await appSchemas(su, owner);
  const users = APP_ROLE_LIST.map((r) => r.user);
  const exists = (await su.query<{ u: string }>('SELECT rolname AS u FROM pg_roles WHERE rolname = ANY($1)', [users])).rows.map((x) => x.u);
  const out: string[] = [];
  for (const role of APP_ROLE_LIST) {
    if (!exists.includes(role.user)) {
      out.push(`${role.user} does not exist`);
      continue;
    }
    const u = role.user;
    const dbp = (await su.query<{ c: boolean; cr: boolean }>("SELECT has_database_privilege($1, $2, 'CONNECT') AS c, has_database_privilege($1, $2, 'CREATE') AS cr", [u, db])).rows[0]!;
    if (!dbp.c) out.push(`${u} cannot CONNECT to ${db}`);
    if (dbp.cr) out.push(`${u} can CREATE schemas in ${db}`);
    const sch = await su.query<{ s: string; usage: boolean; create: boolean }>(
      "SELECT s, has_schema_privilege($1, s, 'USAGE') AS usage, has_schema_privilege($1, s, 'CREATE') AS create FROM unnest($2::text[]) AS s",
      [u, schemas],
    );
    for (const s of sch.rows) {
      if (!s.usage) out.push(`${u} has no USAGE on schema ${s.s}`);
      if (s.create) out.push(`${u} can CREATE in schema ${s.s}`);
    }
    const rels = await su.query<{ t: string; kind: string; p: string; has: boolean }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS t, c.relkind::text AS kind, p.p,
              CASE WHEN c.relkind = 'S' THEN has_sequence_privilege($1, c.oid, p.p) ELSE has_table_privilege($1, c.oid, p.p) END AS has
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         CROSS JOIN unnest(CASE WHEN c.relkind = 'S' THEN $3::text[] ELSE $4::text[] END) AS p(p)
        WHERE n.nspname = ANY($2) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
        ORDER BY 1, 3`,
      [u, schemas, SEQUENCE_PRIVILEGES, TABLE_PRIVILEGES],
    );
    for (const x of rels.rows) {
      const declared: readonly string[] = x.kind === 'S' ? role.sequences : role.tables;
      if (x.has && !want(declared, x.p)) out.push(`${u} can ${x.p} on ${x.t}`);
      if (!x.has && want(declared, x.p)) out.push(`${u} cannot ${x.p} on ${x.t}`);
    }
    // Default privileges: what the owner creates later must arrive with the same grants.
    const defs = await su.query<{ s: string; kind: string; p: string }>(
      `SELECT n.nspname AS s, d.defaclobjtype::text AS kind, a.privilege_type AS p
         FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace CROSS JOIN aclexplode(d.defaclacl) a
        WHERE d.defaclrole = $1::regrole AND a.grantee = $2::regrole`,
      [owner, u],
    );
    for (const s of schemas) {
      for (const [kind, what, declared] of [
        ['r', 'tables', role.tables],
        ['S', 'sequences', role.sequences],
      ] as const) {
        const have = defs.rows.filter((d) => d.s === s && d.kind === kind).map((d) => d.p);
        const missing = declared.filter((p) => !have.includes(p));
        const extra = have.filter((p) => !want(declared, p));
        if (missing.length) out.push(`${what} ${owner} creates later in ${s} will not grant ${u} ${missing.join(', ')}`);
        if (extra.length) out.push(`${what} ${owner} creates later in ${s} will grant ${u} ${extra.join(', ')}`);
      }
    }
  }
  return out;
}

/** The statements that make the database exactly as declared: safe to send again (each is idempotent). */
export function grantStatements(db: string, owner: string, schemas: readonly string[]): string[] {
  const q = quoteIdent;
  const out: string[] = [];
  for (const role of APP_ROLE_LIST) {
    const u = q(role.user);
    out.push(`GRANT CONNECT ON DATABASE ${q(db)} TO ${u}`, `REVOKE CREATE ON DATABASE ${q(db)} FROM ${u}`);
    for (const s of schemas.map(q)) {
      out.push(
        `GRANT USAGE ON SCHEMA ${s} TO ${u}`,
        `REVOKE CREATE ON SCHEMA ${s} FROM ${u}`,
        `REVOKE ALL ON ALL TABLES IN SCHEMA ${s} FROM ${u}`,
        `GRANT ${role.tables.join(', ')} ON ALL TABLES IN SCHEMA ${s} TO ${u}`,
        `REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${s} FROM ${u}`,
        `GRANT ${role.sequences.join(', ')} ON ALL SEQUENCES IN SCHEMA ${s} TO ${u}`,
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${q(owner)} IN SCHEMA ${s} REVOKE ALL ON TABLES FROM ${u}`,
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${q(owner)} IN SCHEMA ${s} GRANT ${role.tables.join(', ')} ON TABLES TO ${u}`,
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${q(owner)} IN SCHEMA ${s} REVOKE ALL ON SEQUENCES FROM ${u}`,
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${q(owner)} IN SCHEMA ${s} GRANT ${role.sequences.join(', ')} ON SEQUENCES TO ${u}`,
      );
    }
  }
  // A grant to PUBLIC reaches every role: no application table is meant for everyone, nor CREATE in a schema.
  for (const s of schemas.map(q)) out.push(`REVOKE CREATE ON SCHEMA ${s} FROM PUBLIC`, `REVOKE ALL ON ALL TABLES IN SCHEMA ${s} FROM PUBLIC`, `REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${s} FROM PUBLIC`);
  return out;
}

/** Measures, and only when something differs, applies the whole declaration in one transaction. */
export async function ensureGrants(su: Client, db: string, owner: string): Promise<{ changed: boolean; note?: string }> {
  const drift = await privilegeDrift(su, db, owner);
  if (!drift.length) return { changed: false };
  const schemas = await appSchemas(su, owner);
  await su.query('BEGIN');
  try {
    for (const s of grantStatements(db, owner, schemas)) await su.query(s);
    await su.query('COMMIT');
  } catch (e) {
    await su.query('ROLLBACK').catch(() => {});
    throw e;
  }
  return { changed: true, note: summarize(drift) };
}

/** The first few drift sentences and how many more: a task line stays one line. */
export function summarize(drift: readonly string[], max = 3): string {
  return drift.length <= max ? drift.join('; ') : `${drift.slice(0, max).join('; ')}; and ${drift.length - max} more`;
}

/** Each application database with its owner. */
export const APP_DATABASES = Object.values(DATABASES).map((d) => ({ name: d.name, owner: d.owner }));
