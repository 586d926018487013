import type { DrillDetail } from '../drills/report.js';
import type { Batch } from './drills.js';
import { milestones, outageSpan } from './drills.js';
import type { LagSection } from './model.js';

/**
 * Chart.js configurations, built here as plain JSON (no callbacks), so what
 * each chart shows is decided and tested in TypeScript; the page only hands
 * each one to Chart.js (inlined into the file, see assets.ts) with the
 * annotation plugin drawing the markers and the shaded outage.
 */
export type ChartConfig = Record<string, unknown>;

/** A colour per writer or per instance that stays apart on white and in greyscale screenshots. */
export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];
const MARK_COLOUR: Record<string, string> = { fault: '#d62728', detection: '#ff7f0e', promotion: '#9467bd', 'first write': '#2ca02c', rejoin: '#17becf' };

const round = (v: number, digits: number) => Number(v.toFixed(digits));

const base = (xTitle: string, yTitle: string, extra: Record<string, unknown> = {}) => ({
  responsive: true,
  maintainAspectRatio: false,
  // A report is read, not watched: no animation, and a screenshot shows the final chart.
  animation: false,
  interaction: { mode: 'nearest', intersect: false },
  scales: {
    x: { type: 'linear', title: { display: true, text: xTitle } },
    y: { beginAtZero: true, title: { display: true, text: yTitle } },
  },
  ...extra,
});

/** Acknowledged writes per 100 ms per writer, milestones marked, the outage shaded. */
export function drillTimelineChart(d: DrillDetail): ChartConfig {
  const s = d.series;
  const step = s.binMs / 1000;
  const datasets = s.writers.map((counts, w) => ({
    label: `writer ${w}`,
    // [x, y] pairs: x the bin's start in seconds after the fault.
    data: counts.map((c, i) => [round(s.fromS + i * step, 3), c]),
    borderColor: PALETTE[w % PALETTE.length],
    // Stacked bands: each writer's share stays visible and the top edge is the cluster's total.
    backgroundColor: `${PALETTE[w % PALETTE.length]}99`,
    fill: w === 0 ? 'origin' : '-1',
    borderWidth: 1,
    pointRadius: 0,
    stepped: 'before',
  }));
  const annotations: Record<string, unknown> = {};
  const span = outageSpan(d);
  if (span) {
    annotations['outage'] = {
      type: 'box',
      xMin: span.from,
      xMax: span.to,
      backgroundColor: 'rgba(214, 39, 40, 0.12)',
      borderWidth: 0,
      label: { display: true, content: `outage ${(span.to - span.from).toFixed(2)} s`, position: { x: 'center', y: 'start' }, color: '#b22222', font: { size: 11 } },
    };
  }
  milestones(d).forEach((m, i) => {
    annotations[`m${i}`] = {
      type: 'line',
      xMin: m.s,
      xMax: m.s,
      borderColor: MARK_COLOUR[m.label] ?? '#333',
      borderWidth: 1.5,
      borderDash: m.label === 'fault' ? [] : [4, 3],
      // Milestones close together (detection, promotion) would print on top of each other: stagger their labels.
      label: { display: true, content: m.label, position: 'end', yAdjust: (i % 3) * 18, backgroundColor: MARK_COLOUR[m.label] ?? '#333', font: { size: 10 } },
    };
  });
  return {
    type: 'line',
    data: { datasets },
    options: base('seconds after the fault', 'writes acknowledged per 100 ms', {
      plugins: { legend: { position: 'bottom' }, annotation: { annotations } },
      scales: {
        x: { type: 'linear', title: { display: true, text: 'seconds after the fault' } },
        y: { stacked: true, beginAtZero: true, title: { display: true, text: 'acked writes / 100 ms' } },
      },
    }),
  };
}

/** `--repeat`: each drill's RTO, the budget and the median drawn across. */
export function rtoDistributionChart(b: Batch): ChartConfig {
  const rtos = b.drills.map((d) => d.detail!.outage.seconds);
  const annotations: Record<string, unknown> = {
    budget: { type: 'line', yMin: b.budgetS, yMax: b.budgetS, borderColor: '#d62728', borderWidth: 1.5, label: { display: true, content: `budget ${b.budgetS} s`, position: 'end', backgroundColor: '#d62728', font: { size: 10 } } },
  };
  if (b.rto) {
    annotations['median'] = { type: 'line', yMin: b.rto.median, yMax: b.rto.median, borderColor: '#555', borderDash: [4, 3], borderWidth: 1, label: { display: true, content: `median ${b.rto.median.toFixed(2)} s`, position: 'start', font: { size: 10 } } };
  }
  return {
    type: 'bar',
    data: {
      labels: b.drills.map((d) => `#${d.detail!.batch!.index}`),
      datasets: [{ label: 'RTO (s)', data: rtos, backgroundColor: b.drills.map((d) => (d.passed ? '#2ca02c' : '#d62728')) }],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { x: { title: { display: true, text: 'drill' } }, y: { beginAtZero: true, suggestedMax: b.budgetS * 1.1, title: { display: true, text: 'write outage (s)' } } },
      plugins: { legend: { display: false }, annotation: { annotations } },
    },
  };
}

/** Replication lag per replica over the last hour, minutes before the report on the x axis. */
export function lagChart(l: LagSection): ChartConfig {
  return {
    type: 'line',
    data: {
      datasets: l.series.map((s, i) => ({
        label: s.instance,
        data: s.points.map(([t, v]) => [round((t - l.to) / 60, 2), v]),
        borderColor: PALETTE[i % PALETTE.length],
        backgroundColor: PALETTE[i % PALETTE.length],
        borderWidth: 1.5,
        pointRadius: 0,
      })),
    },
    options: base('minutes before the report', 'lag (s)', {
      plugins: { legend: { position: 'bottom' } },
      scales: {
        x: { type: 'linear', min: round((l.from - l.to) / 60, 2), max: 0, title: { display: true, text: 'minutes before the report' } },
        y: { beginAtZero: true, suggestedMax: 1, title: { display: true, text: 'lag (s)' } },
      },
    }),
  };
}
