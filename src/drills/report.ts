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
  'lost = acknowledged rows missing on a node, read directly from the new primary and from each replica once it replayed the primary\'s final LSN',
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
  lostAcknowledged: (d: DrillResult) => d.nodes.reduce((n, x) => n + x.lost, 0),
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
  const lost = d.nodes.reduce((n, x) => n + x.lost, 0);
  const lines = [
    chalk.bold(`${d.mode} drill on ${d.victim}: ${d.passed ? chalk.green('PASS') : chalk.red('FAIL')}`),
    `  fault      ${t.faultAt}  ${d.fault}`,
    ...timelineLines(d),
    `  write outage ${chalk.bold(d.outage.unrecoveredS !== null ? chalk.red(`not recovered: no write acknowledged in the last ${s(d.outage.unrecoveredS)}`) : s(d.outage.seconds))} (worst single writer ${s(d.outage.worstWriterSeconds)}, normal gap ${s(d.outage.baselineGapSeconds)}); budget ${budgetS} s, computed worst case ${d.timings.worstCaseS} s`,
    `  writes: ${d.writes.acknowledged} acknowledged (${d.writes.acknowledgedAfterFault} after the fault), ${d.writes.inDoubt} in doubt, ${d.writes.refused} refused; reads: ${d.reads.ok} ok, ${d.reads.failed} failed`,
    `  rows: ${d.nodes.map((n) => `${n.node} (${n.role}) ${n.rows} rows, ${n.lost} lost, ${n.duplicates} duplicated`).join('; ')}${lost ? chalk.red(` — ${lost} ACKNOWLEDGED WRITES LOST`) : ''}`,
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
    ...(d.mode === 'etcd-member' ? [] : ([['rejoin', t.rejoinedS, `${d.victim} streaming again`]] as Row[])),
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
