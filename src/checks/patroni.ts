import { currentLeader } from '../components/cluster.js';
import { etcdctlNode, keysWithPrefix, liveClientEndpoints } from '../components/etcd.js';
import { tlsRequired } from '../components/deployed.js';
import { memberTls } from '../components/patroni-tls.js';
import { patroniCredentials, renderPatroniConfig, rest, restTarget, validatePatroniArgv, memberStatus, PATRONI_NAMESPACE } from '../components/patroni.js';
import { runValidator } from '../components/config-file.js';
import { explainFailover, inventoryWorstCase, patroniEffectiveTimings, validateTimings } from '../config/timings.js';
import type { RunContext } from '../context.js';
import { fail, pass, type Check } from './types.js';
import { topology } from '../components/patroni-cluster.js';
import { hasLeaderKeyFix, LEADER_KEY_FIX } from '../components/patroni-package.js';
import { pgHosts } from './common.js';

/**
 * Patroni's criteria: its configuration valid and its timings inside its own
 * limits (sprint 2), then members registered, the leader-key fix, the
 * topology and the timings it applies (sprint 3).
 */

type Ctx = RunContext;

/**
 * `live`: also hold the timings the running Patroni applies against the
 * inventory. Sprint 3 does (it converges them); sprint 2 must not, or a drifted
 * cluster would lock the very sprint that repairs it.
 */
export function timingsCheck(sprint: number, id: string, o: { live: boolean }): Check {
  return {
    id,
    title: 'Worst-case failover allowed by the timings fits the RTO budget',
    sprint,
    kind: 'read',
    async run(ctx) {
      const t = ctx.inventory.timings;
      const problems = validateTimings(t);
      const b = inventoryWorstCase(ctx.inventory);
      const threshold = `≤ ${t.rto_budget_s} s`;
      if (problems.length) return fail(problems.map((p) => p.message).join('; '), { value: `${b.totalS} s`, threshold });
      // What the running cluster applies (GET /config, through Patroni's own minimums), not only what was asked.
      const running = o.live ? await runningTimings(ctx) : undefined;
      if (running && (running.ttl !== t.ttl || running.loop_wait !== t.loop_wait || running.retry_timeout !== t.retry_timeout)) {
        return fail(
          `Patroni runs with ttl ${running.ttl}, loop_wait ${running.loop_wait}, retry_timeout ${running.retry_timeout}; the inventory asks for ${t.ttl}, ${t.loop_wait}, ${t.retry_timeout}`,
          { value: `${b.totalS} s`, threshold, remedy: 'Run `dpgc sprint 3`: it converges Patroni’s dynamic configuration to the inventory.' },
        );
      }
      if (b.totalS > t.rto_budget_s) {
        return fail(`profile ${t.profile}: ${explainFailover(b)} exceeds the budget of ${t.rto_budget_s} s`, {
          value: `${b.totalS} s`,
          threshold,
          remedy: 'Pick a faster profile (`timings.profile: balanced` or `fast`), lower ttl/loop_wait/check_inter_ms, or raise `timings.rto_budget_s` if the budget is wrong.',
        });
      }
      return pass(`${b.totalS} s`, threshold, `profile ${t.profile}: ${explainFailover(b)}${running ? ' (as the running Patroni applies it)' : ''}`);
    },
  };
}

/** The leader's dynamic configuration as Patroni applies it; undefined while no Patroni runs (sprint 2). */
async function runningTimings(ctx: Ctx): Promise<ReturnType<typeof patroniEffectiveTimings> | undefined> {
  const leader = await currentLeader(ctx.inventory).catch(() => undefined);
  if (!leader) return undefined;
  const r = await rest<{ ttl?: number; loop_wait?: number; retry_timeout?: number }>(restTarget(ctx.inventory, leader), 'GET', '/config').catch(() => undefined);
  if (r?.status !== 200 || !r.body) return undefined;
  // Patroni's defaults (30/10/10) for a key the DCS does not hold.
  return patroniEffectiveTimings({ ttl: Number(r.body.ttl ?? 30), loop_wait: Number(r.body.loop_wait ?? 10), retry_timeout: Number(r.body.retry_timeout ?? 10) });
}

export function patroniConfigCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'Patroni’s configuration is installed, current, private and valid on every postgres host',
    sprint,
    kind: 'read',
    async run(ctx) {
      const creds = await patroniCredentials(ctx.secrets);
      const tls = await tlsRequired(ctx);
      // Every host at once (the validator is a Python start-up each), problems in the inventory's order.
      const perHost = await Promise.all(
        (await ctx.pool.nodesWith('postgres')).map(async (n) => {
          const problems: string[] = [];
          const path = n.paths.patroniConf;
          const st = await n.host.exec(['stat', '-c', '%a %U', path], { mutates: false, allowFailure: true });
          if (st.exitCode !== 0) return [`${n.spec.name}: ${path} is missing`];
          if (st.stdout.trim() !== '600 postgres') problems.push(`${n.spec.name}: ${path} is mode/owner ${st.stdout.trim()}, want 600 postgres (it holds passwords)`);
          if ((await n.host.readFile(path)) !== renderPatroniConfig(ctx.inventory, n.spec, n.paths, creds, await memberTls(ctx.inventory, n.spec, tls))) problems.push(`${n.spec.name}: ${path} differs from what the inventory renders`);
          await runValidator(n.host, 'Patroni config', validatePatroniArgv(path), { user: 'postgres' }).catch((e: Error) => problems.push(e.message));
          return problems;
        }),
      );
      const problems = perHost.flat();
      const total = ctx.inventory.hosts.filter((h) => h.roles.includes('postgres')).length;
      if (problems.length) return fail(problems.join('\n'), { value: `${problems.length} problem(s)`, remedy: 'Run `dpgc sprint 2` to render and install it again.' });
      return pass(`${total}/${total} hosts`);
    },
  };
}

export const patroniRegistered: Check = {
  id: 's3.patroni.registered',
  title: 'Every postgres host is registered in etcd under the cluster scope',
  sprint: 3,
  kind: 'state',
  async run(ctx) {
    const prefix = `${PATRONI_NAMESPACE}${ctx.inventory.cluster}/members/`;
    const keys = await keysWithPrefix(await etcdctlNode(ctx.pool), await liveClientEndpoints(ctx.inventory), prefix);
    const want = pgHosts(ctx).map((h) => h.name);
    const missing = want.filter((n) => !keys.includes(`${prefix}${n}`));
    const value = `${want.length - missing.length}/${want.length} members`;
    if (missing.length) {
      return fail(`not registered under ${prefix}: ${missing.join(', ')}`, {
        value,
        threshold: `${want.length}/${want.length}`,
        remedy: `Patroni is not running (or cannot reach etcd) on ${missing.join(', ')}: read patroni.log there, then run \`dpgc sprint 3\`.`,
      });
    }
    return pass(value, `${want.length}/${want.length}`);
  },
};

export const leaderKeyFix: Check = {
  id: 's3.patroni.leader-key',
  title: 'Patroni cannot overwrite a newer leader’s key when a stalled leader resumes (patroni/patroni#2689)',
  sprint: 3,
  kind: 'state',
  async run(ctx) {
    const versions = await Promise.all(
      pgHosts(ctx).map(async (h) => {
        const s = await memberStatus(restTarget(ctx.inventory, h)).catch(() => undefined);
        return { name: h.name, version: s?.patroni?.version };
      }),
    );
    const affected = versions.filter((v) => v.version === undefined || !hasLeaderKeyFix(v.version));
    const value = [...new Set(versions.map((v) => v.version ?? 'unknown'))].join(', ');
    const threshold = `≥ ${LEADER_KEY_FIX} on every member`;
    if (affected.length) {
      return fail(
        `Patroni ${affected.map((v) => `${v.version ?? '(no answer)'} on ${v.name}`).join(', ')}: a leader that stalls past ttl (a paused VM, a hung host) and then resumes can write its leader key over the new leader's, and writes the new leader acknowledged are lost`,
        {
          value,
          threshold,
          remedy: '`dpgc sprint 2` installs a fixed Patroni (from Debian 13 on Debian 12), and `dpgc sprint 3` restarts the members on it one at a time (replicas, a switchover, then the old leader).',
        },
      );
    }
    return pass(value, threshold);
  },
};

export const patroniTopology: Check = {
  id: 's3.patroni.topology',
  title: 'One leader, every replica streaming, synchronous standby assigned',
  sprint: 3,
  kind: 'state',
  async run(ctx) {
    const t = await topology(ctx.inventory, ctx.secrets);
    const want = `1 leader, ${pgHosts(ctx).length - 1} streaming, ${ctx.inventory.postgres.synchronous_node_count} sync`;
    const value = `leader ${t.leader ?? 'none'}, ${t.streaming.length} streaming, ${t.sync.length} sync (${t.sync.join(', ') || 'none'})`;
    if (t.problems.length) return fail(t.problems.join('; '), { value, threshold: want, remedy: 'Run `dpgc status` for the whole picture; `dpgc sprint 3` restarts Patroni where it is down.' });
    return pass(value, want);
  },
};
