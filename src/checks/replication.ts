import { currentLeader } from '../components/cluster.js';
import { DATABASES } from '../components/endpoints.js';
import { dataFingerprint, measureReplicationLag, percentile, settleComparison, waitForReplay } from '../components/replication.js';
import { fail, pass, warn, type Check } from './types.js';
import { DBS, pgHosts } from './common.js';

/**
 * Replication's criteria (sprint 3): lag measured by marker rows (not read
 * off a counter), and the sprint-0 data identical on every member. A planned
 * switchover is not among sprint 3's criteria: it interrupts writes for
 * seconds, so it is proved by the integration test (and by `dpgc
 * failover-test --mode switchover`), not on every verify.
 */
export const LAG_P99_MS = 1000;

export const replicationLag: Check = {
  id: 's3.replication.lag',
  title: `Replication lag measured with markers: p99 under ${LAG_P99_MS} ms on every replica`,
  sprint: 3,
  kind: 'load',
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
};

/** Attempts at a table the application keeps writing before it is reported as not comparable. */
const BUSY_ATTEMPTS = 3;

export const dataIdentical: Check = {
  id: 's3.data.identical',
  title: 'The sprint-0 data and indexes are identical on every node (row counts and checksums)',
  sprint: 3,
  kind: 'read',
  // Test rows of a concurrent load (round trip, pool test) would show as differences while they replicate.
  exclusive: true,
  async run(ctx) {
    const leader = await currentLeader(ctx.inventory);
    const replicas = pgHosts(ctx).filter((h) => h.name !== leader.name);
    const diffs: string[] = [];
    const busy: string[] = [];
    const behind = new Set<string>();
    let tables = 0;
    for (const k of DBS) {
      const db = DATABASES[k].name;
      const fp = (h: typeof leader) => dataFingerprint(ctx.secrets, ctx.inventory, h, db);
      let keys: string[] | undefined;
      for (let attempt = 1; attempt <= BUSY_ATTEMPTS; attempt++) {
        // The leader before and after the replicas are read: a table that did not change in between
        // is compared exactly (the replicas have replayed at least what "before" saw, and cannot be
        // ahead of the leader); one that changed is being written right now and is tried again.
        const before = await fp(leader);
        for (const b of await waitForReplay(ctx.secrets, ctx.inventory, leader, replicas)) behind.add(b);
        const got = Object.fromEntries(await Promise.all(replicas.map(async (r) => [r.name, await fp(r)] as const)));
        const after = await fp(leader);
        if (attempt === 1) {
          tables += Object.keys(before).filter((x) => x.startsWith('table ')).length;
          if (!Object.keys(before).length) diffs.push(`${leader.name}/${db}: no tables at all`);
        }
        const r = settleComparison(db, before, after, got, keys);
        diffs.push(...r.diffs);
        keys = r.busy;
        if (!keys.length) break;
      }
      busy.push(...(keys ?? []).map((x) => `${db}: ${x.replace(/^table /, '')}`));
    }
    const stillReplaying = behind.size ? `still replaying: ${[...behind].join(', ')}; ` : '';
    if (diffs.length) {
      return fail(`${stillReplaying}${diffs.slice(0, 8).join('; ')}${diffs.length > 8 ? ` (and ${diffs.length - 8} more)` : ''}`, {
        value: `${diffs.length} difference(s)`,
        remedy: 'A replica that differs from the leader must be re-cloned (`patronictl reinit`) after you have found why.',
      });
    }
    if (busy.length) {
      return warn(`${tables - busy.length} of ${tables} tables identical on ${pgHosts(ctx).length} nodes; not comparable, written during each of ${BUSY_ATTEMPTS} attempts: ${busy.join(', ')}`, {
        value: `${busy.length} table(s) busy`,
        remedy: 'Run `dpgc verify --sprint 3` again when the application writes less, to compare those tables too.',
      });
    }
    return pass(`${tables} tables × ${pgHosts(ctx).length} nodes`, 'identical to the leader');
  },
};
