import { etcdHealthCheck, etcdMembersCheck, etcdReplicationCheck } from '../src/checks/etcd.js';
import { haproxyConfigCheck, haproxyRunningCheck } from '../src/checks/haproxy.js';
import { patroniConfigCheck, timingsCheck } from '../src/checks/patroni.js';
import { haProcessesCheck } from '../src/checks/processes.js';
import { targetsUpCheck } from '../src/checks/prometheus.js';
import { liveClientEndpoints, configureEtcd, endpointHealth, installEtcd, startEtcd, waitForEtcdHealthy } from '../src/components/etcd.js';
import { configureHaproxy, ensureHaproxyRouting, ensureHaproxyRunning, installHaproxy } from '../src/components/haproxy.js';
import { installPatroni } from '../src/components/patroni-package.js';
import { ensureWatchdog } from '../src/components/watchdog.js';
import { ensurePatroniConfig, patroniCredentials } from '../src/components/patroni.js';
import { tlsRequired } from '../src/components/deployed.js';
import { memberTls } from '../src/components/patroni-tls.js';
import { notYetReachable } from '../src/plan/sql.js';
import { onHost, parallel, perHost, sequence, twoWay } from '../src/plan/step.js';
import { haMonitoringTasks } from './ha-monitoring.js';
import type { Sprint } from './types.js';

/**
 * Sprint 2: the consensus store and the routing layer, and Patroni's
 * configuration, rendered and validated but not yet run: Patroni takes over
 * the sprint-0 instance in sprint 3. HAProxy checks Patroni's REST API, so
 * until sprint 3 its primary backend has no server UP by design; this
 * sprint's HAProxy criteria are a valid config, the daemon, its listeners
 * and its protected stats page.
 */
export const sprint2: Sprint = {
  id: 2,
  title: 'etcd, Patroni configuration and HAProxy',
  roles: ['etcd', 'postgres', 'haproxy'],

  tasks(ctx) {
    const inv = ctx.inventory;
    let tls: ReturnType<typeof tlsRequired> | undefined;
    const peerTls = () => (tls ??= tlsRequired(ctx));
    const node = (name: string) => ctx.pool.node(name);
    const etcdHosts = ctx.pool.specs('etcd');
    const pgHosts = ctx.pool.specs('postgres');
    const proxies = ctx.pool.specs('haproxy');
    const installs = perHost(ctx.inventory);
    const etcdConfigChanged = new Map<string, boolean>();
    const haproxyChanged = new Map<string, boolean>();

    return [
      installs(
        'Packages: etcd, Patroni and HAProxy',
        [
          ...etcdHosts.map((h) => onHost('package', `Install etcd on ${h.name}`, h.name, async () => installEtcd(await node(h.name)))),
          ...pgHosts.map((h) => onHost('package', `Install Patroni (with the leader-key fix) on ${h.name}`, h.name, async () => installPatroni(inv, await node(h.name)))),
          ...pgHosts.map((h) => onHost('command', `Prepare the watchdog for Patroni on ${h.name}`, h.name, async () => ensureWatchdog(inv, await node(h.name)))),
          ...proxies.map((h) => onHost('package', `Install HAProxy on ${h.name}`, h.name, async () => installHaproxy(await node(h.name)))),
        ],
      ),

      parallel(
        'Configure etcd members',
        etcdHosts.map((h) =>
          onHost('file', `Configure the etcd member on ${h.name}`, h.name, async () => {
            const changed = await configureEtcd(inv, await node(h.name));
            etcdConfigChanged.set(h.name, changed);
            return changed;
          }),
        ),
      ),
      // All at once: a member waits for a quorum of peers before it serves.
      parallel(
        'Start etcd',
        etcdHosts.map((h) => onHost('service', `Start etcd on ${h.name}`, h.name, async () => startEtcd(inv, await node(h.name), etcdConfigChanged.get(h.name) ?? false))),
      ),
      twoWay('wait', 'Wait until every etcd member is healthy', etcdHosts[0]!.name, {
        apply: async () => (await waitForEtcdHealthy(inv, await node(etcdHosts[0]!.name)), false),
        // Observed: one reading, no waiting; members still to be started are a change to come.
        observe: () =>
          notYetReachable(async () => {
            const h = await endpointHealth(await node(etcdHosts[0]!.name), await liveClientEndpoints(inv));
            const down = h.filter((x) => !x.health).map((x) => x.endpoint);
            return down.length ? { changed: false, note: `would wait for ${down.join(', ')}` } : false;
          }),
      }),

      parallel(
        'Patroni configuration',
        pgHosts.map((h) =>
          onHost('file', `Write and validate the Patroni configuration on ${h.name}`, h.name, async () =>
            // Once Patroni runs (sprint 3 done), a changed file reaches it by a reload; TLS (PostgreSQL's, the REST API's) stays once sprint 5 turned it on.
            ensurePatroniConfig(inv, await node(h.name), await patroniCredentials(ctx.secrets), await memberTls(inv, h, await peerTls())),
          ),
        ),
      ),

      parallel(
        'HAProxy',
        proxies.map((h) =>
          sequence(`HAProxy on ${h.name}`, [
            onHost('file', `Write the HAProxy configuration on ${h.name} (checked by haproxy -c)`, h.name, async () => {
              const changed = await configureHaproxy(inv, await node(h.name), ctx.secrets);
              haproxyChanged.set(h.name, changed);
              return changed;
            }),
            twoWay('service', `Start HAProxy on ${h.name}, or reload it when its configuration changed`, h.name, {
              apply: async () => ensureHaproxyRouting(inv, await node(h.name), haproxyChanged.get(h.name) ?? false),
              observe: async () => ensureHaproxyRunning(inv, await node(h.name), haproxyChanged.get(h.name) ?? false),
            }),
          ]),
        ),
      ),

      parallel('Monitoring', haMonitoringTasks(ctx, 2)),
    ];
  },

  // Patroni runs from sprint 3 on, so "members registered" and "HAProxy reaches the primary" are
  // sprint 3's criteria; here HAProxy is judged on its config, its listeners and its stats page.
  criteria: [
    etcdHealthCheck(2, 's2.etcd.healthy'),
    etcdMembersCheck(2, 's2.etcd.members'),
    etcdReplicationCheck(2, 's2.etcd.replicates'),
    patroniConfigCheck(2, 's2.patroni.config'),
    timingsCheck(2, 's2.timings.rto', { live: false }),
    haproxyConfigCheck(2, 's2.haproxy.config'),
    haproxyRunningCheck(2, 's2.haproxy.running'),
    haProcessesCheck(2, 's2.processes'),
    targetsUpCheck('s2.prometheus.targets', 2, 'Prometheus scrapes every etcd member and HAProxy'),
  ],
};
