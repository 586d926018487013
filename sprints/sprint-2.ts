import { sprint2Checks } from '../src/checks/sprint2.js';
import { configureEtcd, endpointHealth, clientEndpoints, installEtcd, startEtcd } from '../src/components/etcd.js';
import { ensureHaproxyRunning, configureHaproxy, installHaproxy, waitForPrimaryRoute } from '../src/components/haproxy.js';
import { ensurePackages, HA_PACKAGES } from '../src/components/ha-packages.js';
import { configurePatroni, patroniCredentials, patroniService } from '../src/components/patroni.js';
import { currentLeader } from '../src/components/cluster.js';
import { HostError } from '../src/errors.js';
import { parallel, perHost, sequence, step } from '../src/tasks/run.js';
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
          ...etcdHosts.map((h) => step(`Install etcd on ${h.name}`, async () => installEtcd(await node(h.name)))),
          ...pgHosts.map((h) => step(`Install Patroni on ${h.name}`, async () => ensurePackages(await node(h.name), HA_PACKAGES.patroni))),
          ...proxies.map((h) => step(`Install HAProxy on ${h.name}`, async () => installHaproxy(await node(h.name)))),
        ],
      ),

      parallel(
        'Configure etcd members',
        etcdHosts.map((h) =>
          step(`Configure the etcd member on ${h.name}`, async () => {
            const changed = await configureEtcd(inv, await node(h.name));
            etcdConfigChanged.set(h.name, changed);
            return changed;
          }),
        ),
      ),
      // All at once: a member waits for a quorum of peers before it serves.
      parallel(
        'Start etcd',
        etcdHosts.map((h) => step(`Start etcd on ${h.name}`, async () => startEtcd(inv, await node(h.name), etcdConfigChanged.get(h.name) ?? false))),
      ),
      step('Wait until every etcd member is healthy', async () => {
        if (ctx.options.dryRun) return false;
        const deadline = Date.now() + 30_000;
        const n = await node(etcdHosts[0]!.name);
        for (;;) {
          const h = await endpointHealth(n, clientEndpoints(inv));
          if (h.every((x) => x.health)) return false;
          if (Date.now() > deadline) {
            throw new HostError(`etcd is not healthy after 30 s: ${h.filter((x) => !x.health).map((x) => `${x.endpoint} (${x.error ?? 'unhealthy'})`).join(', ')}`, {
              hint: 'Read etcd.log on the hosts named; a member needs a quorum of its peers reachable on the peer port.',
            });
          }
          await new Promise((r) => setTimeout(r, 500));
        }
      }),

      parallel(
        'Patroni configuration',
        pgHosts.map((h) =>
          step(`Write and validate the Patroni configuration on ${h.name}`, async () => {
            const n = await node(h.name);
            const changed = await configurePatroni(inv, n, await patroniCredentials(ctx.secrets));
            // Once Patroni runs (sprint 3 done), a changed file must reach it: SIGHUP re-reads it.
            const svc = patroniService(inv, n);
            if (changed && (await n.services.status(svc)).running) {
              await n.services.reload(svc);
              return { changed, note: 'Patroni reloaded' };
            }
            return changed;
          }),
        ),
      ),

      parallel(
        'HAProxy',
        proxies.map((h) =>
          sequence(`HAProxy on ${h.name}`, [
            step(`Write the HAProxy configuration on ${h.name} (checked by haproxy -c)`, async () => {
              const changed = await configureHaproxy(inv, await node(h.name), ctx.secrets);
              haproxyChanged.set(h.name, changed);
              return changed;
            }),
            step(`Start HAProxy on ${h.name}, or reload it when its configuration changed`, async () => {
              const n = await node(h.name);
              const r = await ensureHaproxyRunning(inv, n, haproxyChanged.get(h.name) ?? false);
              // Every server counts as UP right after a (re)start (LAB.md): when Patroni already
              // runs, do not hand the port back before it routes to the leader only.
              if (r.changed && !ctx.options.dryRun) {
                const leader = await currentLeader(inv).catch(() => undefined);
                if (leader) await waitForPrimaryRoute(n, { expect: leader.name });
              }
              return r;
            }),
          ]),
        ),
      ),

      parallel('Monitoring', haMonitoringTasks(ctx, 2)),
    ];
  },

  criteria: (ctx) => sprint2Checks(ctx),
};
