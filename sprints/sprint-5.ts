import { rolesDeclared, rolesEnforced, scramOnly } from '../src/checks/access.js';
import { auditLogged } from '../src/checks/audit.js';
import { firewallEnforced } from '../src/checks/firewall.js';
import { securityAlerts } from '../src/checks/security.js';
import { ensureCertMetrics, ensureMtail } from '../src/components/security-metrics.js';
import { etcdTls, patroniRestTls, pgTls, plaintextRefused, tlsSessions } from '../src/checks/tls.js';
import { CertificateAuthority } from '../src/components/ca.js';
import { describePlain, ensurePgCert, plaintextStreams, reloadIfServing, restreamOverTls, sessionsByTls, waitForTls, waitForVerifiedStreams } from '../src/components/postgres-tls.js';
import { ensureHostExporters, ensurePostgresExporter } from '../src/components/exporters.js';
import { ensureFirewall, firewallTable } from '../src/components/firewall.js';
import { ensureMonitoring } from '../src/components/monitoring.js';
import { ensurePrometheus, monitoredSprint } from '../src/components/prometheus.js';
import { ensureEtcdCerts, observeEtcdTls, switchEtcdToTls } from '../src/components/etcd-tls.js';
import { metricsTls } from '../src/checks/metrics.js';
import { currentLeader } from '../src/components/cluster.js';
import { becomes } from '../src/wait.js';
import { pgauditNotLoaded, pgauditPackage } from '../src/components/audit.js';
import { ensurePackages } from '../src/components/ha-packages.js';
import { convergeDynamicConfig, observeDynamicConfig } from '../src/components/patroni-cluster.js';
import { rollingRestart, staleMembers } from '../src/components/patroni-upgrade.js';
import { writableHost } from '../src/components/databases.js';
import { ROLES_DB, superuserOn } from '../src/components/endpoints.js';
import { ensureMonitoringRole } from '../src/components/databases.js';
import { dropAllAlterSystem } from '../src/components/sizing.js';
import { pgbouncerTargets } from '../src/components/haproxy.js';
import { ensureHbaAsRendered, ensurePatroniConfig, patroniCredentials } from '../src/components/patroni.js';
import { ensurePgbouncer } from '../src/components/pgbouncer.js';
import { ensureRestCert, memberTls, restServes, switchRestToTls } from '../src/components/patroni-tls.js';
import { APP_DATABASES, APP_ROLE_LIST, ensureAppRole, ensureGrants } from '../src/components/roles.js';
import type { Client } from '../src/db/client.js';
import { notYetReachable, readsLive, sqlStep } from '../src/plan/sql.js';
import { onHost, parallel, perHost, sequence, twoWay, type Outcome } from '../src/plan/step.js';
import type { Sprint } from './types.js';

/**
 * Sprint 5, first part: access control and audit. Every member serves TLS
 * with a certificate from the cluster's CA. Applications get login roles of
 * their own (`app_user` writes rows, `readonly_user` reads; neither can
 * change the schema, and tables an owner creates later are covered), routed
 * by PgBouncer; every node authenticates with SCRAM only, and a pg_hba rule
 * added by hand is taken out again; pgaudit logs schema and role changes and
 * PostgreSQL logs connections, into its own files on every member.
 *
 * PgBouncer's server side, postgres_exporter and replication then reach
 * PostgreSQL over TLS (verify-full for the first two), and no TCP session on
 * any member stays in plaintext. Only then is TLS required: pg_hba takes
 * hostssl only and rejects plaintext TCP by name, replication and pg_rewind
 * verify-full, and PgBouncer requires TLS of its clients. Every metrics
 * endpoint (the exporters, Prometheus, Alertmanager) serves HTTPS with basic
 * auth, and Prometheus scrapes them over TLS.
 *
 * Patroni's REST API serves https only, with a certificate per member from
 * the CA, switched one member at a time with HAProxy's check of that member.
 *
 * Each host's firewall (nftables) lets in only the ports its roles need, from
 * the addresses that need them.
 *
 * mtail on every member counts refused logins and superuser logins over TCP
 * from PostgreSQL's log, and Prometheus alerts on bursts of the first and any
 * of the second, on a certificate with fewer than 30 days left (each
 * host's node_exporter reads when each ends), and on a member whose pg_hba
 * is not what dpgc rendered or that has an ALTER SYSTEM value (postgres_exporter
 * reads both; no member keeps one after this sprint): templates/prometheus/rules/security.yml.
 *
 * Not here yet (issue 14): TLS on etcd. Passwords are rotated by `dpgc rotate` (src/components/rotation.ts),
 * not by a sprint.
 */
export const sprint5: Sprint = {
  id: 5,
  title: 'Access control and audit: TLS required by PostgreSQL and PgBouncer, application roles with least privilege, SCRAM only on every node, pgaudit',
  roles: ['postgres', 'pgbouncer'],

  tasks(ctx) {
    const inv = ctx.inventory;
    const node = (name: string) => ctx.pool.node(name);
    // Roles and grants live in the catalog, which replicates: sent once, to whichever node takes writes.
    const sql = (title: string, db: string, run: (c: Client) => Promise<Outcome>) =>
      sqlStep(title, undefined, { secrets: ctx.secrets, endpoint: async () => superuserOn(inv, await writableHost(inv, ctx.secrets), db), run });

    // pgaudit where PostgreSQL runs: the members, and the backup host, whose scratch restores start from a member's configuration.
    let patched = false;
    const notLoaded = (member: string) => pgauditNotLoaded(inv, ctx.secrets, member);
    const auditHosts = [...ctx.pool.specs('postgres'), ...ctx.pool.specs('backup').filter((h) => !h.roles.includes('postgres'))];

    const theCa = CertificateAuthority.lazy(ctx);
    // The PgBouncer and exporter steps come after TLS is on (the steps before them turn it on and wait for
    // it), so they are told to use TLS rather than asking the cluster: a plan made before then shows them too.
    const clusterCa = async (): Promise<string> => (await theCa()).certPem;
    const converge = (title: string, o: { tls: true } | { audit: true }) =>
      twoWay('rest', title, undefined, {
        apply: async () => {
          const r = await convergeDynamicConfig(inv, ctx.secrets, o);
          patched ||= r.changed;
          return r;
        },
        observe: () => notYetReachable(() => observeDynamicConfig(inv, o)),
      });

    return [
      perHost(inv)(
        'Packages: pgaudit, mtail',
        auditHosts.map((h) => {
          // mtail reads the members' logs for the security alerts; the backup host runs no PostgreSQL of its own.
          const pkgs = [pgauditPackage(inv.postgres.version), ...(h.roles.includes('postgres') ? ['mtail'] : [])];
          return onHost('package', `Install ${pkgs.join(' and ')} on ${h.name}`, h.name, async () => ensurePackages(await node(h.name), pkgs));
        }),
      ),
      parallel(
        'PostgreSQL server certificates',
        ctx.pool.specs('postgres').map((h) =>
          onHost('file', `Issue ${h.name}'s PostgreSQL server certificate from the cluster CA (key made on ${h.name}, owned by postgres)`, h.name, async () => {
            const n = await node(h.name);
            const r = await ensurePgCert(await theCa(), inv, n);
            // A renewed certificate on a member already serving TLS is read on a reload only.
            if (r.changed && !ctx.options.dryRun && (await reloadIfServing(inv, n))) return { ...r, note: `${r.note ?? 'issued'}; PostgreSQL reloaded` };
            return r;
          }),
        ),
      ),
      converge("TLS for PostgreSQL: ssl on, TLS 1.2 at least, each member's own certificate (Patroni's dynamic configuration: a reload, no restart)", { tls: true }),
      converge("Audit logging: pgaudit preloaded (DDL and ROLE classes), connections logged, PostgreSQL's own log files (Patroni's dynamic configuration)", { audit: true }),
      twoWay('service', 'Restart members that do not load pgaudit yet, one at a time (replicas, a switchover, the old leader)', undefined, {
        apply: async () => {
          // Patroni applies a PATCH on its next loop; give it that loop before reading pending_restart.
          // A member is restarted when it does not load pgaudit (asked of the server itself), so one
          // slow to apply the PATCH is not missed.
          if (patched) await new Promise((r) => setTimeout(r, (inv.timings.loop_wait + 1) * 1000));
          return rollingRestart(inv, ctx.secrets, ctx.pool, await staleMembers(inv, ctx.pool, notLoaded));
        },
        observe: () =>
          notYetReachable(async () => {
            const p = await staleMembers(inv, ctx.pool, notLoaded);
            return p.why.length ? { changed: true, would: p.why } : { changed: false };
          }),
      }),
      twoWay('wait', 'Every member serves TLS', undefined, {
        apply: () => waitForTls(inv, ctx.secrets, ctx.pool.specs('postgres')),
        observe: async () => ({ changed: false, note: 'waits in a real run' }),
      }),
      sql(`Let the monitoring role ${ROLES_DB.monitoring.user} read pg_hba_file_rules and pg_file_settings (the alerts on configuration changed outside dpgc)`, 'postgres', (c) => ensureMonitoringRole(c, ctx.secrets)),
      sequence('Application roles', [
        ...APP_ROLE_LIST.map((r) => sql(`Create the login role ${r.user} (no superuser, no DDL, member of nothing)`, 'postgres', (c) => ensureAppRole(c, r, ctx.secrets))),
        ...APP_DATABASES.map((d) =>
          sql(`Grant ${APP_ROLE_LIST.map((r) => r.user).join(' and ')} their privileges in ${d.name}, now and for tables ${d.owner} creates later`, d.name, (c) => ensureGrants(c, d.name, d.owner)),
        ),
      ]),
      parallel(
        'PgBouncer routes the application roles, and reaches PostgreSQL over TLS',
        ctx.pool.specs('pgbouncer').map((h) =>
          readsLive('file', `Add ${APP_ROLE_LIST.map((r) => r.user).join(' and ')} to PgBouncer's auth file on ${h.name}, connect to PostgreSQL with TLS (verify-full), and reload it`, h.name, async () =>
            ensurePgbouncer(ctx, await node(h.name), await pgbouncerTargets(ctx), { tlsCa: await clusterCa() }),
          ),
        ),
      ),
      // After audit logging (the log files and their line prefix) and before Prometheus, which scrapes it from then on.
      parallel(
        "Security metrics: mtail counts refused logins and superuser logins over TCP from PostgreSQL's log",
        ctx.pool.specs('postgres').map((h) =>
          onHost('service', `Run mtail on ${h.name} over PostgreSQL's log files (as postgres, on ${h.address}:${inv.ports.mtail}: mtail serves no TLS)`, h.name, async () => ensureMtail(inv, await node(h.name))),
        ),
      ),
      parallel(
        'postgres_exporter reaches PostgreSQL over TLS',
        ctx.pool.specs('postgres').map((h) =>
          readsLive('service', `Connect postgres_exporter on ${h.name} with TLS (verify-full against the cluster CA) and restart it`, h.name, async () => ensurePostgresExporter(ctx, await node(h.name), { tlsCa: await clusterCa() })),
        ),
      ),
      // Right after postgres_exporter, which serves TLS from then on: Prometheus follows within seconds.
      parallel(
        'Metrics endpoints serve TLS with basic auth',
        ctx.pool.specs().map((h) =>
          readsLive('service', `Serve the exporters on ${h.name} over TLS (a certificate from the cluster CA, key made on ${h.name}) with basic auth, and restart them`, h.name, async () =>
            ensureHostExporters(ctx, await node(h.name), { tlsCa: await clusterCa(), ca: theCa }),
          ),
        ),
      ),
      ...ctx.pool.specs('monitoring').map((h) =>
        readsLive('service', `Serve Prometheus and Alertmanager on ${h.name} over TLS with basic auth; Prometheus scrapes the exporters and sends alerts over TLS; Grafana's datasource follows`, h.name, async () =>
          ensureMonitoring(ctx, await node(h.name), 5, { tlsCa: await clusterCa(), ca: theCa }),
        ),
      ),
      twoWay('service', 'Replication streams that began in plaintext start again over TLS, one replica at a time', undefined, {
        apply: async () => restreamOverTls(inv, ctx.secrets, await currentLeader(inv)),
        observe: () =>
          notYetReachable(async () => {
            const streams = await plaintextStreams(inv, ctx.secrets, await currentLeader(inv));
            return streams.length ? { changed: true, would: streams.map((x) => describePlain(x.session)) } : { changed: false };
          }),
      }),
      twoWay('wait', 'Every TCP session on every member is TLS', undefined, {
        apply: async () => {
          const members = ctx.pool.specs('postgres');
          const t0 = Date.now();
          let last = '';
          // PgBouncer closes a server connection when it is next released; postgres_exporter reconnects on its next scrape.
          // A client dpgc does not configure may stay in plaintext: s5.tls.sessions names it, this step only waits.
          const allTls = await becomes(
            async () => {
              const s = await sessionsByTls(inv, ctx.secrets, members);
              last = s.plain.map(describePlain).join('; ');
              return !s.plain.length;
            },
            { timeoutMs: 30_000, everyMs: 500 },
            'every session on the members using TLS',
          );
          return { changed: false, note: allTls ? `all TLS (${((Date.now() - t0) / 1000).toFixed(1)} s)` : `still plaintext after 30 s: ${last}` };
        },
        observe: async () => ({ changed: false, note: 'waits in a real run' }),
      }),
      // Every client dpgc configures uses TLS by now (the wait above): only then is plaintext refused.
      parallel(
        'TLS required on every member',
        ctx.pool.specs('postgres').map((h) =>
          onHost('file', `Require TLS in Patroni's configuration on ${h.name}: pg_hba hostssl only (plaintext TCP rejected), streaming and pg_rewind verify-full against the cluster CA; Patroni reloaded`, h.name, async () =>
            // The REST API as the member serves it now: the switch below turns it on one member at a time.
            ensurePatroniConfig(inv, await node(h.name), await patroniCredentials(ctx.secrets), await memberTls(inv, h, { requireTls: true })),
          ),
        ),
      ),
      parallel(
        'SCRAM only on every node',
        ctx.pool.specs('postgres').map((h) =>
          onHost('file', `Keep pg_hba on ${h.name} exactly as rendered (SCRAM over TLS; peer for postgres on the socket) and reload it if a rule was added by hand`, h.name, async () =>
            ensureHbaAsRendered(inv, await node(h.name), { requireTls: true }),
          ),
        ),
      ),
      parallel(
        'No ALTER SYSTEM values on any member',
        ctx.pool.specs('postgres').map((h) =>
          onHost('file', `Drop every ALTER SYSTEM value on ${h.name} (postgresql.auto.conf: dpgc's settings come from the inventory) and reload if one was set`, h.name, async () =>
            dropAllAlterSystem(inv, ctx.secrets, await node(h.name)),
          ),
        ),
      ),
      twoWay('wait', 'Every replica streams with verify-full', undefined, {
        apply: async () => waitForVerifiedStreams(inv, ctx.secrets, ctx.pool.specs('postgres')),
        observe: async () => ({ changed: false, note: 'waits in a real run' }),
      }),
      parallel(
        'Patroni REST API certificates',
        ctx.pool.specs('postgres').map((h) =>
          onHost('file', `Issue ${h.name}'s Patroni REST API certificate from the cluster CA (its name and address; key made on ${h.name}, owned by postgres)`, h.name, async () =>
            ensureRestCert(await theCa(), inv, await node(h.name)),
          ),
        ),
      ),
      twoWay('service', "Patroni's REST API serves TLS only, one member at a time (replicas, then the leader): its file and a reload, then HAProxy checks it over TLS (haproxy -c, a reload, the primary port on the leader)", undefined, {
        apply: () => switchRestToTls(ctx),
        observe: () =>
          notYetReachable(async () => {
            const plain = (await Promise.all(ctx.pool.specs('postgres').map(async (h) => ((await restServes(inv, h)) === 'tls' ? undefined : h.name)))).filter((x): x is string => x !== undefined);
            return plain.length ? { changed: true, would: plain.map((n) => `${n}: REST API onto TLS; HAProxy's check of ${n} over TLS`) } : { changed: false };
          }),
      }),
      onHost('file', "Issue etcd's certificates from the cluster CA: each member's (clients and peers), Patroni's and Prometheus's client certificates, and dpgc's own on this machine (keys made where they are used)", undefined, async () =>
        ensureEtcdCerts(await theCa(), ctx),
      ),
      twoWay('service', 'etcd serves clients and peers over TLS only, a certificate from the CA required: one member at a time; Patroni restarted paused (PostgreSQL keeps running) to reach it over TLS', undefined, {
        apply: () => switchEtcdToTls(ctx),
        observe: () => notYetReachable(() => observeEtcdTls(ctx)),
      }),
      ...ctx.pool.specs('monitoring').map((h) =>
        readsLive('service', `Prometheus on ${h.name} scrapes etcd over TLS with its client certificate`, h.name, async () =>
          ensurePrometheus(ctx, await node(h.name), await monitoredSprint(ctx, 5), { tlsCa: await clusterCa(), ca: theCa }),
        ),
      ),
      perHost(inv)(
        'Packages: nftables',
        inv.hosts.map((h) => onHost('package', `Install nftables on ${h.name}`, h.name, async () => ensurePackages(await node(h.name), ['nftables']))),
      ),
      parallel(
        "Firewall: only the ports each host's roles need, from the addresses that need them (nftables)",
        inv.hosts.map((h) =>
          onHost('command', `Keep ${h.name}'s firewall as rendered (nftables table inet ${firewallTable(inv, h)}, checked by nft -c, loaded in one transaction)`, h.name, async () =>
            ensureFirewall(inv, await node(h.name)),
          ),
        ),
      ),
      // Last: every certificate this run issued is in place.
      parallel(
        "Certificate expiry for Prometheus: when each certificate in dpgc's TLS directory ends (node_exporter's textfile)",
        inv.hosts.map((h) => onHost('file', `Write the end of every certificate on ${h.name} for node_exporter`, h.name, async () => ensureCertMetrics(await node(h.name)))),
      ),
    ];
  },

  criteria: [rolesDeclared, rolesEnforced, scramOnly, pgTls, tlsSessions, plaintextRefused, patroniRestTls, etcdTls, auditLogged, metricsTls, securityAlerts, firewallEnforced],
};
