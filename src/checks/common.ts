import { writableHost } from '../components/databases.js';
import { DATABASES, superuserOn, type DatabaseKey } from '../components/endpoints.js';
import { vectorNames } from '../components/vector.js';
import type { RunContext } from '../context.js';
import { withClient, type Client, type Endpoint } from '../db/client.js';

/**
 * Helpers the per-system checks share: which hosts, which databases, and
 * where a connection through HAProxy lands.
 */

export const DBS = Object.keys(DATABASES) as DatabaseKey[];

export type Ctx = Pick<RunContext, 'inventory' | 'secrets'>;

/** The base host, or whichever postgres host took over writes after sprint 3. */
export function writable(ctx: Ctx) {
  return writableHost(ctx.inventory, ctx.secrets);
}

/** The vector type, operator class and functions of the engine the inventory names, as this database has them. */
export async function vectorNamesIn(ctx: Ctx, c: Client) {
  return vectorNames(ctx.inventory.postgres.vector, (sql, params) => c.query(sql, params));
}

/** Every database, connected as the superuser; results named by database. */
export async function perDatabase<T>(ctx: Ctx, fn: (c: Client, db: string) => Promise<T>): Promise<{ db: string; r: T }[]> {
  // Which host takes writes is asked once per check, not once per database (each asking is a login per
  // host); then both databases at once, each a login of its own. Results in DATABASES order.
  const host = await writable(ctx);
  return Promise.all(
    DBS.map(async (key) => {
      const db = DATABASES[key].name;
      return { db, r: await withClient(ctx.secrets, superuserOn(ctx.inventory, host, db), (c) => fn(c, db)) };
    }),
  );
}

export const pgHosts = (ctx: Ctx) => ctx.inventory.hosts.filter((h) => h.roles.includes('postgres'));

export const haproxyHost = (ctx: Ctx) => ctx.inventory.hosts.find((h) => h.roles.includes('haproxy'))!;

export const via = (ctx: Ctx, port: number, database = 'postgres'): Endpoint => ({ ...superuserOn(ctx.inventory, haproxyHost(ctx), database), port, name: `${haproxyHost(ctx).name}:${port}` });

export interface Landing {
  recovery: boolean;
  addr: string;
}

export async function landing(ctx: Ctx, ep: Endpoint): Promise<Landing> {
  return withClient(ctx.secrets, ep, async (c) => {
    const r = (await c.query<{ r: boolean; a: string }>('SELECT pg_is_in_recovery() AS r, host(inet_server_addr()) AS a')).rows[0]!;
    return { recovery: r.r, addr: r.a };
  });
}

export const nameOf = (ctx: Ctx, addr: string) => pgHosts(ctx).find((h) => h.address === addr)?.name ?? addr;
