import { sprint3Checks } from '../src/checks/sprint3.js';
import { currentLeader } from '../src/components/cluster.js';
import { firstPostgres, superuserOn } from '../src/components/endpoints.js';
import { haproxyBackends, waitForPrimaryRoute } from '../src/components/haproxy.js';
import { convergeDynamicConfig, waitForHealthyCluster } from '../src/components/patroni-cluster.js';
import { ensurePgbouncer } from '../src/components/pgbouncer.js';
import { prepareDirectories } from '../src/components/postgres.js';
import { ensureHaRoles, joinReplica, takeOver } from '../src/components/takeover.js';
import { withClient } from '../src/db/client.js';
import { liveOnly, parallel, sequence, step } from '../src/tasks/run.js';
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
    const live = liveOnly(ctx.options.dryRun);

    return [
      step(
        `Create the replication and rewind roles on the primary`,
        live(async () => {
          // Before the takeover that is the base instance; afterwards, whoever leads.
          const target = await currentLeader(inv).catch(() => first);
          return withClient(ctx.secrets, superuserOn(inv, target), (c) => ensureHaRoles(c, ctx.secrets));
        }),
      ),
      step(`Take over the base instance on ${first.name} with Patroni (same data directory and system identifier)`, async () =>
        takeOver(inv, await node(first.name), ctx.pool),
      ),
      step('Converge Patroni’s dynamic configuration (timings, synchronous mode, parameters)', live(() => convergeDynamicConfig(inv, ctx.secrets))),
      parallel(
        'Replicas',
        replicas.map((h) =>
          sequence(`Replica ${h.name}`, [
            step(`Prepare the data and socket directories on ${h.name}`, async () => prepareDirectories(await node(h.name))),
            step(`Start Patroni on ${h.name} (joins by base backup)`, async () => joinReplica(inv, await node(h.name), ctx.pool)),
          ]),
        ),
      ),
      step(
        'Wait until every replica streams and a synchronous standby is assigned',
        live(async () => ({ changed: false, note: await waitForHealthyCluster(inv, ctx.secrets, { timeoutMs: 180_000 }) })),
      ),
      parallel(
        'HAProxy follows the leader',
        ctx.pool.specs('haproxy').map((h) =>
          step(
            `Wait until HAProxy on ${h.name} routes :${inv.ports.haproxy_primary} to the leader only`,
            live(async () => {
              const leader = await currentLeader(inv);
              await waitForPrimaryRoute(await node(h.name), { expect: leader.name });
              return { changed: false, note: leader.name };
            }),
          ),
        ),
      ),
      parallel(
        'PgBouncer through HAProxy',
        ctx.pool.specs('pgbouncer').map((h) =>
          step(
            `Re-point PgBouncer on ${h.name} at HAProxy (:${inv.ports.haproxy_primary}, read-only aliases at :${inv.ports.haproxy_replicas})`,
            live(async () => ensurePgbouncer(ctx, await node(h.name), haproxyBackends(inv))),
          ),
        ),
      ),
      parallel('Monitoring', haMonitoringTasks(ctx, 3)),
    ];
  },

  criteria: (ctx) => sprint3Checks(ctx),
};
