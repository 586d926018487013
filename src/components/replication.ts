import { randomBytes } from 'node:crypto';
import type { HostSpec, Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { connect, withClient, type Client } from '../db/client.js';
import { superuserOn } from './endpoints.js';
import { DPGC_SCHEMAS } from '../db/schemas.js';
import { becomes } from '../wait.js';

/**
 * Replication measured, not read off a counter: a marker row is written on
 * the primary and each replica is polled until the marker is visible there.
 * The time from the primary's COMMIT returning to the row being readable is
 * what a client reading from a replica experiences.
 */
export const PROBE_TABLE = 'dpgc.replication_probe';

export interface LagSamples {
  /** Per replica: milliseconds from commit to visible, one per marker. */
  perReplica: Record<string, number[]>;
  /** Markers never seen within the timeout, per replica. */
  missed: Record<string, number>;
}

export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** How long a stalled replica is given to show each later marker. */
const STALLED_LOOK_MS = 200;

export async function measureReplicationLag(
  inv: Pick<Inventory, 'ports'>,
  secrets: Pick<Secrets, 'get'>,
  leader: Pick<HostSpec, 'name' | 'address'>,
  replicas: Pick<HostSpec, 'name' | 'address'>[],
  opts: { samples?: number; timeoutMs?: number } = {},
): Promise<LagSamples> {
  const samples = opts.samples ?? 20;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const primary = await connect(secrets, superuserOn(inv, leader), { applicationName: 'dpgc-lag-probe' });
  const readers: { name: string; c: Client }[] = [];
  try {
    await primary.query(`CREATE SCHEMA IF NOT EXISTS dpgc`);
    await primary.query(`CREATE TABLE IF NOT EXISTS ${PROBE_TABLE} (id int PRIMARY KEY, token text NOT NULL, written_at timestamptz NOT NULL)`);
    for (const r of replicas) readers.push({ name: r.name, c: await connect(secrets, superuserOn(inv, r), { applicationName: 'dpgc-lag-probe' }) });
    const out: LagSamples = { perReplica: Object.fromEntries(replicas.map((r) => [r.name, []])), missed: Object.fromEntries(replicas.map((r) => [r.name, 0])) };
    // Each replica may still be creating the table when the first marker lands: wait for it first.
    await Promise.all(readers.map((r) => until(timeoutMs, async () => (await r.c.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [PROBE_TABLE])).rows[0]?.ok === true)));
    const stalled = new Set<string>();
    for (let i = 0; i < samples; i++) {
      const token = randomBytes(8).toString('hex');
      await primary.query(`INSERT INTO ${PROBE_TABLE} VALUES (1, $1, now()) ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token, written_at = EXCLUDED.written_at`, [token]);
      const committed = performance.now();
      await Promise.all(
        readers.map(async (r) => {
          // A replica that let a whole timeout pass without replaying has stalled: waiting the full
          // timeout for each later marker would only make a failing check take samples × timeout. It
          // gets a short look instead; once it replays a marker again it has its full timeout back.
          const wait = stalled.has(r.name) ? STALLED_LOOK_MS : timeoutMs;
          const seen = await until(wait, async () => (await r.c.query<{ token: string }>(`SELECT token FROM ${PROBE_TABLE} WHERE id = 1`)).rows[0]?.token === token, 2);
          if (seen) {
            out.perReplica[r.name]!.push(performance.now() - committed);
            stalled.delete(r.name);
          } else {
            out.missed[r.name]! += 1;
            stalled.add(r.name);
          }
        }),
      );
    }
    return out;
  } finally {
    await primary.end().catch(() => {});
    for (const r of readers) await r.c.end().catch(() => {});
  }
}

function until(timeoutMs: number, probe: () => Promise<boolean>, pauseMs = 50): Promise<boolean> {
  return becomes(probe, { timeoutMs, everyMs: pauseMs }, 'a replica replaying the probe row');
}

/**
 * Per database: each application table's row count and an order-independent
 * checksum of its rows, and each index with its validity (dpgc's own schemas,
 * db/schemas.ts, left out: its drills write there). Equal maps on two nodes
 * mean the same rows and the same indexes.
 */
export async function dataFingerprint(secrets: Pick<Secrets, 'get'>, inv: Pick<Inventory, 'ports'>, host: Pick<HostSpec, 'name' | 'address'>, db: string): Promise<Record<string, string>> {
  return withClient(secrets, superuserOn(inv, host, db), async (c) => {
    const out: Record<string, string> = {};
    const tables = (
      await c.query<{ t: string }>(
        `SELECT format('%I.%I', schemaname, relname) AS t FROM pg_stat_user_tables WHERE schemaname <> ALL ($1::text[]) ORDER BY 1`,
        [[...DPGC_SCHEMAS, 'pg_catalog', 'information_schema']],
      )
    ).rows.map((r) => r.t);
    for (const t of tables) {
      const r = (await c.query<{ n: string; sum: string }>(`SELECT count(*)::text AS n, md5(coalesce(string_agg(h, '' ORDER BY h), '')) AS sum FROM (SELECT md5(x::text) AS h FROM ${t} x) s`)).rows[0]!;
      out[`table ${t}`] = `${r.n} rows, ${r.sum}`;
    }
    const idx = await c.query<{ i: string; valid: boolean }>(
      `SELECT format('%I.%I', n.nspname, ci.relname) AS i, x.indisvalid AS valid FROM pg_index x JOIN pg_class ci ON ci.oid = x.indexrelid JOIN pg_namespace n ON n.oid = ci.relnamespace
        WHERE n.nspname <> ALL ($1::text[]) ORDER BY 1`,
      [[...DPGC_SCHEMAS, 'pg_catalog', 'information_schema', 'pg_toast']],
    );
    for (const r of idx.rows) out[`index ${r.i}`] = r.valid ? 'valid' : 'INVALID';
    return out;
  });
}

/**
 * One comparison of a database: the leader's fingerprint before and after the
 * replicas (or a restored copy) were read, and each replica's. A table or index the leader showed
 * the same both times must match on every replica (a difference is real); one
 * that changed in between is `busy`, to be compared again. `only`: the keys
 * still to compare (all on the first attempt).
 */
export function settleComparison(
  db: string,
  before: Record<string, string>,
  after: Record<string, string>,
  replicas: Record<string, Record<string, string>>,
  only?: string[],
  reference = 'leader has',
): { diffs: string[]; busy: string[] } {
  const keys = new Set(only ?? [...Object.keys(before), ...Object.keys(after), ...Object.values(replicas).flatMap((r) => Object.keys(r))]);
  const busy = [...keys].filter((k) => before[k] !== after[k]);
  const stable = (fp: Record<string, string>) => Object.fromEntries(Object.entries(fp).filter(([k]) => keys.has(k) && !busy.includes(k)));
  const diffs = Object.entries(replicas).flatMap(([name, fp]) => compareFingerprints(`${name}/${db}`, stable(before), stable(fp), reference));
  return { diffs, busy };
}

/** `reference` names where `want` comes from: the leader, or the leader at a time (the PITR drill). */
export function compareFingerprints(where: string, want: Record<string, string>, got: Record<string, string>, reference = 'leader has'): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(want)) if (got[k] !== v) out.push(`${where}: ${k} is ${got[k] ?? 'missing'}, ${reference} ${v}`);
  for (const k of Object.keys(got)) if (!(k in want)) out.push(`${where}: ${k} exists only here`);
  return out;
}

/** Waits until a replica has replayed everything the primary had written when asked (so fingerprints compare like with like). */
export async function waitForReplay(secrets: Pick<Secrets, 'get'>, inv: Pick<Inventory, 'ports'>, leader: Pick<HostSpec, 'name' | 'address'>, replicas: Pick<HostSpec, 'name' | 'address'>[], timeoutMs = 10_000): Promise<string[]> {
  const lsn = await withClient(secrets, superuserOn(inv, leader), async (c) => (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l);
  const behind: string[] = [];
  await Promise.all(
    replicas.map(async (r) => {
      const ok = await withClient(secrets, superuserOn(inv, r), (c) =>
        until(timeoutMs, async () => (await c.query<{ ok: boolean }>(`SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok`, [lsn])).rows[0]?.ok === true, 100),
      ).catch(() => false);
      if (!ok) behind.push(r.name);
    }),
  );
  return behind;
}
