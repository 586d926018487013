import type { HostSpec, Inventory } from '../config/schema.js';
import { abandonClient, connect, withClient, type Client, type Credentials } from '../db/client.js';
import { HostError } from '../errors.js';
import { pgbouncerAdmin } from './endpoints.js';

/**
 * PgBouncer's admin console commands a credential rotation needs, with the
 * semantics PgBouncer 1.18 really has (src/admin.c, janitor.c; docs/lab-facts.md):
 * - `PAUSE db` marks the database paused at once, then answers only when every
 *   server connection of it has been released (a transaction that stays open
 *   holds it) and closed. Meanwhile a client's next transaction waits (it does
 *   not fail) until `RESUME db` or query_wait_timeout. A PAUSE whose admin
 *   connection goes away stays in force: nothing resumes it but RESUME.
 * - `RELOAD` re-reads the ini and, when its stat changed, the auth file, before
 *   it answers. Open client and server connections are kept.
 * - RESUME of a database whose PAUSE has not answered yet works (the database is
 *   already marked paused); the PAUSE's own connection then never gets an answer.
 */
export interface PgbouncerDatabase {
  name: string;
  paused: boolean;
}

type Inv = Pick<Inventory, 'ports'>;
type Host = Pick<HostSpec, 'name' | 'address'>;

/** `"name"`, PgBouncer's quoted word (a `"` doubled). */
const word = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** The databases PgBouncer routes (its own admin database left out), and which are paused. */
export async function pgbouncerDatabases(secrets: Credentials, inv: Inv, h: Host): Promise<PgbouncerDatabase[]> {
  return withClient(secrets, pgbouncerAdmin(inv, h), async (c) => {
    const r = await c.query<{ name: string; paused: number | string }>('SHOW DATABASES');
    return r.rows.filter((d) => d.name !== 'pgbouncer').map((d) => ({ name: d.name, paused: Number(d.paused) === 1 }));
  });
}

/** RELOAD through the console: when it answers, the new auth file is in force (a SIGHUP would not say when). */
export async function reloadPgbouncer(secrets: Credentials, inv: Inv, h: Host, via?: Client): Promise<void> {
  await onConsole(secrets, inv, h, via, (c) => c.query('RELOAD'));
}

/** On an open console connection when there is one that still works (it saves a login), else a new one. */
async function onConsole<T>(secrets: Credentials, inv: Inv, h: Host, via: Client | undefined, fn: (c: Client) => Promise<T>): Promise<T> {
  if (via) {
    try {
      return await fn(via);
    } catch (e) {
      // An error PgBouncer answered with is the answer; a connection that broke is retried on a new one.
      if ((e as { severity?: string }).severity) throw e;
    }
  }
  return withClient(secrets, pgbouncerAdmin(inv, h), fn);
}

/** RESUME each database; one that is not paused is already what we want. */
export async function resumeDatabases(secrets: Credentials, inv: Inv, h: Host, dbs: readonly string[], via?: Client): Promise<void> {
  await onConsole(secrets, inv, h, via, async (c) => {
    for (const db of dbs) {
      await c.query(`RESUME ${word(db)}`).catch((e: unknown) => {
        if (!/is not paused/.test((e as Error).message)) throw e;
      });
    }
  });
}

/**
 * PAUSE every database in `dbs` at once (one admin connection each, so no
 * database waits for another's transactions), and return once all have
 * answered. Past `timeoutMs` the databases are resumed and the error names
 * what held them: an open transaction, usually.
 */
export async function pauseDatabases(secrets: Credentials, inv: Inv, h: Host, dbs: readonly string[], timeoutMs: number): Promise<{ ms: number }> {
  // Connected first, then every PAUSE at once: the databases are paused for as short a time as can be.
  const clients = await Promise.all(dbs.map(() => connect(secrets, pgbouncerAdmin(inv, h))));
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const all = Promise.all(dbs.map((db, i) => clients[i]!.query(`PAUSE ${word(db)}`)));
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
    if ((await Promise.race([all, late])) === 'late') {
      all.catch(() => {});
      const held = await activeServers(secrets, inv, h).catch(() => 'unknown');
      throw new HostError(`${h.name}: PgBouncer could not pause ${dbs.join(', ')} within ${timeoutMs / 1000} s: ${held}`, {
        hint: 'PAUSE waits for every open transaction to end. PgBouncer was resumed and no password changed; run again when that transaction is done, or give it longer with --pause-timeout.',
      });
    }
    return { ms: Date.now() - t0 };
  } catch (e) {
    // Never leave a database paused behind an error: its clients would wait until query_wait_timeout.
    await resumeDatabases(secrets, inv, h, dbs).catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
    for (const c of clients) abandonClient(c);
  }
}

/** The server connections still in use, as "user@database (n)": what a PAUSE is waiting for. */
async function activeServers(secrets: Credentials, inv: Inv, h: Host): Promise<string> {
  return withClient(secrets, pgbouncerAdmin(inv, h), async (c) => {
    const r = await c.query<{ database: string; user: string; sv_active: number | string }>('SHOW POOLS');
    const busy = r.rows.filter((p) => Number(p.sv_active) > 0).map((p) => `${p.user}@${p.database} (${p.sv_active} in a transaction)`);
    return busy.length ? `still in use: ${busy.join(', ')}` : 'no server connection in use any more';
  });
}
