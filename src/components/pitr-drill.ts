import { randomBytes } from 'node:crypto';
import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { dataFingerprint } from './replication.js';
import { withClient } from '../db/client.js';
import { HostError } from '../errors.js';
import type { HostPool } from '../hosts/pool.js';
import { sleep, waitUntil } from '../wait.js';
import { currentLeader } from './cluster.js';
import { DATABASES, superuserOn } from './endpoints.js';
import { dropScratch, restoreScratch, scratchEndpoint, type ScratchInstance } from './pitr.js';

/**
 * The PITR drill: marker rows, a time T, more marker rows; a restore to T in a
 * scratch instance must hold every marker before T, none after, and the
 * application tables exactly as they were at T. The markers live in the
 * `dpgc` schema of the `postgres` database, which the data fingerprints leave
 * out, so the drill never changes what it compares.
 */
type Inv = Pick<Inventory, 'cluster' | 'hosts' | 'ports' | 'postgres' | 'network' | 'file'>;

const MARKERS = 5;

export interface DrillResult {
  ok: boolean;
  problems: string[];
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
  const atT: Record<string, Record<string, string>> = {};
  for (const d of Object.values(DATABASES)) atT[d.name] = await dataFingerprint(secrets, inv, leader, d.name);
  // T strictly between the two groups of commits, a clear second from each.
  await sleep(1100);
  const t = (await q('SELECT clock_timestamp() AS t'))[0]!['t'] as Date;
  await sleep(1100);
  await q(`INSERT INTO dpgc.pitr_marker (run, seq, phase) SELECT $1, g, 'after' FROM generate_series(${MARKERS + 1}, ${2 * MARKERS}) g`, [run]);
  // Recovery to T needs WAL from past T in the repository, or it ends before reaching its target.
  await switchAndWaitArchived(inv, secrets);
  const scratch = await restoreScratch(inv, pool, secrets, { type: 'time', time: t, text: t.toISOString() });
  const problems: string[] = [];
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
      const diff = Object.keys({ ...atT[d.name], ...got }).filter((k) => atT[d.name]![k] !== got[k]);
      if (diff.length) problems.push(`${d.name}: ${diff.slice(0, 3).map((k) => `${k} was ${atT[d.name]![k] ?? 'absent'} at T, restored ${got[k] ?? 'absent'}`).join('; ')}`);
    }
  } finally {
    await dropScratch(inv, pool);
  }
  if (!scratch) throw new HostError('no scratch instance');
  return { ok: problems.length === 0, problems, target: t.toISOString(), scratch };
}
