import type { HostSpec, Inventory } from './schema.js';

/**
 * Where everything lives on a host: the standard Debian paths, under the
 * host's `root` (empty on real hosts, a per-host directory in the lab). One
 * function, so components, checks and drills can never disagree on a path.
 */
export function hostPaths(inv: Pick<Inventory, 'postgres' | 'cluster'>, host: Pick<HostSpec, 'root' | 'name'>) {
  const r = host.root;
  const v = inv.postgres.version;
  return {
    root: r || '/',
    pgBin: `/usr/lib/postgresql/${v}/bin`,
    pgData: `${r}/var/lib/postgresql/${v}/main`,
    pgConfDir: `${r}/etc/postgresql/${v}/main`,
    pgSocketDir: `${r}/var/run/postgresql`,
    pgLog: `${r}/var/log/postgresql/postgresql-${v}-main.log`,
    pgHome: `${r}/var/lib/postgresql`,
    pgpass: `${r}/var/lib/postgresql/.pgpass-dpgc`,
    etcdData: `${r}/var/lib/etcd/${host.name}`,
    etcdConf: `${r}/etc/default/etcd`,
    patroniConf: `${r}/etc/patroni/${inv.cluster}.yml`,
    haproxyCfg: `${r}/etc/haproxy/haproxy.cfg`,
    haproxySocket: `${r}/run/haproxy/admin.sock`,
    pgbouncerDir: `${r}/etc/pgbouncer`,
    prometheusDir: `${r}/etc/prometheus`,
    prometheusData: `${r}/var/lib/prometheus/metrics2`,
    grafanaProvisioning: `${r}/etc/grafana/provisioning`,
    grafanaDashboards: `${r}/var/lib/grafana/dashboards`,
    pgbackrestConf: `${r}/etc/pgbackrest/pgbackrest.conf`,
    tlsDir: `${r}/etc/dpgc/tls`,
    /** Pid files of supervised services. */
    runDir: `${r}/run/dpgc`,
    logDir: `${r}/var/log/dpgc`,
    /** Environment files for services (secrets), mode 0600. */
    envDir: `${r}/etc/dpgc/env`,
  };
}
export type HostPaths = ReturnType<typeof hostPaths>;
