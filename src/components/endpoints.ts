import type { HostSpec, Inventory } from '../config/schema.js';
import type { SecretName } from '../config/secrets.js';
import type { Endpoint } from '../db/client.js';

/**
 * Who connects where. Role names and databases are fixed here, once, so
 * components, checks, drills and templates cannot disagree.
 */
export const DATABASES = {
  project: { name: 'distributed_postgres_cluster', owner: 'dpg_cluster', secret: 'dpg_cluster' },
  shared: { name: 'claude_flow_shared', owner: 'shared_user', secret: 'shared_user' },
} as const satisfies Record<string, { name: string; owner: string; secret: SecretName }>;
export type DatabaseKey = keyof typeof DATABASES;

export const ROLES_DB = {
  superuser: { user: 'postgres', secret: 'postgres_superuser' },
  replication: { user: 'replicator', secret: 'replication' },
  rewind: { user: 'rewind_user', secret: 'rewind' },
  monitoring: { user: 'dpgc_monitor', secret: 'monitoring' },
  pgbouncerAdmin: { user: 'pgbouncer_admin', secret: 'pgbouncer_admin' },
} as const satisfies Record<string, { user: string; secret: SecretName }>;

/** The superuser on one PostgreSQL node, over TCP with SCRAM. */
export function superuserOn(inv: Pick<Inventory, 'ports'>, host: Pick<HostSpec, 'name' | 'address'>, database = 'postgres'): Endpoint {
  return { name: host.name, address: host.address, port: inv.ports.postgres, database, user: ROLES_DB.superuser.user, secret: ROLES_DB.superuser.secret };
}

/** An application owner on one PostgreSQL node directly. */
export function appOn(inv: Pick<Inventory, 'ports'>, host: Pick<HostSpec, 'name' | 'address'>, db: DatabaseKey): Endpoint {
  const d = DATABASES[db];
  return { name: host.name, address: host.address, port: inv.ports.postgres, database: d.name, user: d.owner, secret: d.secret };
}

/** An application owner through PgBouncer: the path applications use. */
export function appViaPgbouncer(inv: Pick<Inventory, 'ports'>, host: Pick<HostSpec, 'name' | 'address'>, db: DatabaseKey): Endpoint {
  const d = DATABASES[db];
  return { name: host.name, address: host.address, port: inv.ports.pgbouncer, database: d.name, user: d.owner, secret: d.secret };
}

/** The first host with the postgres role: where sprint 0's base instance lives. */
export function firstPostgres(inv: Pick<Inventory, 'hosts' | 'file'>): HostSpec {
  const h = inv.hosts.find((x) => x.roles.includes('postgres'));
  if (!h) throw new Error(`${inv.file}: no host has the postgres role`);
  return h;
}

/** PgBouncer's admin console on a host, as the stats user. */
export function pgbouncerAdmin(inv: Pick<Inventory, 'ports'>, host: Pick<HostSpec, 'name' | 'address'>): Endpoint {
  const a = ROLES_DB.pgbouncerAdmin;
  return { name: host.name, address: host.address, port: inv.ports.pgbouncer, database: 'pgbouncer', user: a.user, secret: a.secret };
}
