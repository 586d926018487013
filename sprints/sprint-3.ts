import { etcdHealthCheck } from '../src/checks/etcd.js';
import { timingsCheck } from '../src/checks/patroni.js';
import { haProcessesCheck } from '../src/checks/processes.js';
import { targetsUpCheck } from '../src/checks/prometheus.js';
import { routingPrimary, routingReplicas } from '../src/checks/haproxy.js';
import { leaderKeyFix, patroniRegistered, patroniTopology } from '../src/checks/patroni.js';
import { pgbouncerPrimary } from '../src/checks/pgbouncer.js';
import { systemIdentifier } from '../src/checks/postgres.js';
import { dataIdentical, replicationLag } from '../src/checks/replication.js';
import { vectorEverywhere } from '../src/checks/vector.js';
import { timelineHistoryCheck } from '../src/checks/timelines.js';
import { watchdogCheck } from '../src/checks/watchdog.js';
import { currentLeader } from '../src/components/cluster.js';
import { firstPostgres, superuserOn } from '../src/components/endpoints.js';
import { haproxyBackends, waitForPrimaryRoute } from '../src/components/haproxy.js';
import { convergeDynamicConfig, observeDynamicConfig, waitForHealthyCluster } from '../src/components/patroni-cluster.js';
import { outdatedMembers, pendingMembers, rollingRestartOutdated, rollingRestartPending } from '../src/components/patroni-upgrade.js';
import { clusterSizing, dropOverridesAndReload } from '../src/components/sizing.js';
import type { Sizing } from '../src/config/sizing.js';
import { settingsCheck } from '../src/checks/settings.js';
import { ensurePgbouncer } from '../src/components/pgbouncer.js';
import { prepareDirectories } from '../src/components/postgres.js';
import { ensureHaRoles, joinReplica, takeOver } from '../src/components/takeover.js';
import { notYetReachable, readsLive, sqlStep } from '../src/plan/sql.js';
import { onHost, parallel, sequence, twoWay } from '../src/plan/step.js';
import { haMonitoringTasks } from './ha-monitoring.js';
import type { Sprint } from './types.js';

/**
 * Sprint 3: the cluster. Patroni takes over the sprint-0 instance where it
 * stands (same data directory, same system identifier), the other postgres
 * hosts join by base backup, synchronous replication comes up, HAProxy
 * routes to the leader, and PgBouncer is re-pointed at HAProxy so
 * applications keep one address through failovers.
 */
export const sprint3: Sprint = {
  id: 3,
  title: 'Patroni HA cluster: takeover of the base instance, replicas, synchronous replication, routing',
  roles: ['postgres', 'etcd', 'haproxy', 'pgbouncer'],

  tasks(ctx) {
    const inv = ctx.inventory;
    const node = (name: string) => ctx.pool.node(name);
    const first = firstPostgres(inv);
    const replicas = ctx.pool.specs('postgres').filter((h) => h.name !== first.name);
    // Observed, a wait has nothing to change: it says what a real run would wait for.
    // Read once per run from every postgres host: the settings Patroni gives every member.
    let sized: Promise<Sizing> | undefined;
    const sizing = () => (sized ??= clusterSizing(inv, ctx.pool));
    const wait = (title: string, host: string | undefined, apply: () => Promise<{ changed: boolean; note?: string }>) =>
      twoWay('wait', title, host, { apply, observe: async () => ({ changed: false, note: 'waits in a real run' }) });

    return [
      sqlStep(`Create the replication and rewind roles on the primary`, undefined, {
        secrets: ctx.secrets,
        // Before the takeover that is the base instance; afterwards, whoever leads.
        endpoint: async () => superuserOn(inv, await currentLeader(inv).catch(() => first)),
        run: (c) => ensureHaRoles(c, ctx.secrets),
      }),
      onHost('service', `Take over the base instance on ${first.name} with Patroni (same data directory and system identifier)`, first.name, async () =>
        takeOver(inv, await node(first.name), ctx.pool),
      ),
      twoWay('rest', `Converge Patroni’s dynamic configuration (timings, synchronous mode, parameters sized to the hosts, profile ${inv.postgres.profile})`, undefined, {
        apply: async () => convergeDynamicConfig(inv, ctx.secrets, { sizing: await sizing() }),
        observe: () => notYetReachable(async () => observeDynamicConfig(inv, { sizing: await sizing() })),
      }),
      parallel(
        'Replicas',
        replicas.map((h) =>
          sequence(`Replica ${h.name}`, [
            onHost('command', `Prepare the data and socket directories on ${h.name}`, h.name, async () => prepareDirectories(await node(h.name))),
            onHost('service', `Start Patroni on ${h.name} (joins by base backup)`, h.name, async () => joinReplica(inv, await node(h.name), ctx.pool)),
          ]),
        ),
      ),
      wait('Wait until every replica streams and a synchronous standby is assigned', undefined, async () => ({
        changed: false,
        note: await waitForHealthyCluster(inv, ctx.secrets, { timeoutMs: 180_000 }),
      })),
      twoWay('service', 'Restart members still running a Patroni without the leader-key fix, one at a time (replicas, a switchover, the old leader)', undefined, {
        apply: () => rollingRestartOutdated(inv, ctx.secrets, ctx.pool),
        observe: () => notYetReachable(() => outdatedMembers(inv)),
      }),
      parallel(
        'No ALTER SYSTEM value beats the sized settings',
        ctx.pool.specs('postgres').map((h) =>
          onHost('file', `Drop ALTER SYSTEM values of dpgc's settings on ${h.name}, and reload`, h.name, async () =>
            dropOverridesAndReload(inv, ctx.secrets, await node(h.name), (await sizing()).settings.map((x) => x.name)),
          ),
        ),
      ),
      twoWay('service', 'Restart members whose new settings wait for a restart, one at a time (replicas, a switchover, the old leader)', undefined, {
        apply: async () => rollingRestartPending(inv, ctx.secrets, (await sizing()).settings),
        observe: () => notYetReachable(async () => pendingMembers(inv, ctx.secrets, (await sizing()).settings)),
      }),
      parallel(
        'HAProxy follows the leader',
        ctx.pool.specs('haproxy').map((h) =>
          wait(`Wait until HAProxy on ${h.name} routes :${inv.ports.haproxy_primary} to the leader only`, h.name, async () => {
            const leader = await currentLeader(inv);
            await waitForPrimaryRoute(await node(h.name), { expect: leader.name });
            return { changed: false, note: leader.name };
          }),
        ),
      ),
      parallel(
        'PgBouncer through HAProxy',
        ctx.pool.specs('pgbouncer').map((h) =>
          readsLive('file', `Re-point PgBouncer on ${h.name} at HAProxy (:${inv.ports.haproxy_primary}, read-only aliases at :${inv.ports.haproxy_replicas})`, h.name, async () =>
            ensurePgbouncer(ctx, await node(h.name), haproxyBackends(inv)),
          ),
        ),
      ),
      parallel('Monitoring', haMonitoringTasks(ctx, 3)),
    ];
  },

  criteria: [
    etcdHealthCheck(3, 's3.etcd.healthy'),
    patroniRegistered,
    leaderKeyFix,
    patroniTopology,
    timelineHistoryCheck(3, 's3.timeline.history'),
    watchdogCheck(3, 's3.patroni.watchdog'),
    replicationLag,
    routingPrimary,
    routingReplicas,
    pgbouncerPrimary,
    vectorEverywhere,
    dataIdentical,
    systemIdentifier,
    timingsCheck(3, 's3.timings.rto', { live: true }),
    settingsCheck(3, 's3.postgres.settings'),
    haProcessesCheck(3, 's3.processes'),
    targetsUpCheck('s3.prometheus.targets', 3, 'Prometheus scrapes Patroni on every member'),
  ],
};
