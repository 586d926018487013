import { z } from 'zod';
import { summarize, type Summary } from '../drills/analysis.js';
import type { DrillDetail } from '../drills/report.js';
import type { DrillRow } from './model.js';

/**
 * The drill log's JSON read back: validated, because the table outlives the
 * code that wrote it (a row from an older or newer dpgc draws what it can, or
 * is listed without its chart), and grouped into `--repeat` batches.
 */
const num = z.number().nullable();
const detailSchema = z.object({
  v: z.literal(1),
  victim: z.string(),
  oldLeader: z.string(),
  newLeader: z.string().nullable(),
  budgetS: z.number(),
  worstCaseS: z.number(),
  batch: z.object({ id: z.string(), index: z.number().int(), of: z.number().int() }).optional(),
  timeline: z.object({
    faultAt: z.string(),
    detectedS: num,
    newLeaderSeenS: num,
    promotedS: num,
    lastAckBeforeS: num,
    firstWriteS: num,
    syncMovedS: num,
    restoredS: num,
    rejoinedS: num,
    healthyS: num,
  }),
  outage: z.object({ seconds: num, worstWriterSeconds: num, unrecoveredS: num }),
  writes: z.object({ acknowledged: z.number(), lost: z.number(), inDoubt: z.number(), refused: z.number() }),
  criteria: z.array(z.object({ id: z.string(), ok: z.boolean(), detail: z.string() })),
  series: z.object({ binMs: z.number().positive(), fromS: z.number(), writers: z.array(z.array(z.number())) }),
});

export function parseDetail(raw: unknown): DrillDetail | undefined {
  const r = detailSchema.safeParse(raw);
  return r.success ? r.data : undefined;
}

export interface Batch {
  id: string;
  mode: string;
  of: number;
  drills: DrillRow[];
  rto: Summary | null;
  budgetS: number;
}

/** The drills of each `--repeat` run (two or more recorded), oldest drill first. */
export function batches(rows: readonly DrillRow[]): Batch[] {
  const by = new Map<string, DrillRow[]>();
  for (const r of rows) {
    const b = r.detail?.batch;
    if (b) by.set(b.id, [...(by.get(b.id) ?? []), r]);
  }
  return [...by.entries()]
    .filter(([, ds]) => ds.length > 1)
    .map(([id, ds]) => {
      const drills = [...ds].sort((a, b) => a.detail!.batch!.index - b.detail!.batch!.index);
      return { id, mode: drills[0]!.mode, of: drills[0]!.detail!.batch!.of, drills, rto: summarize(drills.map((d) => d.detail!.outage.seconds)), budgetS: drills[0]!.detail!.budgetS };
    });
}

/** The milestones a timeline marks, in seconds after the fault; the ones never seen are left out. */
export function milestones(d: DrillDetail): { label: string; s: number }[] {
  const t = d.timeline;
  const all: [string, number | null][] = [
    ['fault', 0],
    ['detection', t.detectedS],
    ['promotion', t.promotedS],
    ['first write', t.firstWriteS],
    ['rejoin', t.rejoinedS],
  ];
  return all.filter((m): m is [string, number] => m[1] !== null).map(([label, s]) => ({ label, s }));
}

/** The outage span to shade: from the last acknowledged write before it to the first after, when both are known. */
export function outageSpan(d: DrillDetail): { from: number; to: number } | undefined {
  const { lastAckBeforeS, firstWriteS } = d.timeline;
  if (d.outage.seconds === null || firstWriteS === null) return undefined;
  return { from: lastAckBeforeS ?? firstWriteS - d.outage.seconds, to: firstWriteS };
}

/** One line of verdict: RTO against the budget, lost and in-doubt writes. */
export function verdictLine(d: DrillDetail): string {
  const rto =
    d.outage.seconds !== null
      ? `RTO ${d.outage.seconds.toFixed(2)} s (budget ${d.budgetS} s${d.outage.seconds > d.budgetS ? ', OVER' : ''})`
      : d.outage.unrecoveredS !== null
        ? `writes not recovered (none in the last ${d.outage.unrecoveredS.toFixed(1)} s)`
        : 'no write outage measured';
  return `${rto}; ${d.writes.acknowledged} writes acknowledged, ${d.writes.lost} lost, ${d.writes.inDoubt} in doubt`;
}
