import { ROLES, type Role } from '../../config/schema.js';

/**
 * The proposed placement for n hosts. Three: every host runs PostgreSQL and
 * etcd, the first also HAProxy, PgBouncer and monitoring (no backup
 * repository: it must not share a database host, or it is lost with it).
 * Four or more: the first is a control host (HAProxy, PgBouncer, monitoring,
 * the backup repository), the others run PostgreSQL, and etcd on 3 of them
 * (5 from 5 database hosts): an odd quorum that survives one (two) losses.
 */
export function proposeRoles(n: number): Role[][] {
  if (n <= 3) return Array.from({ length: n }, (_, i) => (i === 0 ? ['postgres', 'etcd', 'haproxy', 'pgbouncer', 'monitoring'] : ['postgres', 'etcd']));
  const db = n - 1;
  const etcd = db >= 5 ? 5 : 3;
  return Array.from({ length: n }, (_, i) => (i === 0 ? ['haproxy', 'pgbouncer', 'monitoring', 'backup'] : i <= etcd ? ['postgres', 'etcd'] : ['postgres']));
}

/** Moves the control roles (and the postgres/etcd of the chosen host) so `control` is the control host. */
export function withControlHost(roles: Role[][], control: number): Role[][] {
  const cur = roles.findIndex((r) => !r.includes('postgres'));
  if (cur < 0 || cur === control) return roles;
  const out = roles.map((r) => [...r]);
  [out[cur], out[control]] = [out[control]!, out[cur]!];
  return out;
}

/** Names for hosts given by address: `ctl` for a host without PostgreSQL, db1… for the others (the lab's names). */
export function hostNames(hosts: readonly { name: string | undefined }[], roles: Role[][]): string[] {
  const used = new Set(hosts.map((h) => h.name).filter((n): n is string => n !== undefined));
  let db = 0;
  let ctl = 0;
  return hosts.map((h, i) => {
    if (h.name) return h.name;
    const control = !roles[i]?.includes('postgres');
    for (;;) {
      const n = control ? (ctl++ === 0 ? 'ctl' : `ctl${ctl}`) : `db${++db}`;
      if (!used.has(n)) {
        used.add(n);
        return n;
      }
    }
  });
}

export const ROLE_ORDER: readonly Role[] = ROLES;

/** Why each role is where it is, for the inventory's comments and the summary. */
export const ROLE_WHY: Record<Role, string> = {
  postgres: 'a PostgreSQL member managed by Patroni',
  etcd: 'an etcd member (Patroni keeps its leader lock there; 3 or 5 members)',
  haproxy: 'routes clients to the current primary (port 5000) and to replicas (5001)',
  pgbouncer: 'connection pooling in front of HAProxy (port 6432)',
  monitoring: 'Prometheus and the Grafana dashboards',
  backup: 'the pgBackRest repository (never on a database host: it would be lost with it)',
};
