import { randomBytes } from 'node:crypto';
import { deadServices, HA_SERVICES } from '../components/cluster.js';
import { clientEndpoints, clientUrl, deleteKey, endpointHealth, etcdctlNode, etcdHosts, getKey, memberList, putKey } from '../components/etcd.js';
import { haproxyService, haproxyUser, renderHaproxyConfig, STATS_USER } from '../components/haproxy.js';
import { FALSE_VALIDATION_ERRORS, patroniCredentials, renderPatroniConfig } from '../components/patroni.js';
import { runValidator } from '../components/config-file.js';
import { portOpen } from '../hosts/services.js';
import { explainFailover, inventoryWorstCase, validateTimings } from '../config/timings.js';
import type { RunContext } from '../context.js';
import { fail, pass, type Check, type CheckResult } from './types.js';

/**
 * Checks of the HA layer shared by sprints 2 and 3 (the same measurement,
 * re-verified once the cluster runs on it). Each takes its sprint and id.
 */
type Ctx = RunContext;

export function etcdHealthCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'Every etcd endpoint is healthy',
    sprint,
    async run(ctx: Ctx): Promise<CheckResult> {
      const eps = clientEndpoints(ctx.inventory);
      const h = await endpointHealth(await etcdctlNode(ctx.pool), eps);
      const bad = h.filter((x) => !x.health);
      const value = `${h.length - bad.length}/${eps.length} healthy`;
      if (bad.length) {
        return fail(`unhealthy: ${bad.map((b) => `${b.endpoint}${b.error ? ` (${b.error})` : ''}`).join(', ')}`, {
          value,
          threshold: `${eps.length}/${eps.length}`,
          remedy: 'Read etcd.log on the hosts named, then run `dpgc sprint 2` to start any member that is down (it never wipes a member).',
        });
      }
      return pass(value, `${eps.length}/${eps.length}`);
    },
  };
}

export function etcdMembersCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'The etcd member list holds exactly the inventory’s etcd hosts',
    sprint,
    async run(ctx) {
      const want = etcdHosts(ctx.inventory).map((h) => ({ name: h.name, url: clientUrl(ctx.inventory, h) }));
      const got = await memberList(await etcdctlNode(ctx.pool), clientEndpoints(ctx.inventory));
      const missing = want.filter((w) => !got.some((g) => g.name === w.name && g.clientUrls.includes(w.url)));
      const extra = got.filter((g) => !want.some((w) => w.name === g.name));
      const value = `${got.length - extra.length}/${want.length} members`;
      if (missing.length || extra.length) {
        return fail(
          [missing.length ? `missing or not started: ${missing.map((m) => m.name).join(', ')}` : '', extra.length ? `not in the inventory: ${extra.map((e) => e.name || e.id).join(', ')}` : '']
            .filter(Boolean)
            .join('; '),
          { value, threshold: `${want.length} members`, remedy: 'A member that never started shows without a name: start it with `dpgc sprint 2`; remove foreign members with `etcdctl member remove`.' },
        );
      }
      return pass(value, `${want.length} members`);
    },
  };
}

/** A key written through one member, read back locally (serializable) from every other member. */
export function etcdReplicationCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'A write on one etcd member is read back from the others',
    sprint,
    async run(ctx) {
      const hosts = etcdHosts(ctx.inventory);
      const n = await etcdctlNode(ctx.pool);
      const key = `/dpgc/check/${randomBytes(6).toString('hex')}`;
      const value = randomBytes(12).toString('hex');
      const writer = hosts[0]!;
      await putKey(n, clientUrl(ctx.inventory, writer), key, value);
      const written = Date.now();
      try {
        // Serializable reads answer from each member's own state: proof the write reached it.
        const seenAfter = await Promise.all(
          hosts.slice(1).map(async (h) => {
            const deadline = written + 3000;
            for (;;) {
              if ((await getKey(n, clientUrl(ctx.inventory, h), key, { consistency: 's' }).catch(() => undefined)) === value) return { host: h.name, ms: Date.now() - written };
              if (Date.now() > deadline) return { host: h.name, ms: undefined };
              await new Promise((r) => setTimeout(r, 50));
            }
          }),
        );
        const late = seenAfter.filter((s) => s.ms === undefined).map((s) => s.host);
        const worst = Math.max(0, ...seenAfter.map((s) => s.ms ?? 0));
        if (late.length) return fail(`written through ${writer.name}, not visible on ${late.join(', ')} within 3 s`, { value: `${late.length} member(s) missing it`, remedy: 'Check `dpgc status` for the etcd members named and read their etcd.log.' });
        return pass(`${worst} ms`, '< 3000 ms', `written through ${writer.name}, read locally on ${seenAfter.map((s) => `${s.host} after ${s.ms} ms`).join(', ')}`);
      } finally {
        await deleteKey(n, clientUrl(ctx.inventory, writer), key).catch(() => {});
      }
    },
  };
}

export function timingsCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'Worst-case failover allowed by the timings fits the RTO budget',
    sprint,
    async run(ctx) {
      const t = ctx.inventory.timings;
      const problems = validateTimings(t);
      const b = inventoryWorstCase(ctx.inventory);
      const threshold = `≤ ${t.rto_budget_s} s`;
      if (problems.length) return fail(problems.map((p) => p.message).join('; '), { value: `${b.totalS} s`, threshold });
      if (b.totalS > t.rto_budget_s) {
        return fail(`profile ${t.profile}: ${explainFailover(b)} exceeds the budget of ${t.rto_budget_s} s`, {
          value: `${b.totalS} s`,
          threshold,
          remedy: 'Pick a faster profile (`timings.profile: balanced` or `fast`), lower ttl/loop_wait/check_inter_ms, or raise `timings.rto_budget_s` if the budget is wrong.',
        });
      }
      return pass(`${b.totalS} s`, threshold, `profile ${t.profile}: ${explainFailover(b)}`);
    },
  };
}

export function patroniConfigCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'Patroni’s configuration is installed, current, private and valid on every postgres host',
    sprint,
    async run(ctx) {
      const creds = await patroniCredentials(ctx.secrets);
      const problems: string[] = [];
      for (const n of await ctx.pool.nodesWith('postgres')) {
        const path = n.paths.patroniConf;
        const st = await n.host.exec(['stat', '-c', '%a %U', path], { mutates: false, allowFailure: true });
        if (st.exitCode !== 0) {
          problems.push(`${n.spec.name}: ${path} is missing`);
          continue;
        }
        if (st.stdout.trim() !== '600 postgres') problems.push(`${n.spec.name}: ${path} is mode/owner ${st.stdout.trim()}, want 600 postgres (it holds passwords)`);
        if ((await n.host.readFile(path)) !== renderPatroniConfig(ctx.inventory, n.spec, n.paths, creds)) problems.push(`${n.spec.name}: ${path} differs from what the inventory renders`);
        await runValidator(n.host, 'Patroni config', ['patroni', '--validate-config', path], { user: 'postgres', ignore: FALSE_VALIDATION_ERRORS }).catch((e: Error) => problems.push(e.message));
      }
      const total = ctx.inventory.hosts.filter((h) => h.roles.includes('postgres')).length;
      if (problems.length) return fail(problems.join('\n'), { value: `${problems.length} problem(s)`, remedy: 'Run `dpgc sprint 2` to render and install it again.' });
      return pass(`${total}/${total} hosts`);
    },
  };
}

export function haproxyConfigCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'HAProxy’s configuration is current and accepted by haproxy -c',
    sprint,
    async run(ctx) {
      const problems: string[] = [];
      for (const n of await ctx.pool.nodesWith('haproxy')) {
        const path = n.paths.haproxyCfg;
        const text = await n.host.readFile(path);
        if (text === undefined) {
          problems.push(`${n.spec.name}: ${path} is missing`);
          continue;
        }
        if (text !== renderHaproxyConfig(ctx.inventory, n.spec, n.paths, await ctx.secrets.get('haproxy_stats'))) problems.push(`${n.spec.name}: ${path} differs from what the inventory renders`);
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

/** Every expected daemon of the HA layer is alive; a dead one is named with its host and what to do. */
export function haProcessesCheck(sprint: number, id: string, services = HA_SERVICES.filter((s) => s.sprint <= sprint)): Check {
  return {
    id,
    title: `Every ${[...new Set(services.map((s) => s.service))].join(', ')} process is running`,
    sprint,
    async run(ctx) {
      const dead = await deadServices(ctx, services);
      if (dead.length) return fail(dead.map((d) => d.problem).join('\n'), { value: `${dead.length} down`, remedy: dead.map((d) => d.remedy).join(' ') });
      return pass('all running');
    },
  };
}
