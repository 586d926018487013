import { randomBytes } from 'node:crypto';
import { clientUrl, deleteKey, endpointAddress, liveClientEndpoints, endpointHealth, etcdctlNode, etcdHosts, getKey, memberList, putKey } from '../components/etcd.js';
import type { RunContext } from '../context.js';
import { fail, pass, type Check, type CheckResult } from './types.js';
import { becomes } from '../wait.js';

/**
 * etcd's criteria, shared by sprints 2 and 3 (the same measurement,
 * re-verified once the cluster runs on it): each takes its sprint and id.
 */

type Ctx = RunContext;

export function etcdHealthCheck(sprint: number, id: string): Check {
  return {
    id,
    title: 'Every etcd endpoint is healthy',
    sprint,
    kind: 'state',
    async run(ctx: Ctx): Promise<CheckResult> {
      const eps = await liveClientEndpoints(ctx.inventory);
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
    kind: 'state',
    async run(ctx) {
      // Recognised by address and port: the scheme is what the member serves (TLS from sprint 5 on).
      const want = etcdHosts(ctx.inventory).map((h) => ({ name: h.name, url: endpointAddress(clientUrl(ctx.inventory, h)) }));
      const got = await memberList(await etcdctlNode(ctx.pool), await liveClientEndpoints(ctx.inventory));
      const missing = want.filter((w) => !got.some((g) => g.name === w.name && g.clientUrls.map(endpointAddress).includes(w.url)));
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
    kind: 'read',
    async run(ctx) {
      const hosts = etcdHosts(ctx.inventory);
      const eps = await liveClientEndpoints(ctx.inventory);
      const url = (h: (typeof hosts)[number]) => eps[hosts.indexOf(h)]!;
      const n = await etcdctlNode(ctx.pool);
      const key = `/dpgc/check/${randomBytes(6).toString('hex')}`;
      const value = randomBytes(12).toString('hex');
      const writer = hosts[0]!;
      await putKey(n, url(writer), key, value);
      const written = Date.now();
      try {
        // Serializable reads answer from each member's own state: proof the write reached it.
        const seenAfter = await Promise.all(
          hosts.slice(1).map(async (h) => {
            const seen = await becomes(
              async () => (await getKey(n, url(h), key, { consistency: 's' }).catch(() => undefined)) === value,
              { timeoutMs: Math.max(0, written + 3000 - Date.now()), everyMs: 50 },
              `the key written through ${writer.name} readable on ${h.name}`,
            );
            return { host: h.name, ms: seen ? Date.now() - written : undefined };
          }),
        );
        const late = seenAfter.filter((s) => s.ms === undefined).map((s) => s.host);
        const worst = Math.max(0, ...seenAfter.map((s) => s.ms ?? 0));
        if (late.length) return fail(`written through ${writer.name}, not visible on ${late.join(', ')} within 3 s`, { value: `${late.length} member(s) missing it`, remedy: 'Check `dpgc status` for the etcd members named and read their etcd.log.' });
        return pass(`${worst} ms`, '< 3000 ms', `written through ${writer.name}, read locally on ${seenAfter.map((s) => `${s.host} after ${s.ms} ms`).join(', ')}`);
      } finally {
        await deleteKey(n, url(writer), key).catch(() => {});
      }
    },
  };
}
