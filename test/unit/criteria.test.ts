import { describe, expect, it } from 'vitest';
import { sprint0 } from '../../sprints/sprint-0.js';
import { sprint1 } from '../../sprints/sprint-1.js';
import { sprint2 } from '../../sprints/sprint-2.js';
import { sprint3 } from '../../sprints/sprint-3.js';
import { sprint4 } from '../../sprints/sprint-4.js';
import { sprint5 } from '../../sprints/sprint-5.js';

/**
 * Each sprint file lists its criteria by name; the ids and titles are a
 * contract (--json, JUnit, the state file), pinned here.
 */
const EXPECTED: [string, string][] = [
  ["s0.pg.reachable", "PostgreSQL 15 or newer answers on the base host"],
  ["s0.vector.extension", "The vector extension is installed in both databases"],
  ["s0.databases", "Both databases exist and their owners can connect"],
  ["s0.schema.tables", "Both schemas and every table exist in both databases"],
  ["s0.schema.hnsw", "Every HNSW index exists and is valid in both databases"],
  ["s0.vector.roundtrip", "Vector round trip: HNSW top-10 agrees with an exact scan"],
  ["s0.vector.dimension", "A vector of the wrong dimension is rejected"],
  ["s0.connections", "5 concurrent clients for 3 s without an error"],
  ["s0.postgres.settings", "PostgreSQL runs with the settings dpgc sized for its hosts"],
  ["s0.vector.ef-search", "Each application database sets the HNSW search breadth (ef_search) dpgc chose"],
  ["s0.vector.index-memory", "The HNSW indexes fit in the memory PostgreSQL has for them"],
  ["s1.pgbouncer.pools", "PgBouncer listens and answers SHOW POOLS, both databases routed"],
  ["s1.pgbouncer.scram", "Clients authenticate to PgBouncer with SCRAM; a wrong password is refused"],
  ["s1.prometheus.targets", "Prometheus is healthy and every expected target is up"],
  ["s1.prometheus.interval", "Prometheus scrapes every 15 s"],
  ["s1.prometheus.rules", "Alert rules are loaded and evaluate without error"],
  ["s1.alertmanager.up", "Alertmanager answers on every monitoring host and Prometheus sends its alerts there"],
  ["s1.alertmanager.routes", "Every alert rule is routed to a receiver that notifies someone"],
  ["s1.grafana.dashboards", "Dashboards: every panel query returns data (or Grafana serves them)"],
  ["s1.pool.test", "40 concurrent agents through PgBouncer: no timeouts, no pool exhaustion, no errors"],
  ["s2.etcd.healthy", "Every etcd endpoint is healthy"],
  ["s2.etcd.members", "The etcd member list holds exactly the inventory’s etcd hosts"],
  ["s2.etcd.replicates", "A write on one etcd member is read back from the others"],
  ["s2.patroni.config", "Patroni’s configuration is installed, current, private and valid on every postgres host"],
  ["s2.timings.rto", "Worst-case failover allowed by the timings fits the RTO budget"],
  ["s2.haproxy.config", "HAProxy’s configuration is current and accepted by haproxy -c"],
  ["s2.haproxy.running", "HAProxy runs, listens on its ports, guards its stats page and serves /metrics"],
  ["s2.processes", "Every etcd, haproxy process is running"],
  ["s2.prometheus.targets", "Prometheus scrapes every etcd member and HAProxy"],
  ["s3.etcd.healthy", "Every etcd endpoint is healthy"],
  ["s3.patroni.registered", "Every postgres host is registered in etcd under the cluster scope"],
  ["s3.patroni.leader-key", "Patroni cannot overwrite a newer leader’s key when a stalled leader resumes (patroni/patroni#2689)"],
  ["s3.patroni.topology", "One leader, every replica streaming, synchronous standby assigned"],
  ["s3.timeline.history", "Every member’s timeline history agrees with the leader’s: no abandoned timeline, no diverged member"],
  ["s3.patroni.watchdog", "A watchdog resets a primary that hangs (Patroni watchdog)"],
  ["s3.replication.lag", "Replication lag measured with markers: p99 under 1000 ms on every replica"],
  ["s3.routing.primary", "HAProxy :5000 lands on the leader only"],
  ["s3.routing.replicas", "HAProxy :5001 lands only on replicas"],
  ["s3.pgbouncer.primary", "PgBouncer reaches the leader through HAProxy (and its read-only aliases a replica)"],
  ["s3.vector.everywhere", "The vector extension is present in both databases on every node"],
  ["s3.data.identical", "The sprint-0 data and indexes are identical on every node (row counts and checksums)"],
  ["s3.system.identifier", "Every node carries the system identifier Patroni adopted from the sprint-0 instance"],
  ["s3.timings.rto", "Worst-case failover allowed by the timings fits the RTO budget"],
  ["s3.postgres.settings", "Every member runs with the settings dpgc sized for the hosts"],
  ["s3.processes", "Every etcd, haproxy, patroni process is running"],
  ["s3.prometheus.targets", "Prometheus scrapes Patroni on every member"],
  ["s4.pgbackrest.check", "`pgbackrest check` passes on every database host and on the repository host"],
  ["s4.backup.recent", "A full backup exists, and the newest backup is as recent as the schedule allows"],
  ["s4.archive.working", "The current leader archives WAL to the repository (a forced WAL switch is archived within 60 s)"],
  ["s4.schedule.fired", "A scheduled backup ran, succeeded, and is as recent as the schedule allows"],
  ["s4.repo.encrypted", "The repository is encrypted (aes-256-cbc) and readable by its own user only"],
  ["s4.backup.alerts", "Backup alerts are loaded, evaluate without error, pass their promtool tests, and every series they read is scraped"],
  ["s4.grafana.backups", "The backups dashboard: every panel query returns data (or Grafana serves it)"],
  ["s4.pitr.drill", "PITR drill: a restore to time T in a scratch instance holds every marker written before T, none after, and the application data as it was at T"],
  ["s5.roles.privileges", "app_user and readonly_user hold exactly their declared privileges (no superuser, no DDL, default privileges for new tables)"],
  ["s5.roles.enforced", "Through PgBouncer, app_user writes rows but cannot create or truncate a table, readonly_user reads but cannot write"],
  ["s5.auth.scram-only", "Every PostgreSQL node authenticates with SCRAM only: no trust, md5 or password rule, no md5 verifier"],
  ["s5.tls.postgres", "Every member serves TLS 1.2+ with a certificate from the cluster’s CA, verified by name and valid ≥ 30 days"],
  ["s5.tls.sessions", "Every TCP session on every member is encrypted: PgBouncer, the exporters, replication, dpgc"],
  ["s5.tls.required", "Plaintext is refused: a login without TLS to any member (replication too) or to PgBouncer fails; every replica streams verify-full"],
  ["s5.tls.patroni", "Patroni’s REST API serves TLS only on every member (plaintext gets no answer), verified against the cluster CA; HAProxy checks each member over TLS and routes to the leader"],
  ["s5.tls.etcd", "etcd serves clients and peers over TLS only: plaintext, no certificate and a certificate from another CA are refused on every member; dpgc’s certificate is accepted"],
  ["s5.audit.logged", "pgaudit is loaded on every member, and a DDL statement run now appears as an AUDIT line in the leader’s log"],
  ["s5.tls.metrics", "Every metrics endpoint (exporters, Prometheus, Alertmanager) refuses plaintext HTTP and answers 401 without credentials; Prometheus scrapes each over TLS"],
  ["s5.alerts.security", "Security alerts (refused-login bursts, superuser logins over the network, certificates near their end, pg_hba or settings changed outside dpgc) are loaded, evaluate, pass their promtool tests, every series they read is scraped, and mtail on every PostgreSQL host"],
  ["s5.firewall.enforced", "Every host’s firewall is as rendered, and a port it does not open is refused from the control machine"],
];

describe('criteria in the sprint story', () => {
  const all = [sprint0, sprint1, sprint2, sprint3, sprint4, sprint5].flatMap((s) => s.criteria.map((c) => ({ sprint: s.id, c })));

  it('keep every id and title, in order', () => {
    expect(all.map(({ c }) => [c.id, c.title])).toEqual(EXPECTED);
  });

  it('each criterion belongs to the sprint that lists it, and ids are unique', () => {
    for (const { sprint, c } of all) {
      expect(c.sprint).toBe(sprint);
      expect(c.id.startsWith(`s${sprint}.`)).toBe(true);
    }
    expect(new Set(all.map(({ c }) => c.id)).size).toBe(all.length);
  });
});
