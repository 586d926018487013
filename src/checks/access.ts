import { DATABASES, superuserOn } from '../components/endpoints.js';
import { APP_DATABASES, APP_ROLE_LIST, privilegeDrift, roleDrift, type AppRole } from '../components/roles.js';
import { connect, withClient, type Endpoint } from '../db/client.js';
import { DBS, pgHosts, writable } from './common.js';
import { fail, pass, type Check } from './types.js';

/**
 * Sprint 5's access criteria: the application roles hold exactly the
 * privileges declared for them (measured in the catalog, and proven by
 * logging in through PgBouncer and being refused), and every PostgreSQL node
 * authenticates with SCRAM only.
 */

const REPAIR = 'Run `dpgc sprint 5` again: it restores the declared roles and grants (safe to repeat).';

export const rolesDeclared: Check = {
  id: 's5.roles.privileges',
  title: 'app_user and readonly_user hold exactly their declared privileges (no superuser, no DDL, default privileges for new tables)',
  sprint: 5,
  kind: 'state',
  async run(ctx) {
    const host = await writable(ctx);
    const drift = (
      await Promise.all(
        APP_DATABASES.map((d) =>
          withClient(ctx.secrets, superuserOn(ctx.inventory, host, d.name), async (c) => [
            ...(d === APP_DATABASES[0] ? (await Promise.all(APP_ROLE_LIST.map((r) => roleDrift(c, r)))).flat() : []),
            ...(await privilegeDrift(c, d.name, d.owner)).map((x) => `${d.name}: ${x}`),
          ]),
        ),
      )
    ).flat();
    if (drift.length) return fail(drift.join('\n'), { value: `${drift.length} difference(s)`, threshold: 'as declared', remedy: REPAIR });
    return pass(`${APP_ROLE_LIST.length} roles × ${APP_DATABASES.length} databases as declared`, 'as declared');
  },
};

/** A statement as a role through PgBouncer: 'ok', or the SQLSTATE it was refused with. */
async function attempt(ctx: Parameters<Check['run']>[0], ep: Endpoint, sql: string): Promise<string> {
  const c = await connect(ctx.secrets, ep, { timeoutMs: 15_000 });
  try {
    await c.query('BEGIN');
    await c.query(sql);
    return 'ok';
  } catch (e) {
    return (e as { code?: string }).code ?? (e as Error).message;
  } finally {
    // Nothing a probe does is kept: it only shows what the role may do.
    await c.query('ROLLBACK').catch(() => {});
    await c.end().catch(() => {});
  }
}

const INSUFFICIENT_PRIVILEGE = '42501';
/** What each role must be allowed, and refused, on the application path. */
const PROBES: { role: AppRole; sql: string; expect: 'ok' | 'refused'; what: string }[] = [
  { role: APP_ROLE_LIST[0]!, sql: "INSERT INTO public.metadata (key, value) VALUES ('dpgc_probe', 'x') ON CONFLICT DO NOTHING", expect: 'ok', what: 'insert a row' },
  { role: APP_ROLE_LIST[0]!, sql: 'CREATE TABLE public.dpgc_probe (id int)', expect: 'refused', what: 'create a table' },
  { role: APP_ROLE_LIST[0]!, sql: 'TRUNCATE public.metadata', expect: 'refused', what: 'truncate a table' },
  { role: APP_ROLE_LIST[1]!, sql: 'SELECT count(*) FROM public.metadata', expect: 'ok', what: 'read a table' },
  { role: APP_ROLE_LIST[1]!, sql: "INSERT INTO public.metadata (key, value) VALUES ('dpgc_probe', 'x')", expect: 'refused', what: 'insert a row' },
];

export const rolesEnforced: Check = {
  id: 's5.roles.enforced',
  title: 'Through PgBouncer, app_user writes rows but cannot create or truncate a table, readonly_user reads but cannot write',
  sprint: 5,
  kind: 'read',
  async run(ctx) {
    const pgb = ctx.inventory.hosts.find((h) => h.roles.includes('pgbouncer'));
    if (!pgb) return fail('no host has the pgbouncer role: applications have no path to test', { remedy: 'Add a pgbouncer host to the inventory.' });
    const results = await Promise.all(
      DBS.flatMap((k) =>
        PROBES.map(async (p) => {
          const ep: Endpoint = { name: pgb.name, address: pgb.address, port: ctx.inventory.ports.pgbouncer, database: DATABASES[k].name, user: p.role.user, secret: p.role.secret };
          const got = await attempt(ctx, ep, p.sql).catch((e: Error) => `cannot log in: ${e.message}`);
          const ok = p.expect === 'ok' ? got === 'ok' : got === INSUFFICIENT_PRIVILEGE;
          const saw = got === 'ok' ? 'allowed' : got === INSUFFICIENT_PRIVILEGE ? 'refused (insufficient privilege)' : got;
          return ok ? undefined : `${p.role.user}@${ep.database} may ${p.expect === 'ok' ? '' : 'not '}${p.what}, but was ${saw}`;
        }),
      ),
    );
    const bad = results.filter((x): x is string => x !== undefined);
    if (bad.length) return fail(bad.join('\n'), { value: `${bad.length}/${results.length} probes wrong`, threshold: 'all as declared', remedy: REPAIR });
    return pass(`${results.length}/${results.length} probes as declared`, 'all as declared');
  },
};

/** Authentication methods a TCP rule may use: SCRAM, or refusing outright. */
const TCP_METHODS = new Set(['scram-sha-256', 'reject']);

export const scramOnly: Check = {
  id: 's5.auth.scram-only',
  title: 'Every PostgreSQL node authenticates with SCRAM only: no trust, md5 or password rule, no md5 verifier',
  sprint: 5,
  kind: 'state',
  async run(ctx) {
    const problems = (
      await Promise.all(
        pgHosts(ctx).map((h) =>
          withClient(ctx.secrets, superuserOn(ctx.inventory, h), async (c) => {
            const out: string[] = [];
            // pg_hba_file_rules reads the file as it is now: what the next reload puts in force.
            const rules = await c.query<{ line_number: number; type: string; database: string[]; user_name: string[]; auth_method: string | null; error: string | null }>(
              'SELECT line_number, type, database, user_name, auth_method, error FROM pg_hba_file_rules ORDER BY line_number',
            );
            for (const r of rules.rows) {
              const at = `${h.name} pg_hba.conf line ${r.line_number}`;
              if (r.error) out.push(`${at}: ${r.error}`);
              else if (r.type === 'local' && r.auth_method === 'peer' && r.user_name.join() === 'postgres') continue;
              else if (r.type === 'local' ? r.auth_method !== 'scram-sha-256' : !TCP_METHODS.has(r.auth_method ?? '')) {
                out.push(`${at}: ${r.type} ${r.database.join(',')} ${r.user_name.join(',')} uses ${r.auth_method}`);
              }
            }
            const enc = (await c.query<{ v: string }>("SELECT current_setting('password_encryption') AS v")).rows[0]!.v;
            if (enc !== 'scram-sha-256') out.push(`${h.name}: password_encryption is ${enc}`);
            const weak = await c.query<{ r: string }>("SELECT rolname AS r FROM pg_authid WHERE rolpassword IS NOT NULL AND rolpassword NOT LIKE 'SCRAM-SHA-256$%' ORDER BY 1");
            for (const w of weak.rows) out.push(`${h.name}: role ${w.r} has a password that is not a SCRAM verifier`);
            return out;
          }),
        ),
      )
    ).flat();
    if (problems.length) {
      return fail(problems.join('\n'), {
        value: `${problems.length} problem(s)`,
        threshold: 'SCRAM only',
        remedy: 'Run `dpgc sprint 5` again: it writes pg_hba back as dpgc renders it and sets the application roles\' passwords as SCRAM verifiers (`dpgc up` does so for every role dpgc manages). A role of your own: set its password again with password_encryption = scram-sha-256.',
      });
    }
    return pass(`${pgHosts(ctx).length} nodes: every rule SCRAM or reject (peer for postgres on the socket)`, 'SCRAM only');
  },
};

