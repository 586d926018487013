import chalk from 'chalk';
import { summarize, type Summary } from './analysis.js';
import { POLL_INTERVAL_MS } from './monitor.js';
import type { DrillResult } from './result.js';
import { LEADER_CHANGING } from './types.js';

/**
 * What a human reads (stderr) and what --json carries. The method is printed
 * beside the numbers, because an RTO without its definition is a rumour.
 */
export const METHOD = [
  'write outage (RTO) = longest span without any acknowledged write, across all writers, that ends after the fault (client wall clock)',
  `detection / new leader = first Patroni view (GET /cluster, polled every ${POLL_INTERVAL_MS} ms) without the old leader / with a new running leader`,
  'promotion = timestamp of the new timeline in Patroni GET /history (1 s resolution), else first view of the new leader',
  'lost = distinct acknowledged rows missing on at least one node (each counted once), read directly from the new primary and from each replica once it replayed the primary\'s final LSN; per-node counts show where they are missing',
  'stall = how long freeze and partition keep the victim stopped or cut off (--stall, default 2 × ttl): a stall shorter than the lock\'s life understates what a hung primary can lose',
  'p95 = nearest rank (with fewer than 20 drills, the worst one)',
];

const FIGURES = {
  outageS: (d: DrillResult) => d.outage.seconds,
  worstWriterOutageS: (d: DrillResult) => d.outage.worstWriterSeconds,
  detectedS: (d: DrillResult) => d.timeline.detectedS,
  promotedS: (d: DrillResult) => d.timeline.promotedS,
  newLeaderSeenS: (d: DrillResult) => d.timeline.newLeaderSeenS,
  firstWriteS: (d: DrillResult) => d.timeline.firstWriteS,
  rejoinedS: (d: DrillResult) => d.timeline.rejoinedS,
  healthyS: (d: DrillResult) => d.timeline.healthyS,
  lostAcknowledged: (d: DrillResult) => d.writes.lost,
  inDoubt: (d: DrillResult) => d.writes.inDoubt,
} as const;
export type Figure = keyof typeof FIGURES;

export function summarizeDrills(drills: readonly DrillResult[]): Record<Figure, Summary | null> {
  const out = {} as Record<Figure, Summary | null>;
  for (const [k, f] of Object.entries(FIGURES) as [Figure, (d: DrillResult) => number | null][]) out[k] = summarize(drills.map(f));
  return out;
}

const s = (v: number | null | undefined) => (v === null || v === undefined ? '—' : `${v.toFixed(2)} s`);
const at = (v: number | null) => (v === null ? chalk.dim('not seen') : `+${v.toFixed(2)} s`);

export function formatDrill(d: DrillResult, budgetS: number): string {
  const t = d.timeline;
  const lost = d.writes.lost;
  const lines = [
    chalk.bold(`${d.mode} drill on ${d.victim}: ${d.passed ? chalk.green('PASS') : chalk.red('FAIL')}`),
    `  fault      ${t.faultAt}  ${d.fault}`,
    ...timelineLines(d),
    `  write outage ${chalk.bold(d.outage.unrecoveredS !== null ? chalk.red(`not recovered: no write acknowledged in the last ${s(d.outage.unrecoveredS)}`) : s(d.outage.seconds))} (worst single writer ${s(d.outage.worstWriterSeconds)}, normal gap ${s(d.outage.baselineGapSeconds)}); budget ${budgetS} s, computed worst case ${d.timings.worstCaseS} s`,
    `  writes: ${d.writes.acknowledged} acknowledged (${d.writes.acknowledgedAfterFault} after the fault), ${d.writes.inDoubt} in doubt, ${d.writes.refused} refused; reads: ${d.reads.ok} ok, ${d.reads.failed} failed`,
    `  rows: ${d.nodes.map((n) => `${n.node} (${n.role}) ${n.rows} rows, ${n.lost} missing, ${n.duplicates} duplicated`).join('; ')}${lost ? chalk.red(` — ${lost} ACKNOWLEDGED WRITES LOST`) : ''}`,
    ...(d.oldPrimaryProbe ? [`  old primary probe: ${d.oldPrimaryProbe.detail}`] : []),
    ...d.criteria.filter((c) => !c.ok).map((c) => chalk.red(`  FAIL ${c.id}: ${c.detail}`)),
    ...d.notes.map((n) => chalk.yellow(`  note: ${n}`)),
    ...(d.repair ? [chalk.yellow(`  repair: ${d.repair}`)] : []),
  ];
  return lines.join('\n');
}

/** Milestones in the order they happened; the ones never seen last. */
function timelineLines(d: DrillResult): string[] {
  const t = d.timeline;
  type Row = [string, number | null, string];
  const leaderMoves = LEADER_CHANGING.has(d.mode);
  const rows: Row[] = [
    ...(leaderMoves
      ? ([
          ['detection', t.detectedS, `leader ${d.oldLeader} gone from Patroni's view`],
          ['promotion', t.promotedS, `${d.newLeader && d.newLeader !== d.oldLeader ? `${d.newLeader} promoted` : 'no promotion'}${t.newLeaderSeenS !== null ? ` (seen running at +${t.newLeaderSeenS.toFixed(2)} s)` : ''}`],
        ] as Row[])
      : []),
    ...(d.mode === 'replica' ? ([['sync moved', t.syncMovedS, 'Patroni named another synchronous standby']] as Row[]) : []),
    ['first write', t.firstWriteS, `after the last acknowledged one at ${t.lastAckBeforeS === null ? '—' : `${t.lastAckBeforeS.toFixed(2)} s`}`],
    ['restore', t.restoredS, d.restore],
    ...(d.mode === 'etcd-member' || d.mode === 'crash' ? [] : ([['rejoin', t.rejoinedS, `${d.victim} streaming again`]] as Row[])),
    ['healthy', t.healthyS, d.after],
  ];
  const order = (v: number | null) => (v === null ? Number.POSITIVE_INFINITY : v);
  return rows.sort((a, b) => order(a[1]) - order(b[1])).map(([name, v, text]) => `  ${name.padEnd(11)} ${at(v).padStart(10)}   ${text}`);
}

export function formatSummary(drills: readonly DrillResult[]): string {
  const sum = summarizeDrills(drills);
  const rows = (Object.keys(sum) as Figure[])
    .filter((k) => sum[k] !== null)
    .map((k) => {
      const v = sum[k]!;
      const f = (x: number) => (k === 'lostAcknowledged' || k === 'inDoubt' ? String(x) : x.toFixed(2));
      return `  ${k.padEnd(20)} ${f(v.min).padStart(8)} ${f(v.median).padStart(8)} ${f(v.p95).padStart(8)} ${f(v.max).padStart(8)}`;
    });
  const passed = drills.filter((d) => d.passed).length;
  return [
    chalk.bold(`${drills.length} ${drills[0]?.mode ?? ''} drills: ${passed} passed, ${drills.length - passed} failed`),
    `  ${'figure (s)'.padEnd(20)} ${'min'.padStart(8)} ${'median'.padStart(8)} ${'p95'.padStart(8)} ${'max'.padStart(8)}`,
    ...rows,
    chalk.dim(`  method: ${METHOD.join('; ')}`),
  ].join('\n');
}

/** One line for the drill log: what a reader of `dpgc readiness` or the report needs to trust the record. */
export function drillSummary(d: DrillResult): string {
  const outage = d.outage.seconds === null ? 'no write outage measured' : `write outage ${d.outage.seconds.toFixed(1)} s`;
  return `${d.oldLeader} → ${d.newLeader ?? 'none'}, ${outage}, ${d.writes.acknowledged} writes acknowledged, ${d.writes.lost} lost${d.passed ? '' : `, failed: ${d.criteria.filter((c) => !c.ok).map((c) => c.id).join(', ')}`}`;
}

/**
 * What the drill log keeps of a drill for `dpgc report` (the row's JSON): the
 * milestones, the verdict and the acknowledged writes per 100 ms, without the
 * samples of lost rows and error texts the --json document carries. `batch`
 * ties together the drills of one `--repeat` run (the RTO distribution).
 */
export interface DrillDetail {
  v: 1;
  victim: string;
  oldLeader: string;
  newLeader: string | null;
  budgetS: number;
  worstCaseS: number;
  batch?: { id: string; index: number; of: number };
  timeline: DrillResult['timeline'];
  outage: { seconds: number | null; worstWriterSeconds: number | null; unrecoveredS: number | null };
  writes: { acknowledged: number; lost: number; inDoubt: number; refused: number };
  criteria: { id: string; ok: boolean; detail: string }[];
  series: DrillResult['series'];
}

export function drillDetail(d: DrillResult, budgetS: number, batch?: DrillDetail['batch']): DrillDetail {
  return {
    v: 1,
    victim: d.victim,
    oldLeader: d.oldLeader,
    newLeader: d.newLeader,
    budgetS,
    worstCaseS: d.timings.worstCaseS,
    ...(batch ? { batch } : {}),
    timeline: d.timeline,
    outage: { seconds: d.outage.seconds, worstWriterSeconds: d.outage.worstWriterSeconds, unrecoveredS: d.outage.unrecoveredS },
    writes: { acknowledged: d.writes.acknowledged, lost: d.writes.lost, inDoubt: d.writes.inDoubt, refused: d.writes.refused },
    criteria: d.criteria.map((c) => ({ id: c.id, ok: c.ok, detail: c.detail })),
    series: d.series,
  };
}
