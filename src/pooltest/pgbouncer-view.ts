import type { Secrets } from '../config/secrets.js';
import { connect, type Client, type Endpoint } from '../db/client.js';
import type { PoolView } from './stats.js';

/**
 * PgBouncer's own view of the test, from its admin console: how many
 * clients queue for a server connection and how long the oldest has waited.
 * A client-side measurement alone cannot tell queueing in the pooler from
 * slowness in PostgreSQL.
 */
export interface PoolRow {
  database: string;
  user: string;
  cl_active: number;
  cl_waiting: number;
  sv_active: number;
  sv_idle: number;
  maxwaitS: number;
}

export function parsePools(rows: Record<string, unknown>[]): PoolRow[] {
  const n = (v: unknown) => Number(v ?? 0);
  return rows.map((r) => ({
    database: String(r['database']),
    user: String(r['user']),
    cl_active: n(r['cl_active']),
    cl_waiting: n(r['cl_waiting']),
    sv_active: n(r['sv_active']),
    sv_idle: n(r['sv_idle']),
    maxwaitS: n(r['maxwait']) + n(r['maxwait_us']) / 1e6,
  }));
}

export function emptyView(): PoolView {
  return { clWaitingPeak: 0, maxwaitPeakS: 0, svActivePeak: 0, clActivePeak: 0, samples: 0 };
}

/** Fold one SHOW POOLS sample (the test's databases only) into the running peaks. */
export function foldSample(view: PoolView, pools: PoolRow[], databases: string[]): PoolView & { now: { clWaiting: number; maxwaitS: number; svActive: number } } {
  const mine = pools.filter((p) => databases.includes(p.database));
  const sum = (f: (p: PoolRow) => number) => mine.reduce((a, p) => a + f(p), 0);
  const now = { clWaiting: sum((p) => p.cl_waiting), maxwaitS: Math.max(0, ...mine.map((p) => p.maxwaitS)), svActive: sum((p) => p.sv_active) };
  return {
    clWaitingPeak: Math.max(view.clWaitingPeak, now.clWaiting),
    maxwaitPeakS: Math.max(view.maxwaitPeakS, now.maxwaitS),
    svActivePeak: Math.max(view.svActivePeak, now.svActive),
    clActivePeak: Math.max(view.clActivePeak, sum((p) => p.cl_active)),
    samples: view.samples + 1,
    now,
  };
}

export async function showPools(c: Client): Promise<PoolRow[]> {
  return parsePools((await c.query('SHOW POOLS')).rows as Record<string, unknown>[]);
}

/** Samples every `everyMs` until stopped; a failed sample is skipped, not fatal. */
export function sampleView(secrets: Pick<Secrets, 'get'>, admin: Endpoint, databases: string[], everyMs = 1000) {
  let view: ReturnType<typeof foldSample> = { ...emptyView(), now: { clWaiting: 0, maxwaitS: 0, svActive: 0 } };
  let client: Client | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inflight: Promise<void> = Promise.resolve();
  const tick = async () => {
    try {
      client ??= await connect(secrets, admin, { applicationName: 'dpgc-pool-test-view' });
      view = foldSample(view, await showPools(client), databases);
    } catch {
      await client?.end().catch(() => {});
      client = undefined;
    }
    if (!stopped) timer = setTimeout(() => {
      inflight = tick();
    }, everyMs);
  };
  inflight = tick();
  return {
    current: () => view,
    async stop(): Promise<PoolView> {
      stopped = true;
      clearTimeout(timer);
      await inflight;
      if (client) {
        try {
          view = foldSample(view, await showPools(client), databases);
        } catch {
          /* keep what was sampled */
        }
        await client.end().catch(() => {});
      }
      const { now: _now, ...peaks } = view;
      return peaks;
    },
  };
}
