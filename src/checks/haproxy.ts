import { currentLeader } from '../components/cluster.js';
import { haproxyService, haproxyUser, renderHaproxyConfig, restChecks, STATS_USER, BACKENDS, showStat, upServers } from '../components/haproxy.js';
import { runValidator } from '../components/config-file.js';
import { portOpen } from '../hosts/services.js';
import { fail, pass, type Check } from './types.js';
import { pgHosts, haproxyHost, via, landing, nameOf } from './common.js';

/**
 * HAProxy's criteria: a valid configuration, the daemon and its listeners
 * (sprint 2), then connections through it landing on the leader and on
 * replicas (sprint 3).
 */

export function haproxyConfigCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'HAProxy’s configuration is current and accepted by haproxy -c',
    sprint,
    kind: 'read',
    async run(ctx) {
      const problems: string[] = [];
      for (const n of await ctx.pool.nodesWith('haproxy')) {
        const path = n.paths.haproxyCfg;
        const text = await n.host.readFile(path);
        if (text === undefined) {
          problems.push(`${n.spec.name}: ${path} is missing`);
          continue;
        }
        if (text !== renderHaproxyConfig(ctx.inventory, n.spec, n.paths, await ctx.secrets.get('haproxy_stats'), await restChecks(ctx.inventory, n))) problems.push(`${n.spec.name}: ${path} differs from what the inventory renders`);
        await runValidator(n.host, 'HAProxy config', ['haproxy', '-c', '-f', path]).catch((e: Error) => problems.push(e.message));
      }
      if (problems.length) return fail(problems.join('\n'), { remedy: 'Run `dpgc sprint 2` to render, check and install it again.' });
      return pass('valid');
    },
  };
}

/** The daemon runs, its three ports answer, the stats page wants the password and gets it, /metrics serves. */
export function haproxyRunningCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'HAProxy runs, listens on its ports, guards its stats page and serves /metrics',
    sprint,
    kind: 'state',
    async run(ctx) {
      const inv = ctx.inventory;
      const p = inv.ports;
      const problems: string[] = [];
      for (const n of await ctx.pool.nodesWith('haproxy')) {
        const st = await n.services.status(haproxyService(inv, n, await haproxyUser(n)));
        if (!st.running) {
          problems.push(`haproxy is not running on ${n.spec.name} (${st.reason})`);
          continue;
        }
        for (const port of [p.haproxy_primary, p.haproxy_replicas, p.haproxy_stats]) {
          if (!(await portOpen(n.host, n.spec.address, port))) problems.push(`${n.spec.name}: nothing listens on ${n.spec.address}:${port}`);
        }
        const url = `http://${n.spec.address}:${p.haproxy_stats}`;
        const anon = await fetch(`${url}/stats`, { signal: AbortSignal.timeout(3000) }).then((r) => r.status, () => 0);
        const auth = `Basic ${Buffer.from(`${STATS_USER}:${await ctx.secrets.get('haproxy_stats')}`).toString('base64')}`;
        const authed = await fetch(`${url}/stats;csv`, { headers: { authorization: auth }, signal: AbortSignal.timeout(3000) }).then((r) => r.status, () => 0);
        const metrics = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3000) }).then(async (r) => (r.status === 200 ? (await r.text()).includes('haproxy_') : false), () => false);
        if (anon !== 401) problems.push(`${n.spec.name}: the stats page answered ${anon} without credentials (want 401)`);
        if (authed !== 200) problems.push(`${n.spec.name}: the stats page answered ${authed} with the haproxy_stats credentials (want 200)`);
        if (!metrics) problems.push(`${n.spec.name}: ${url}/metrics serves no HAProxy metrics`);
      }
      if (problems.length) {
        return fail(problems.join('\n'), { remedy: 'Read haproxy.log under the host’s log directory, then run `dpgc sprint 2` (it starts or reloads HAProxy).' });
      }
      return pass('running');
    },
  };
}

export const routingPrimary: Check = {
  id: 's3.routing.primary',
  title: `HAProxy :5000 lands on the leader only`,
  sprint: 3,
  kind: 'state',
  async run(ctx) {
    const leader = await currentLeader(ctx.inventory);
    const ups = upServers(await showStat(await ctx.pool.node(haproxyHost(ctx).name)), BACKENDS.primary);
    const l = await landing(ctx, via(ctx, ctx.inventory.ports.haproxy_primary));
    const problems: string[] = [];
    if (ups.length !== 1 || ups[0] !== leader.name) problems.push(`HAProxy's primary backend has ${ups.join(', ') || 'no server'} UP; Patroni's leader is ${leader.name}`);
    if (l.recovery || l.addr !== leader.address) problems.push(`:${ctx.inventory.ports.haproxy_primary} landed on ${nameOf(ctx, l.addr)} (${l.recovery ? 'in recovery' : 'primary'}), not on the leader ${leader.name}`);
    if (problems.length) return fail(problems.join('; '), { value: nameOf(ctx, l.addr), threshold: leader.name, remedy: 'Check Patroni’s /primary on each member and HAProxy’s log; `dpgc status` shows both.' });
    return pass(leader.name, leader.name);
  },
};

export const routingReplicas: Check = {
  id: 's3.routing.replicas',
  title: `HAProxy :5001 lands only on replicas`,
  sprint: 3,
  kind: 'state',
  async run(ctx) {
    const leader = await currentLeader(ctx.inventory);
    const seen = new Set<string>();
    const wrong: string[] = [];
    // Round robin: twice the replica count of connections visits each of them.
    for (let i = 0; i < 2 * (pgHosts(ctx).length - 1); i++) {
      const l = await landing(ctx, via(ctx, ctx.inventory.ports.haproxy_replicas));
      seen.add(nameOf(ctx, l.addr));
      if (!l.recovery || l.addr === leader.address) wrong.push(nameOf(ctx, l.addr));
    }
    const value = [...seen].sort().join(', ');
    if (wrong.length) return fail(`:${ctx.inventory.ports.haproxy_replicas} landed on the primary ${[...new Set(wrong)].join(', ')}`, { value, threshold: 'replicas only', remedy: 'Check Patroni’s /replica on that member and the HAProxy config (`dpgc sprint 2`).' });
    return pass(value, 'replicas only');
  },
};
