import { PGAUDIT, preloadList } from '../components/audit.js';
import { superuserOn } from '../components/endpoints.js';
import { withClient } from '../db/client.js';
import { sleep } from '../wait.js';
import { pgHosts, writable } from './common.js';
import { fail, pass, type Check } from './types.js';

const REPAIR = 'Run `dpgc sprint 5` again: it puts audit logging back into Patroni’s configuration and restarts the members that need it, one at a time.';

/**
 * Audit logging, proven: pgaudit loaded on every member with its DDL class
 * on, connections logged, and a DDL statement run now (in a transaction
 * rolled back) found as an AUDIT line in the leader's current log file, read
 * through PostgreSQL itself (pg_read_file), so no host access is needed.
 */
export const auditLogged: Check = {
  id: 's5.audit.logged',
  title: 'pgaudit is loaded on every member, and a DDL statement run now appears as an AUDIT line in the leader’s log',
  sprint: 5,
  kind: 'read',
  async run(ctx) {
    const problems: string[] = [];
    await Promise.all(
      pgHosts(ctx).map((h) =>
        withClient(ctx.secrets, superuserOn(ctx.inventory, h), async (c) => {
          const r = (
            await c.query<{ pre: string; classes: string | null; conn: string; coll: string }>(
              "SELECT current_setting('shared_preload_libraries') AS pre, current_setting('pgaudit.log', true) AS classes, current_setting('log_connections') AS conn, current_setting('logging_collector') AS coll",
            )
          ).rows[0]!;
          if (!preloadList(r.pre).includes(PGAUDIT)) problems.push(`${h.name}: pgaudit is not loaded (shared_preload_libraries = '${r.pre}')`);
          else if (!/\b(ddl|all)\b/i.test(r.classes ?? '') || /-ddl\b/i.test(r.classes ?? '')) problems.push(`${h.name}: pgaudit.log = '${r.classes ?? ''}' leaves out DDL`);
          if (r.conn !== 'on') problems.push(`${h.name}: log_connections is ${r.conn}`);
          if (r.coll !== 'on') problems.push(`${h.name}: logging_collector is ${r.coll} (the log is not in PostgreSQL's own files)`);
        }),
      ),
    );
    if (problems.length) return fail(problems.join('\n'), { value: `${problems.length} problem(s)`, threshold: 'pgaudit on every member', remedy: REPAIR });

    const leader = await writable(ctx);
    const marker = `dpgc_audit_probe_${Date.now()}`;
    return withClient(ctx.secrets, superuserOn(ctx.inventory, leader), async (c) => {
      const where = async () => (await c.query<{ f: string | null; size: string | null }>('SELECT f, (pg_stat_file(f, true)).size::text AS size FROM pg_current_logfile() AS f')).rows[0]!;
      const start = await where();
      if (!start.f) return fail(`${leader.name}: PostgreSQL writes no log file of its own (pg_current_logfile() is empty)`, { remedy: REPAIR });
      const t0 = Date.now();
      await c.query('BEGIN');
      await c.query(`CREATE TABLE public.${marker} (id int)`);
      await c.query('ROLLBACK');
      // The logging collector writes asynchronously: a few hundred milliseconds at most on a healthy host.
      for (let waited = 0; waited <= 5000; waited += 200) {
        const now = await where();
        const from = now.f === start.f ? Number(start.size ?? 0) : 0;
        const text = (await c.query<{ t: string }>('SELECT pg_read_file($1, $2, 1048576) AS t', [now.f, from])).rows[0]!.t;
        const line = text.split('\n').find((l) => l.includes('AUDIT: SESSION') && l.includes(marker));
        if (line) return pass(`AUDIT line in ${now.f} on ${leader.name} after ${((Date.now() - t0) / 1000).toFixed(1)} s`, 'DDL audited');
        await sleep(200);
      }
      return fail(`${leader.name}: no AUDIT line for CREATE TABLE public.${marker} in ${start.f} within 5 s`, { threshold: 'DDL audited', remedy: REPAIR });
    });
  },
};
