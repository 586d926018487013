import { randomBytes } from 'node:crypto';
import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { dataFingerprint, settleComparison } from './replication.js';
import { withClient } from '../db/client.js';
import { HostError } from '../errors.js';
import type { HostPool } from '../hosts/pool.js';
import { becomes, sleep, waitUntil } from '../wait.js';
import { currentLeader } from './cluster.js';
import { DATABASES, superuserOn } from './endpoints.js';
import { dropScratch, restoreScratch, scratchEndpoint, type ScratchInstance } from './pitr.js';

/**
 * The PITR drill: marker rows, a time T, more marker rows; a restore to T in a
 * scratch instance must hold every marker before T, none after, and the
 * application tables exactly as they were at T. The markers live in the
 * `dpgc` schema of the `postgres` database, which the data fingerprints leave
 * out, so the drill never changes what it compares.
 *
 * The application may be writing all along (a production cluster, a bench
 * writer): the drill never stops it. The leader's tables are fingerprinted
 * just before T and just after; one the same both times was that at T, and
 * must be that in the copy. One that changed in between was being written at
 * T: what it held at T cannot be read back, so it is reported as not
 * comparable rather than as a difference (as s3.data.identical does).
 */
type Inv = Pick<Inventory, 'cluster' | 'hosts' | 'ports' | 'postgres' | 'network' | 'file'>;

const MARKERS = 5;

export interface DrillResult {
  ok: boolean;
  problems: string[];
  /** Application tables written while T was taken: not comparable, not wrong. */
  busy: string[];
  target: string;
  scratch: ScratchInstance;
}

/** Forces a WAL switch on the leader and waits until the closed segment is archived; returns its name. */
export async function switchAndWaitArchived(inv: Pick<Inventory, 'hosts' | 'ports'>, secrets: Pick<Secrets, 'get'>, timeoutMs = 60_000): Promise<{ wal: string; ms: number }> {
  const leader = await currentLeader(inv);
  const started = Date.now();
  return withClient(secrets, superuserOn(inv, leader), async (c) => {
    // A commit first (txid_current() assigns a transaction id, so its commit is logged with the time now):
    // recovery to a time stops at the first commit after it, and ends in error when the WAL holds none.
    await c.query('SELECT txid_current()');
    const wal = (await c.query<{ w: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS w')).rows[0]!.w;
    return waitUntil(
      async (seen) => {
        const a = (
          await c.query<{ last: string | null; failed: string | null; failed_at: Date | null; archived_at: Date | null }>(
            'SELECT last_archived_wal AS last, last_failed_wal AS failed, last_failed_time AS failed_at, last_archived_time AS archived_at FROM pg_stat_archiver',
          )
        ).rows[0]!;
        const failing = a.failed_at && (!a.archived_at || a.failed_at > a.archived_at);
        seen(`last archived ${a.last ?? 'none'}${failing ? `, archiving of ${a.failed} failing since ${a.failed_at!.toISOString()}` : ''}`);
        // Segment names sort in WAL order (timeline, then position).
        return a.last !== null && a.last >= wal ? { wal, ms: Date.now() - started } : undefined;
      },
      { timeoutMs, everyMs: 250 },
      `${leader.name} archiving WAL segment ${wal}`,
    );
  });
}

export async function runPitrDrill(inv: Inv, pool: HostPool, secrets: Pick<Secrets, 'get'>): Promise<DrillResult> {
  const leader = await currentLeader(inv);
  const run = randomBytes(4).toString('hex');
  const q = (sql: string, params: unknown[] = []) => withClient(secrets, superuserOn(inv, leader), async (c) => (await c.query<Record<string, unknown>>(sql, params)).rows);
  await q('CREATE SCHEMA IF NOT EXISTS dpgc');
  await q('CREATE TABLE IF NOT EXISTS dpgc.pitr_marker (run text, seq int, phase text, at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run, seq))');
  // Markers of drills more than a day old say nothing any more.
  await q("DELETE FROM dpgc.pitr_marker WHERE at < now() - interval '1 day'");
  await q(`INSERT INTO dpgc.pitr_marker (run, seq, phase) SELECT $1, g, 'before' FROM generate_series(1, ${MARKERS}) g`, [run]);
  const fingerprints = async () => Object.fromEntries(await Promise.all(Object.values(DATABASES).map(async (d) => [d.name, await dataFingerprint(secrets, inv, leader, d.name)] as const)));
  // T strictly between the two groups of marker commits, a clear second from each.
  await sleep(1100);
  const before = await fingerprints();
  const t = (await q('SELECT clock_timestamp() AS t'))[0]!['t'] as Date;
  await sleep(1100);
  // A commit is stamped with its time before it waits for the synchronous standby, and is visible only
  // after: one stamped before T may still be invisible now, yet be in the copy. Those are waited out.
  await becomes(
    async () => Number((await q("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND xact_start <= $1", [t]))[0]!['n']) === 0,
    { timeoutMs: 10_000, everyMs: 100 },
    'commits from before T still waiting for the synchronous standby',
  ).catch(() => undefined);
  const after = await fingerprints();
  await q(`INSERT INTO dpgc.pitr_marker (run, seq, phase) SELECT $1, g, 'after' FROM generate_series(${MARKERS + 1}, ${2 * MARKERS}) g`, [run]);
  // Recovery to T needs WAL from past T in the repository, or it ends before reaching its target.
  await switchAndWaitArchived(inv, secrets);
  const scratch = await restoreScratch(inv, pool, secrets, { type: 'time', time: t, text: t.toISOString() });
  const problems: string[] = [];
  const busy: string[] = [];
  try {
    const host = scratch.host;
    const rows = await withClient(secrets, scratchEndpoint(inv, host, 'postgres'), async (c) =>
      (await c.query<{ phase: string; n: string }>('SELECT phase, count(*)::text AS n FROM dpgc.pitr_marker WHERE run = $1 GROUP BY phase', [run])).rows,
    );
    const n = (p: string) => Number(rows.find((r) => r.phase === p)?.n ?? 0);
    if (n('before') !== MARKERS) problems.push(`${n('before')} of ${MARKERS} markers written before T are in the restored copy`);
    if (n('after') !== 0) problems.push(`${n('after')} markers written after T are in the restored copy`);
    for (const d of Object.values(DATABASES)) {
      const got = await dataFingerprint(secrets, { ports: { ...inv.ports, postgres: inv.ports.restore_scratch } }, host, d.name);
      const r = settleComparison(d.name, before[d.name]!, after[d.name]!, { restored: got }, undefined, 'at T it was');
      problems.push(...r.diffs);
      busy.push(...r.busy.map((k) => `${d.name}: ${k.replace(/^table /, '')}`));
    }
  } finally {
    await dropScratch(inv, pool);
  }
  if (!scratch) throw new HostError('no scratch instance');
  return { ok: problems.length === 0, problems, busy, target: t.toISOString(), scratch };
}
