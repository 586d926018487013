import type { ReadinessItem } from '../checks/waivers.js';
import { METHOD } from '../drills/report.js';
import type { ChartAssets } from './assets.js';
import { drillTimelineChart, lagChart, rtoDistributionChart, type ChartConfig } from './charts.js';
import { batches, verdictLine } from './drills.js';
import type { BackupSection, DrillRow, LagSection, ReportData, Topology } from './model.js';

/**
 * The report as one HTML document: pure (data in, text out). Every value that
 * comes from the cluster or the inventory goes through `esc` (text and
 * attributes) or `jsonForScript` (the chart data), and the page's Content
 * Security Policy forbids every fetch, so the file is the same on a laptop,
 * from file:// and in a CI artefact store.
 */
export function esc(v: string | number | boolean | null | undefined): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** JSON safe inside a <script> element: nothing in it can close the element or start a comment. */
export function jsonForScript(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** A library's source inside a <script> element. */
function inlineScript(src: string): string {
  return src.replace(/<\/(script)/gi, '<\\/$1');
}

const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#666;font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}th,td{border:1px solid #e2e2e2;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f0f1f3}
.badge{display:inline-block;font-weight:600;font-size:11px;padding:1px 6px;border-radius:3px;color:#fff}
.pass{background:#2e7d32}.fail{background:#c62828}.warn{background:#ef6c00}.waived{background:#00838f}.none{background:#757575}
.verdict{font-size:16px;font-weight:600;padding:10px 14px;border-radius:4px;margin:10px 0;color:#fff}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:4px;padding:10px 14px;margin:10px 0}
.chart{position:relative;height:260px}.chart.small{height:180px}
.muted{color:#666}.err{color:#b71c1c;white-space:pre-wrap}.detail{white-space:pre-wrap;font-size:12px;color:#444}
code{font-size:12px;background:#f0f1f3;padding:0 3px;border-radius:2px}
ul.method{font-size:12px;color:#555}
`;

export interface RenderOptions {
  assets: ChartAssets;
  /** How many drills get a chart (newest first); older ones are listed. */
  chartedDrills?: number;
}

export function renderReport(d: ReportData, o: RenderOptions): string {
  const charts: Record<string, ChartConfig> = {};
  const chart = (id: string, cfg: ChartConfig, cls = 'chart') => {
    charts[id] = cfg;
    return `<div class="${cls}"><canvas data-chart="${esc(id)}" role="img" aria-label="${esc(id)}"></canvas></div>`;
  };
  const body = [
    header(d),
    topologySection(d.topology),
    readinessSection(d),
    drillsSection(d.drills, chart, o.chartedDrills ?? 12),
    backupsSection(d.backups),
    lagSection(d.lag, chart),
    `<h2>Method</h2><ul class="method">${METHOD.map((m) => `<li>${esc(m)}</li>`).join('')}</ul>`,
  ].join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(`dpgc report: ${d.cluster}`)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${body}
</main>
<script type="application/json" id="dpgc-charts">${jsonForScript(charts)}</script>
<script>${inlineScript(o.assets.chartJs)}</script>
<script>${inlineScript(o.assets.annotationPlugin)}</script>
<script>
(function () {
  var configs = JSON.parse(document.getElementById('dpgc-charts').textContent);
  var canvases = document.querySelectorAll('canvas[data-chart]');
  for (var i = 0; i < canvases.length; i++) new Chart(canvases[i], configs[canvases[i].getAttribute('data-chart')]);
  document.body.setAttribute('data-charts', String(canvases.length));
})();
</script>
</body>
</html>
`;
}

function badge(v: string): string {
  const cls = v === 'pass' || v === 'PASS' ? 'pass' : v === 'fail' || v === 'FAIL' ? 'fail' : v === 'warn' ? 'warn' : v === 'waived' ? 'waived' : 'none';
  return `<span class="badge ${cls}">${esc(v.toUpperCase())}</span>`;
}

function header(d: ReportData): string {
  const r = d.readiness;
  const verdict = r
    ? `<div id="readiness-verdict" class="verdict ${r.ready ? 'pass' : 'fail'}">${r.ready ? 'READY' : 'NOT READY'}: ${esc(`${r.passed + r.waived}/${r.required} required items pass${r.waived ? ` (${r.waived} waived)` : ''}`)}</div>`
    : `<div id="readiness-verdict" class="verdict none">Readiness not measured in this run (<code>dpgc report --html</code> or <code>dpgc readiness --html</code> measure it)</div>`;
  return `<header><h1>Cluster <span id="cluster-name">${esc(d.cluster)}</span></h1>
<div class="meta">Report generated ${esc(d.generatedAt)} by dpgc ${esc(d.dpgcVersion)}</div>
${verdict}</header>`;
}

export function topologySection(t: Topology): string {
  const rows = t.hosts.map((h) => {
    const m = t.members.find((x) => x.name === h.name);
    const role = m ? (m.name === t.leader ? 'leader' : m.name === t.syncStandby ? 'sync standby' : m.role) : '';
    return `<tr data-host="${esc(h.name)}"><td>${esc(h.name)}</td><td>${esc(h.address)}</td><td>${esc(h.roles.join(', '))}</td><td>${esc(role)}</td><td>${esc(m?.state ?? '')}</td><td>${esc(m?.timeline ?? '')}</td><td>${esc(m?.lagBytes === undefined ? '' : `${m.lagBytes} B`)}</td><td>${esc(m?.postgres ?? '')}</td><td>${esc(m?.patroni ?? '')}</td></tr>${
      m?.error ? `<tr><td></td><td colspan="8" class="err">${esc(m.error)}</td></tr>` : ''
    }`;
  });
  const facts = [`leader <b id="leader">${esc(t.leader ?? 'none')}</b>`, `synchronous standby <b id="sync-standby">${esc(t.syncStandby ?? 'none')}</b>`, `etcd leader <b>${esc(t.etcdLeader ?? 'unknown')}</b>`];
  return `<section id="topology"><h2>Topology</h2>
<p>${facts.join(' · ')}</p>
${t.error ? `<p class="err">${esc(t.error)}</p>` : ''}
<table><thead><tr><th>host</th><th>address</th><th>roles</th><th>Patroni role</th><th>state</th><th>timeline</th><th>lag</th><th>PostgreSQL</th><th>Patroni</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table></section>`;
}

function itemRow(i: ReadinessItem): string {
  const measured = i.value === undefined ? '' : `${esc(i.value)}${i.threshold ? ` <span class="muted">(want ${esc(i.threshold)})</span>` : ''}`;
  const notes = [
    i.verdict !== 'pass' && i.detail ? `<div class="detail">${esc(i.detail)}</div>` : '',
    i.verdict === 'waived' && i.waiver ? `<div class="detail">waived until ${esc(i.waiver.expires)}: ${esc(i.waiver.reason)}</div>` : '',
    i.verdict !== 'pass' && i.verdict !== 'waived' && i.remedy ? `<div class="detail">→ ${esc(i.remedy)}</div>` : '',
  ].join('');
  return `<tr data-item="${esc(i.id)}" data-verdict="${esc(i.verdict)}"><td>${badge(i.verdict)}</td><td><code>${esc(i.id)}</code></td><td>${esc(i.title)}${i.required ? '' : ' <span class="muted">[optional]</span>'}${notes}</td><td>${measured}</td></tr>`;
}

export function readinessSection(d: Pick<ReportData, 'readiness'>): string {
  const r = d.readiness;
  if (!r) return `<section id="readiness"><h2>Readiness</h2><p class="muted">Not measured in this run.</p></section>`;
  const areas = new Map<string, ReadinessItem[]>();
  for (const i of r.items) areas.set(i.area, [...(areas.get(i.area) ?? []), i]);
  const groups = [...areas].map(([area, items]) => `<tr><th colspan="4">${esc(area)}</th></tr>${items.map(itemRow).join('\n')}`);
  const warnings = [...r.unknownWaivers.map((w) => `waiver "${w.id}" names no measured item; it waives nothing`), ...r.unneededWaivers.map((w) => `waiver "${w.id}": the item passes now; the waiver can be removed`)];
  return `<section id="readiness"><h2>Readiness</h2>
${warnings.map((w) => `<p class="err">${esc(w)}</p>`).join('')}
<table><thead><tr><th>verdict</th><th>item</th><th>what</th><th>measured</th></tr></thead><tbody>${groups.join('\n')}</tbody></table></section>`;
}

type ChartFn = (id: string, cfg: ChartConfig, cls?: string) => string;

export function drillsSection(s: ReportData['drills'], chart: ChartFn, charted: number): string {
  if (s.error) return `<section id="drills"><h2>Failover drills</h2><p class="err">${esc(s.error)}</p></section>`;
  if (!s.rows.length) return `<section id="drills"><h2>Failover drills</h2><p class="muted">No drill recorded on this cluster yet: <code>dpgc failover-test --mode switchover</code> runs one.</p></section>`;
  const dist = batches(s.rows).map(
    (b) => `<div class="card" data-batch="${esc(b.id)}"><h3>${esc(`${b.mode} × ${b.drills.length} (--repeat ${b.of})`)}: RTO distribution</h3>
<p>${b.rto ? esc(`min ${b.rto.min.toFixed(2)} s · median ${b.rto.median.toFixed(2)} s · p95 ${b.rto.p95.toFixed(2)} s · max ${b.rto.max.toFixed(2)} s; budget ${b.budgetS} s`) : 'no RTO measured'}</p>
${chart(`rto-${b.id}`, rtoDistributionChart(b), 'chart small')}</div>`,
  );
  const cards = s.rows.map((r, i) => drillCard(r, i < charted ? chart : undefined));
  return `<section id="drills"><h2>Failover drills</h2>
<p class="muted">${esc(`${s.rows.length} recorded drill(s), newest first, from dpgc.drill_log in the cluster.`)}</p>
${dist.join('\n')}
${cards.join('\n')}</section>`;
}

function drillCard(r: DrillRow, chart: ChartFn | undefined): string {
  const d = r.detail;
  const head = `<h3>${badge(r.passed ? 'PASS' : 'FAIL')} ${esc(`${r.mode} drill · ${r.at}`)}${d ? esc(` · victim ${d.victim}, leader ${d.oldLeader} → ${d.newLeader ?? 'none'}`) : ''}${d?.batch ? esc(` · ${d.batch.index}/${d.batch.of}`) : ''}</h3>`;
  if (!d) return `<div class="card drill" data-drill="${esc(r.id)}">${head}<p>${esc(r.summary)}</p><p class="muted">No timeline recorded for this drill (recorded by an older dpgc).</p></div>`;
  const failed = d.criteria.filter((c) => !c.ok);
  return `<div class="card drill" data-drill="${esc(r.id)}">${head}
<p class="drill-verdict">${esc(verdictLine(d))}</p>
${failed.length ? `<ul>${failed.map((c) => `<li class="err">${esc(`${c.id}: ${c.detail}`)}</li>`).join('')}</ul>` : ''}
${chart ? chart(`drill-${r.id}`, drillTimelineChart(d)) : '<p class="muted">(older drill: chart left out)</p>'}</div>`;
}

export function backupsSection(b: BackupSection): string {
  if (!b.deployed) return `<section id="backups"><h2>Backups and PITR</h2><p class="muted">${esc(b.why)}</p></section>`;
  const rows = b.rows
    .slice(-10)
    .reverse()
    .map((r) => `<tr><td>${esc(r.label)}</td><td>${esc(r.type)}</td><td>${esc(r.start)}</td><td>${esc(`${r.durationS} s`)}</td><td>${esc(r.sizeBytes === undefined ? '' : `${(r.sizeBytes / 1048576).toFixed(1)} MiB`)}</td><td>${r.error ? badge('fail') : badge('pass')}</td></tr>`);
  const pitr = b.pitr
    ? `<p id="pitr">Last PITR drill${b.pitr.measured ? ' (run by this report’s readiness measurement)' : ''}: ${badge(b.pitr.verdict)} ${esc(b.pitr.value ?? '')}${b.pitr.detail ? ` <span class="muted">${esc(b.pitr.detail)}</span>` : ''}</p>`
    : '<p id="pitr" class="muted">No PITR drill measured in this run (<code>dpgc verify --sprint 4</code> or <code>dpgc readiness</code> run one).</p>';
  return `<section id="backups"><h2>Backups and PITR</h2>
<p>${esc(`Repository on ${b.repoHost}: ${b.rows.length} backup(s)`)}${b.rows.length > 10 ? ' (newest 10 shown)' : ''}</p>
${b.error ? `<p class="err">${esc(b.error)}</p>` : ''}
${rows.length ? `<table><thead><tr><th>label</th><th>type</th><th>start (UTC)</th><th>duration</th><th>size</th><th></th></tr></thead><tbody>${rows.join('\n')}</tbody></table>` : ''}
${pitr}</section>`;
}

export function lagSection(l: LagSection, chart: ChartFn): string {
  const body = l.error
    ? `<p class="err">${esc(l.error)}</p>`
    : l.series.length
      ? chart('lag', lagChart(l), 'chart small')
      : '<p class="muted">Prometheus holds no replica lag samples for the last hour.</p>';
  return `<section id="lag"><h2>Replication lag, last hour</h2><p class="muted">pg_recovery_lag_seconds from Prometheus, measured on each replica.</p>${body}</section>`;
}
