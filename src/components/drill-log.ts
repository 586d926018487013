import type { Inventory } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { withClient } from '../db/client.js';
import { currentLeader } from './cluster.js';
import { superuserOn } from './endpoints.js';

/**
 * The cluster keeps its own record of the drills run against it, in a table
 * of the `postgres` database (`dpgc.drill_log`). It replicates like any other
 * data, survives failovers, and is the same whichever machine runs
 * `dpgc readiness` (a CI runner has no state file of the operator's laptop).
 * `dpgc failover-test` writes a row per drill; readiness asks when each mode
 * last passed.
 */
export const DRILL_LOG = 'dpgc.drill_log';

export interface DrillRecord {
  /** A drill mode (`kill`, `switchover`, …) or another kind of proof (`pitr`). */
  mode: string;
  at: Date;
  passed: boolean;
  /** One line for the report: RTO, lost writes, who led before and after. */
  summary: string;
  /**
   * What the HTML report draws (timeline, acknowledged writes per 100 ms,
   * verdict): `drillDetail` in src/drills/report.ts. Absent on rows written
   * before the column existed; the report says so instead of drawing.
   */
  detail?: unknown;
}

/** A row as `dpgc report` reads it. */
export type DrillLogRow = DrillRecord & { id: number };

type Inv = Pick<Inventory, 'hosts' | 'ports'>;

const CREATE = `CREATE SCHEMA IF NOT EXISTS dpgc;
CREATE TABLE IF NOT EXISTS ${DRILL_LOG} (
  id bigserial PRIMARY KEY,
  mode text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  passed boolean NOT NULL,
  summary text NOT NULL
);
ALTER TABLE ${DRILL_LOG} ADD COLUMN IF NOT EXISTS detail jsonb`;

/** One row on the current leader; a drill's result is never lost because the record could not be written (the caller warns). */
export async function recordDrill(inv: Inv, secrets: Pick<Secrets, 'get'>, r: Omit<DrillRecord, 'at'>): Promise<void> {
  const leader = await currentLeader(inv);
  await withClient(secrets, superuserOn(inv, leader), async (c) => {
    await c.query(CREATE);
    await c.query(`INSERT INTO ${DRILL_LOG} (mode, passed, summary, detail) VALUES ($1, $2, $3, $4)`, [r.mode, r.passed, r.summary, r.detail === undefined ? null : JSON.stringify(r.detail)]);
  });
}

/** For each mode, the newest passed drill (and the newest drill of any verdict), read from the leader. */
export async function lastDrills(inv: Inv, secrets: Pick<Secrets, 'get'>): Promise<Map<string, { lastPassed?: DrillRecord; last: DrillRecord }>> {
  const leader = await currentLeader(inv);
  const rows = await withClient(secrets, superuserOn(inv, leader), async (c) => {
    const exists = (await c.query<{ t: string | null }>(`SELECT to_regclass('${DRILL_LOG}')::text AS t`)).rows[0]?.t;
    if (!exists) return [];
    return (await c.query<{ mode: string; at: Date; passed: boolean; summary: string }>(`SELECT mode, at, passed, summary FROM ${DRILL_LOG} ORDER BY at`)).rows;
  });
  const out = new Map<string, { lastPassed?: DrillRecord; last: DrillRecord }>();
  for (const r of rows) {
    const prev = out.get(r.mode);
    out.set(r.mode, { last: r, ...(r.passed ? { lastPassed: r } : prev?.lastPassed ? { lastPassed: prev.lastPassed } : {}) });
  }
  return out;
}

/**
 * The newest `limit` drills, newest first, with their detail. Read through
 * to_jsonb so a table from before the detail column (never altered: nothing
 * wrote to it since) reads too.
 */
export async function drillHistory(inv: Inv, secrets: Pick<Secrets, 'get'>, limit = 50): Promise<DrillLogRow[]> {
  const leader = await currentLeader(inv);
  return withClient(secrets, superuserOn(inv, leader), async (c) => {
    const exists = (await c.query<{ t: string | null }>(`SELECT to_regclass('${DRILL_LOG}')::text AS t`)).rows[0]?.t;
    if (!exists) return [];
    const rows = (
      await c.query<{ id: string; mode: string; at: Date; passed: boolean; summary: string; detail: unknown }>(
        `SELECT id::text, mode, at, passed, summary, to_jsonb(l) -> 'detail' AS detail FROM ${DRILL_LOG} l ORDER BY at DESC, id DESC LIMIT $1`,
        [limit],
      )
    ).rows;
    return rows.map((r) => ({ id: Number(r.id), mode: r.mode, at: r.at, passed: r.passed, summary: r.summary, ...(r.detail === null || r.detail === undefined ? {} : { detail: r.detail }) }));
  });
}
