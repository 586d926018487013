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
    alertmanagerData: `${r}/var/lib/prometheus/alertmanager`,
    /** Credential files Alertmanager reads (`*_file` settings): readable by its user only. */
    alertmanagerSecrets: `${r}/etc/dpgc/alertmanager`,
    /** The metrics password where Prometheus and amtool read it (password_file), with TLS on: readable by their user only. */
    metricsSecrets: `${r}/etc/dpgc/metrics`,
    /** The same password for Grafana's datasource (`$__file{}`), readable by Grafana's group. */
    grafanaSecrets: `${r}/etc/dpgc/grafana`,
    /** The lab's webhook receiver writes what it receives here. */
    labAlerts: `${r}/var/lib/dpgc/lab-alerts`,
    grafanaProvisioning: `${r}/etc/grafana/provisioning`,
    grafanaDashboards: `${r}/var/lib/grafana/dashboards`,
    pgbackrestConf: `${r}/etc/pgbackrest/pgbackrest.conf`,
    pgbackrestLog: `${r}/var/log/pgbackrest`,
    /** pgBackRest's default is /tmp/pgbackrest; under the root so lab hosts on one machine do not share locks. */
    pgbackrestLock: `${r}/tmp/pgbackrest`,
    /** Asynchronous archiving's queue (archive-async). */
    pgbackrestSpool: `${r}/var/spool/pgbackrest`,
    /** Results of scheduled backups, and scratch restores, on the repository host. */
    backupState: `${r}/var/lib/dpgc/backup`,
    scratchDir: `${r}/var/lib/dpgc/pitr-scratch`,
    /** Scripts dpgc installs (the scheduled backup). */
    libexecDir: `${r}/usr/local/lib/dpgc`,
    systemdDir: `${r}/etc/systemd/system`,
    /** node_exporter's textfile collector reads *.prom here (Debian's own default directory). */
    textfileDir: `${r}/var/lib/prometheus/node-exporter`,
    /** mtail's programs (sprint 5's security metrics, components/security-metrics.ts). */
    mtailDir: `${r}/etc/mtail`,
    /** What the backup metrics script reads: pgBackRest's config, the stanza, the alert thresholds. */
    backupMetricsConf: `${r}/etc/dpgc/backup-metrics.json`,
    tlsDir: `${r}/etc/dpgc/tls`,
    /** The host's firewall (one nftables table), loaded at boot by dpgc-firewall.service on systemd hosts. */
    firewallRules: `${r}/etc/dpgc/firewall.nft`,
    /** Pid files of supervised services. */
    runDir: `${r}/run/dpgc`,
    logDir: `${r}/var/log/dpgc`,
    /** Environment files for services (secrets), mode 0600. */
    envDir: `${r}/etc/dpgc/env`,
  };
}
export type HostPaths = ReturnType<typeof hostPaths>;
