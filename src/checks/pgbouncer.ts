import { appViaPgbouncer, DATABASES, pgbouncerAdmin } from '../components/endpoints.js';
import { type RunContext } from '../context.js';
import { connect, withClient } from '../db/client.js';
import { formatReport, poolTest } from '../pooltest/run.js';
import { fail, pass, type Check, type CheckResult } from './types.js';
import { currentLeader } from '../components/cluster.js';
import { READ_ONLY_SUFFIX } from '../components/haproxy.js';
import { DBS, haproxyHost, landing, nameOf } from './common.js';

/**
 * PgBouncer's criteria: every database pooled, SCRAM only (a wrong password
 * refused), the pool test's agents served without a timeout (sprint 1), and
 * once Patroni runs the cluster its databases landing on the leader through
 * HAProxy, its read-only aliases on a replica (sprint 3).
 */

/** Run per pgbouncer host; the first failure wins, passes are joined. */
async function perPgbouncer(ctx: RunContext, fn: (h: { name: string; address: string }) => Promise<CheckResult>): Promise<CheckResult> {
  const out: CheckResult[] = [];
  for (const h of ctx.pool.specs('pgbouncer')) {
    const r = await fn(h);
    if (r.verdict === 'fail') return r;
    out.push(r);
  }
  return pass(out.map((r) => r.value).join('; '), out[0]?.threshold);
}

export const pgbouncerPools: Check = {
  id: 's1.pgbouncer.pools',
  title: 'PgBouncer listens and answers SHOW POOLS, both databases routed',
  sprint: 1,
  kind: 'state',
  run: (ctx) =>
    perPgbouncer(ctx, async (h) => {
      const where = `${h.name} ${h.address}:${ctx.inventory.ports.pgbouncer}`;
      const { pools, dbs } = await withClient(ctx.secrets, pgbouncerAdmin(ctx.inventory, h), async (c) => ({
        pools: (await c.query('SHOW POOLS')).rows.length,
        dbs: (await c.query<{ name: string }>('SHOW DATABASES')).rows.map((r) => r.name),
      }));
      const missing = DBS.map((k) => DATABASES[k].name).filter((d) => !dbs.includes(d));
      if (missing.length) return fail(`PgBouncer on ${where} does not route ${missing.join(', ')}`, { remedy: 'Run `dpgc sprint 1` to rewrite its configuration.' });
      return pass(`${where}: ${pools} pools, ${DBS.length} databases`, 'answers SHOW POOLS');
    }),
};

export const pgbouncerScram: Check = {
  id: 's1.pgbouncer.scram',
  title: 'Clients authenticate to PgBouncer with SCRAM; a wrong password is refused',
  sprint: 1,
  kind: 'read',
  run: (ctx) =>
    perPgbouncer(ctx, async (h) => {
      const authType = await withClient(ctx.secrets, pgbouncerAdmin(ctx.inventory, h), async (c) =>
        String((await c.query<{ key: string; value: string }>('SHOW CONFIG')).rows.find((r) => r.key === 'auth_type')?.value),
      );
      if (authType !== 'scram-sha-256') return fail(`PgBouncer on ${h.name} has auth_type = ${authType}`, { value: authType, threshold: 'scram-sha-256' });
      // Both databases at once: each login waits on PgBouncer and PostgreSQL, not on this machine.
      const refused = await Promise.all(
        DBS.map(async (k) => {
          const ep = appViaPgbouncer(ctx.inventory, h, k);
          await withClient(ctx.secrets, ep, (c) => c.query('SELECT 1'));
          // The cluster CA too: once sprint 5 requires TLS, a plaintext attempt is refused before any password is asked.
          const wrong = await connect({ get: async () => `wrong-${Date.now()}-password`, clusterCa: () => ctx.secrets.clusterCa() }, ep, { timeoutMs: 15_000 }).then(
            async (c) => {
              await c.end();
              return 'accepted';
            },
            (e: Error) => e.message,
          );
          if (wrong === 'accepted') return fail(`PgBouncer on ${h.name} accepted a wrong password for ${ep.user}@${ep.database}`, { remedy: 'Check auth_type and the auth file; never trust or md5.' });
          if (!/password authentication failed|SASL|SCRAM/i.test(wrong)) return fail(`a wrong password for ${ep.user}@${ep.database} failed for another reason: ${wrong}`);
          return undefined;
        }),
      );
      const first = refused.find((r) => r !== undefined);
      if (first) return first;
      return pass(`${h.name}: scram-sha-256, ${DBS.length} owners in, wrong password refused`, 'SCRAM only');
    }),
};

/**
 * Forty agents connected at once, each through its own client, every one
 * sustained and no error: two seconds give each agent about ten operations
 * (mean think time 100 ms) with all forty open. Longer runs, to find where a
 * pool gives out, are `dpgc pool-test`'s job, not every verify's.
 */
export const VERIFY_POOL = { agents: 40, durationS: 2 };

export const poolTestCheck: Check = {
  id: 's1.pool.test',
  title: `${VERIFY_POOL.agents} concurrent agents through PgBouncer: no timeouts, no pool exhaustion, no errors`,
  sprint: 1,
  kind: 'load',
  async run(ctx) {
    const r = await poolTest(ctx, VERIFY_POOL);
    const value = `${r.agentsSustained}/${r.agents} agents, ${r.opsPerSecond} ops/s, p99 ${r.latencyMs.p99} ms, ${r.errors} errors`;
    return r.passed ? pass(value, `${VERIFY_POOL.agents} agents, 0 errors`) : fail(formatReport(r), { value, threshold: `${VERIFY_POOL.agents} agents, 0 errors` });
  },
};

/**
 * PgBouncer's routing once Patroni runs the cluster (sprint 3): its
 * read-write databases land on the leader through HAProxy, its read-only
 * aliases on a replica. (Its pools, SCRAM and load are sprint 1's checks.)
 */
export const pgbouncerPrimary: Check = {
  id: 's3.pgbouncer.primary',
  title: 'PgBouncer reaches the leader through HAProxy (and its read-only aliases a replica)',
  sprint: 3,
  kind: 'state',
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
};
