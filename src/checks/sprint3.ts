import { currentLeader } from '../components/cluster.js';
import { appViaPgbouncer, DATABASES, superuserOn, type DatabaseKey } from '../components/endpoints.js';
import { clientEndpoints, etcdctlNode, keysWithPrefix } from '../components/etcd.js';
import { BACKENDS, READ_ONLY_SUFFIX, showStat, upServers } from '../components/haproxy.js';
import { memberStatus, PATRONI_NAMESPACE, restTarget } from '../components/patroni.js';
import { topology } from '../components/patroni-cluster.js';
import { dcsInitializeKey } from '../components/takeover.js';
import { extensionName } from '../components/vector.js';
import type { RunContext } from '../context.js';
import { withClient, type Endpoint } from '../db/client.js';
import { etcdHealthCheck, haProcessesCheck, timingsCheck } from './ha.js';
import { dataFingerprint, measureReplicationLag, percentile, waitForReplay } from './replication.js';
import { targetsUpCheck } from './sprint1.js';
import { fail, pass, warn, type Check } from './types.js';

/**
 * Sprint 3's criteria, measured on the running cluster from the control
 * machine. A planned switchover is not among them: it interrupts writes for
 * seconds, so it is proved by the integration test (and by `dpgc
 * failover-test --mode switchover`), not on every verify.
 */
export const LAG_P99_MS = 1000;
const DBS = Object.keys(DATABASES) as DatabaseKey[];

type Ctx = RunContext;
const pgHosts = (ctx: Ctx) => ctx.inventory.hosts.filter((h) => h.roles.includes('postgres'));
const haproxyHost = (ctx: Ctx) => ctx.inventory.hosts.find((h) => h.roles.includes('haproxy'))!;
const via = (ctx: Ctx, port: number, database = 'postgres'): Endpoint => ({ ...superuserOn(ctx.inventory, haproxyHost(ctx), database), port, name: `${haproxyHost(ctx).name}:${port}` });

interface Landing {
  recovery: boolean;
  addr: string;
}
async function landing(ctx: Ctx, ep: Endpoint): Promise<Landing> {
  return withClient(ctx.secrets, ep, async (c) => {
    const r = (await c.query<{ r: boolean; a: string }>('SELECT pg_is_in_recovery() AS r, host(inet_server_addr()) AS a')).rows[0]!;
    return { recovery: r.r, addr: r.a };
  });
}
const nameOf = (ctx: Ctx, addr: string) => pgHosts(ctx).find((h) => h.address === addr)?.name ?? addr;

export function sprint3Checks(_ctx?: RunContext): Check[] {
  return [
    etcdHealthCheck(3, 's3.etcd.healthy'),
    {
      id: 's3.patroni.registered',
      title: 'Every postgres host is registered in etcd under the cluster scope',
      sprint: 3,
      async run(ctx) {
        const prefix = `${PATRONI_NAMESPACE}${ctx.inventory.cluster}/members/`;
        const keys = await keysWithPrefix(await etcdctlNode(ctx.pool), clientEndpoints(ctx.inventory), prefix);
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
    },
    {
      id: 's3.patroni.leader-key',
      title: 'Patroni cannot overwrite a newer leader’s key when a stalled leader resumes (patroni/patroni#2689)',
      sprint: 3,
      async run(ctx) {
        const versions = await Promise.all(
          pgHosts(ctx).map(async (h) => {
            const s = await memberStatus(restTarget(ctx.inventory, h)).catch(() => undefined);
            return { name: h.name, version: s?.patroni?.version };
          }),
        );
        const affected = versions.filter((v) => v.version !== undefined && !hasLeaderKeyFix(v.version));
        const value = [...new Set(versions.map((v) => v.version ?? 'unknown'))].join(', ');
        const threshold = `≥ ${LEADER_KEY_FIX.join('.')}`;
        if (affected.length) {
          // A warning, not a failure: the package the host's apt offers is what runs; dpgc reports the exposure.
          return warn(
            `Patroni ${affected.map((v) => `${v.version} on ${v.name}`).join(', ')}: a leader that stalls past ttl (a paused VM, a hung host) and then resumes can write its leader key over the new leader's, and writes the new leader acknowledged are lost (\`dpgc failover-test --mode freeze\` shows it)`,
            { value, threshold, remedy: 'Install Patroni 3.0.3 or later (the PostgreSQL project\'s apt repository has it for this release), and enable a watchdog so a hung primary is reset rather than resumed.' },
          );
        }
        return pass(value, threshold);
      },
    },
    {
      id: 's3.patroni.topology',
      title: 'One leader, every replica streaming, synchronous standby assigned',
      sprint: 3,
      async run(ctx) {
        const t = await topology(ctx.inventory, ctx.secrets);
        const want = `1 leader, ${pgHosts(ctx).length - 1} streaming, ${ctx.inventory.postgres.synchronous_node_count} sync`;
        const value = `leader ${t.leader ?? 'none'}, ${t.streaming.length} streaming, ${t.sync.length} sync (${t.sync.join(', ') || 'none'})`;
        if (t.problems.length) return fail(t.problems.join('; '), { value, threshold: want, remedy: 'Run `dpgc status` for the whole picture; `dpgc sprint 3` restarts Patroni where it is down.' });
        return pass(value, want);
      },
    },
    {
      id: 's3.replication.lag',
      title: `Replication lag measured with markers: p99 under ${LAG_P99_MS} ms on every replica`,
      sprint: 3,
      async run(ctx) {
        const leader = await currentLeader(ctx.inventory);
        const replicas = pgHosts(ctx).filter((h) => h.name !== leader.name);
        const s = await measureReplicationLag(ctx.inventory, ctx.secrets, leader, replicas);
        const per = Object.entries(s.perReplica).map(([n, xs]) => ({ n, p99: percentile(xs, 99), missed: s.missed[n] ?? 0 }));
        const worst = Math.max(...per.map((p) => (p.missed ? Infinity : p.p99)));
        const detail = per.map((p) => `${p.n} p99 ${p.p99.toFixed(1)} ms${p.missed ? `, ${p.missed} markers never seen` : ''}`).join('; ');
        const value = Number.isFinite(worst) ? `${worst.toFixed(1)} ms` : 'markers lost';
        if (!(worst < LAG_P99_MS)) return fail(detail, { value, threshold: `< ${LAG_P99_MS} ms`, remedy: 'Look at the replicas named in `dpgc status` (lag, streaming state) and at their hosts’ load.' });
        return pass(value, `< ${LAG_P99_MS} ms`, detail);
      },
    },
    {
      id: 's3.routing.primary',
      title: `HAProxy :5000 lands on the leader only`,
      sprint: 3,
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
    },
    {
      id: 's3.routing.replicas',
      title: `HAProxy :5001 lands only on replicas`,
      sprint: 3,
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
    },
    {
      id: 's3.pgbouncer.primary',
      title: 'PgBouncer reaches the leader through HAProxy (and its read-only aliases a replica)',
      sprint: 3,
      async run(ctx) {
        const leader = await currentLeader(ctx.inventory);
        const pgb = ctx.inventory.hosts.find((h) => h.roles.includes('pgbouncer'))!;
        const problems: string[] = [];
        for (const k of DBS) {
          const rw = appViaPgbouncer(ctx.inventory, pgb, k);
          const l = await landing(ctx, rw);
          if (l.recovery || l.addr !== leader.address) problems.push(`${rw.database} landed on ${nameOf(ctx, l.addr)}, not the leader ${leader.name}`);
          const ro = await landing(ctx, { ...rw, database: `${rw.database}${READ_ONLY_SUFFIX}` });
          if (!ro.recovery) problems.push(`${rw.database}${READ_ONLY_SUFFIX} landed on the primary ${nameOf(ctx, ro.addr)}`);
        }
        if (problems.length) return fail(problems.join('; '), { remedy: 'Run `dpgc sprint 3`: it re-points PgBouncer at HAProxy.' });
        return pass(`via ${haproxyHost(ctx).name}:${ctx.inventory.ports.haproxy_primary} to ${leader.name}`);
      },
    },
    {
      id: 's3.vector.everywhere',
      title: 'The vector extension is present in both databases on every node',
      sprint: 3,
      async run(ctx) {
        const ext = extensionName(ctx.inventory.postgres.vector);
        const missing: string[] = [];
        const versions = new Set<string>();
        for (const h of pgHosts(ctx)) {
          for (const k of DBS) {
            const v = await withClient(ctx.secrets, superuserOn(ctx.inventory, h, DATABASES[k].name), async (c) => (await c.query<{ v: string }>('SELECT extversion AS v FROM pg_extension WHERE extname = $1', [ext])).rows[0]?.v);
            if (v) versions.add(v);
            else missing.push(`${h.name}/${DATABASES[k].name}`);
          }
        }
        if (missing.length) return fail(`${ext} missing in ${missing.join(', ')}`, { remedy: 'Run `dpgc sprint 0` (it creates the extension on the primary; replicas get it by replication).' });
        return pass(`${ext} ${[...versions].join(', ')} on ${pgHosts(ctx).length} nodes`);
      },
    },
    {
      id: 's3.data.identical',
      title: 'The sprint-0 data and indexes are identical on every node (row counts and checksums)',
      sprint: 3,
      async run(ctx) {
        const leader = await currentLeader(ctx.inventory);
        const replicas = pgHosts(ctx).filter((h) => h.name !== leader.name);
        const behind = await waitForReplay(ctx.secrets, ctx.inventory, leader, replicas);
        const diffs: string[] = [];
        let tables = 0;
        for (const k of DBS) {
          const db = DATABASES[k].name;
          const want = await dataFingerprint(ctx.secrets, ctx.inventory, leader, db);
          tables += Object.keys(want).filter((x) => x.startsWith('table ')).length;
          if (!Object.keys(want).length) diffs.push(`${leader.name}/${db}: no tables at all`);
          for (const r of replicas) diffs.push(...compareFingerprints(`${r.name}/${db}`, want, await dataFingerprint(ctx.secrets, ctx.inventory, r, db)));
        }
        if (diffs.length) {
          return fail(`${behind.length ? `still replaying: ${behind.join(', ')}; ` : ''}${diffs.slice(0, 8).join('; ')}${diffs.length > 8 ? ` (and ${diffs.length - 8} more)` : ''}`, {
            value: `${diffs.length} difference(s)`,
            remedy: 'A replica that differs from the leader must be re-cloned (`patronictl reinit`) after you have found why.',
          });
        }
        return pass(`${tables} tables × ${pgHosts(ctx).length} nodes`, 'identical to the leader');
      },
    },
    {
      id: 's3.system.identifier',
      title: 'Every node carries the system identifier Patroni adopted from the sprint-0 instance',
      sprint: 3,
      async run(ctx) {
        const dcs = await dcsInitializeKey(ctx.inventory, ctx.pool);
        if (!dcs) return fail('no initialize key in etcd: Patroni has not taken the cluster over', { remedy: 'Run `dpgc sprint 3`.' });
        const other: string[] = [];
        for (const h of pgHosts(ctx)) {
          const id = await withClient(ctx.secrets, superuserOn(ctx.inventory, h), async (c) => (await c.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id);
          if (id !== dcs) other.push(`${h.name} has ${id}`);
        }
        if (other.length) return fail(`the DCS records ${dcs}; ${other.join(', ')}`, { value: dcs, remedy: 'A node with another system identifier is another database: stop Patroni there and investigate before anything else.' });
        return pass(dcs);
      },
    },
    timingsCheck(3, 's3.timings.rto'),
    haProcessesCheck(3, 's3.processes'),
    targetsUpCheck('s3.prometheus.targets', 3, 'Prometheus scrapes Patroni on every member'),
  ];
}

export function compareFingerprints(where: string, want: Record<string, string>, got: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(want)) if (got[k] !== v) out.push(`${where}: ${k} is ${got[k] ?? 'missing'}, leader has ${v}`);
  for (const k of Object.keys(got)) if (!(k in want)) out.push(`${where}: ${k} exists only here`);
  return out;
}

/** The first Patroni release whose etcd3 leader update is conditional (patroni/patroni#2689). */
export const LEADER_KEY_FIX = [3, 0, 3] as const;

export function hasLeaderKeyFix(version: string): boolean {
  const v = version.split(/[.+~-]/).slice(0, 3).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) {
    if ((v[i] ?? 0) !== LEADER_KEY_FIX[i]) return (v[i] ?? 0) > LEADER_KEY_FIX[i]!;
  }
  return true;
}
