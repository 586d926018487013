import { describe, expect, it } from 'vitest';
import type { ReadinessItem } from '../../src/checks/waivers.js';
import type { DrillDetail } from '../../src/drills/report.js';
import { drillTimelineChart, lagChart, rtoDistributionChart } from '../../src/report/charts.js';
import { batches, milestones, outageSpan, parseDetail, verdictLine } from '../../src/report/drills.js';
import { esc, jsonForScript, renderReport } from '../../src/report/html.js';
import type { DrillRow, ReportData } from '../../src/report/model.js';

const ASSETS = { chartJs: '/* chart.js */', annotationPlugin: '/* annotation */' };

export function detail(o: Partial<DrillDetail> = {}): DrillDetail {
  return {
    v: 1,
    victim: 'db1',
    oldLeader: 'db1',
    newLeader: 'db2',
    budgetS: 30,
    worstCaseS: 26,
    timeline: { faultAt: '2026-12-02T10:00:00.000Z', detectedS: 20.4, newLeaderSeenS: 21.1, promotedS: 21, lastAckBeforeS: -0.05, firstWriteS: 21.6, syncMovedS: null, restoredS: 22, rejoinedS: 30.2, healthyS: 31 },
    outage: { seconds: 21.65, worstWriterSeconds: 21.7, unrecoveredS: null },
    writes: { acknowledged: 1200, lost: 0, inDoubt: 2, refused: 40 },
    criteria: [{ id: 'rpo', ok: true, detail: 'every acknowledged write is on all 3 nodes' }],
    series: { binMs: 100, fromS: -0.3, writers: [[2, 3, 2, 0, 0, 1], [1, 2, 3, 0, 0, 2]] },
    ...o,
  };
}

const item = (id: string, verdict: ReadinessItem['verdict'], o: Partial<ReadinessItem> = {}): ReadinessItem => ({
  id,
  title: `title of ${id}`,
  sprint: 3,
  required: true,
  kind: 'state',
  startedMs: 0,
  durationMs: 1,
  verdict,
  area: id.split('.')[1]!,
  ...o,
});

function data(o: Partial<ReportData> = {}): ReportData {
  return {
    cluster: 'orders',
    generatedAt: '2026-12-02T11:00:00.000Z',
    dpgcVersion: '0.1.0',
    topology: {
      hosts: [
        { name: 'db1', address: '10.0.1.11', roles: ['postgres', 'etcd'] },
        { name: 'db2', address: '10.0.1.12', roles: ['postgres', 'etcd'] },
        { name: 'ctl', address: '10.0.1.20', roles: ['monitoring', 'backup'] },
      ],
      members: [
        { name: 'db1', role: 'leader', state: 'running', timeline: 3, postgres: '15.14', patroni: '4.0.7' },
        { name: 'db2', role: 'replica', state: 'streaming', timeline: 3, syncState: 'sync', lagBytes: 0, postgres: '15.14', patroni: '4.0.7' },
      ],
      leader: 'db1',
      syncStandby: 'db2',
      etcdLeader: 'db2',
    },
    readiness: {
      items: [item('s3.patroni.topology', 'pass', { value: '3/3' }), item('r.drills.kill', 'fail', { detail: 'no kill drill was ever recorded', remedy: 'Run `dpgc failover-test --mode kill`' }), item('r.disk.headroom', 'waived', { waiver: { id: 'r.disk.headroom', reason: 'new disks on order', expires: '2027-01-15' } })],
      unknownWaivers: [],
      unneededWaivers: [],
      required: 3,
      passed: 1,
      waived: 1,
      ready: false,
    },
    drills: { rows: [{ id: 7, mode: 'kill', at: '2026-12-02T10:00:00.000Z', passed: true, summary: 'db1 → db2, write outage 21.6 s', detail: detail() }] },
    backups: { deployed: true, repoHost: 'ctl', rows: [{ label: '20261202-100000F', type: 'full', start: '2026-12-02T10:00:00.000Z', stop: '2026-12-02T10:00:06.000Z', durationS: 6, sizeBytes: 50 * 1048576, error: false }], pitr: { verdict: 'pass', value: 'restore 2.1 s, recovery 0.4 s', measured: true } },
    lag: { from: 1_000, to: 4_600, series: [{ instance: 'db2:9187', points: [[1_000, 0], [4_600, 0.2]] }] },
    ...o,
  };
}

describe('esc and jsonForScript', () => {
  it('escape what HTML and a script element would read as markup', () => {
    expect(esc(`<b a="1">'&'</b>`)).toBe('&lt;b a=&quot;1&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;');
    expect(esc(undefined)).toBe('');
    const j = jsonForScript({ s: '</script><!-- \u2028 & >' });
    expect(j).not.toMatch(/[<>&\u2028]/);
    expect(JSON.parse(j)).toEqual({ s: '</script><!-- \u2028 & >' });
  });
});

describe('drill detail', () => {
  it('reads a detail written by drillDetail and rejects what it cannot draw', () => {
    expect(parseDetail(JSON.parse(JSON.stringify(detail())))).toEqual(detail());
    expect(parseDetail({ v: 2 })).toBeUndefined();
    expect(parseDetail(null)).toBeUndefined();
    expect(parseDetail({ ...detail(), series: { binMs: 0, fromS: 0, writers: [] } })).toBeUndefined();
  });

  it('marks the milestones seen and the outage span, and says the verdict', () => {
    expect(milestones(detail()).map((m) => m.label)).toEqual(['fault', 'detection', 'promotion', 'first write', 'rejoin']);
    expect(milestones(detail({ timeline: { ...detail().timeline, detectedS: null, promotedS: null } })).map((m) => m.label)).toEqual(['fault', 'first write', 'rejoin']);
    expect(outageSpan(detail())).toEqual({ from: -0.05, to: 21.6 });
    expect(outageSpan(detail({ outage: { seconds: null, worstWriterSeconds: null, unrecoveredS: 12 } }))).toBeUndefined();
    expect(verdictLine(detail())).toBe('RTO 21.65 s (budget 30 s); 1200 writes acknowledged, 0 lost, 2 in doubt');
    expect(verdictLine(detail({ outage: { seconds: 41, worstWriterSeconds: 41, unrecoveredS: null } }))).toMatch(/^RTO 41.00 s \(budget 30 s, OVER\)/);
  });

  it('groups --repeat drills into batches with their RTO distribution', () => {
    const row = (id: number, index: number, rto: number, passed = true): DrillRow => ({ id, mode: 'kill', at: `2026-12-02T10:0${index}:00.000Z`, passed, summary: '', detail: detail({ batch: { id: 'b1', index, of: 3 }, outage: { seconds: rto, worstWriterSeconds: rto, unrecoveredS: null } }) });
    const rows = [row(3, 3, 22), row(2, 2, 20), row(1, 1, 35, false), { id: 9, mode: 'kill', at: '2026-12-01T00:00:00.000Z', passed: true, summary: 'alone' }];
    const [b, ...more] = batches(rows);
    expect(more).toEqual([]);
    expect(b!.drills.map((d) => d.id)).toEqual([1, 2, 3]);
    expect(b!.rto).toMatchObject({ n: 3, min: 20, median: 22, max: 35 });
    const c = rtoDistributionChart(b!) as { data: { labels: string[]; datasets: { data: number[]; backgroundColor: string[] }[] }; options: { plugins: { annotation: { annotations: Record<string, { yMin: number }> } } } };
    expect(c.data.labels).toEqual(['#1', '#2', '#3']);
    expect(c.data.datasets[0]!.data).toEqual([35, 20, 22]);
    expect(c.data.datasets[0]!.backgroundColor[0]).toBe('#d62728');
    expect(c.options.plugins.annotation.annotations['budget']!.yMin).toBe(30);
    expect(c.options.plugins.annotation.annotations['median']!.yMin).toBe(22);
  });
});

describe('charts', () => {
  it('timeline: one dataset per writer in seconds after the fault, a line per milestone, the outage shaded', () => {
    const c = drillTimelineChart(detail()) as { type: string; data: { datasets: { label: string; data: [number, number][] }[] }; options: { animation: boolean; plugins: { annotation: { annotations: Record<string, { type: string; xMin: number; xMax: number; label: { content: string } }> } } } };
    expect(c.type).toBe('line');
    expect(c.options.animation).toBe(false);
    expect(c.data.datasets.map((d) => d.label)).toEqual(['writer 0', 'writer 1']);
    expect(c.data.datasets[0]!.data.slice(0, 4)).toEqual([[-0.3, 2], [-0.2, 3], [-0.1, 2], [0, 0]]);
    const a = c.options.plugins.annotation.annotations;
    expect(a['outage']).toMatchObject({ type: 'box', xMin: -0.05, xMax: 21.6 });
    const lines = Object.values(a).filter((x) => x.type === 'line');
    expect(lines.map((l) => [l.label.content, l.xMin])).toEqual([['fault', 0], ['detection', 20.4], ['promotion', 21], ['first write', 21.6], ['rejoin', 30.2]]);
  });

  it('lag: minutes before the report on x, one dataset per replica', () => {
    const c = lagChart(data().lag) as { data: { datasets: { label: string; data: [number, number][] }[] }; options: { scales: { x: { min: number; max: number } } } };
    expect(c.data.datasets[0]).toMatchObject({ label: 'db2:9187', data: [[-60, 0], [0, 0.2]] });
    expect(c.options.scales.x).toMatchObject({ min: -60, max: 0 });
  });
});

describe('renderReport', () => {
  it('has every section, the verdict, a canvas per drill chart, and fetches nothing', () => {
    const html = renderReport(data(), { assets: ASSETS });
    for (const id of ['topology', 'readiness', 'drills', 'backups', 'lag']) expect(html).toContain(`<section id="${id}">`);
    expect(html).toContain('NOT READY: 2/3 required items pass (1 waived)');
    expect(html).toContain('data-item="r.drills.kill" data-verdict="fail"');
    expect(html).toContain('→ Run `dpgc failover-test --mode kill`');
    expect(html).toContain('waived until 2027-01-15: new disks on order');
    expect(html).toContain('leader <b id="leader">db1</b>');
    expect(html).toContain('synchronous standby <b id="sync-standby">db2</b>');
    expect(html).toMatch(/<tr data-host="db2">.*<td>sync standby<\/td>.*<td>4\.0\.7<\/td>/);
    expect(html).toContain('<canvas data-chart="drill-7"');
    expect(html).toContain('<canvas data-chart="lag"');
    expect(html).toContain('RTO 21.65 s (budget 30 s)');
    expect(html).toContain('restore 2.1 s, recovery 0.4 s');
    // Self-contained: no attribute loads anything, and the policy forbids it anyway.
    expect(html).not.toMatch(/\s(src|href)=/i);
    expect(html).toContain('http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; script-src &#39;unsafe-inline&#39;;');
    const charts = JSON.parse(/<script type="application\/json" id="dpgc-charts">(.*?)<\/script>/s.exec(html)![1]!) as Record<string, unknown>;
    expect(Object.keys(charts).sort()).toEqual(['drill-7', 'lag']);
  });

  it('escapes every value from the cluster and the inventory', () => {
    const evil = `<img src=x onerror=alert(1)>"'`;
    const d = data({ cluster: evil });
    d.topology.hosts[0]!.name = evil;
    d.drills.rows[0]!.summary = evil;
    d.drills.rows[0]!.detail!.victim = evil;
    d.drills.rows[0]!.detail!.series.writers = [];
    d.lag.series[0]!.instance = `</script><script>alert(1)</script>`;
    const html = renderReport(d, { assets: ASSETS });
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<script>alert(1)');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;&quot;&#39;');
  });

  it('says what is missing instead of drawing it: no drills, sprint 4 not deployed, no Prometheus, readiness not measured, a drill without a series', () => {
    const { readiness: _r, ...rest } = data();
    const html = renderReport(
      {
        ...rest,
        drills: { rows: [{ id: 1, mode: 'switchover', at: '2026-11-01T00:00:00.000Z', passed: true, summary: 'db1 → db2' }] },
        backups: { deployed: false, why: 'No host has the backup role: backups are sprint 4, not deployed on this cluster.' },
        lag: { from: 0, to: 3600, series: [], error: 'Prometheus: Prometheus at http://10.0.1.20:9090 does not answer' },
      },
      { assets: ASSETS },
    );
    expect(html).toContain('Readiness not measured in this run');
    expect(html).toContain('No timeline recorded for this drill');
    expect(html).toContain('backups are sprint 4, not deployed');
    expect(html).toContain('does not answer');
    expect(html).not.toContain('<canvas');
    expect(renderReport({ ...data(), drills: { rows: [] } }, { assets: ASSETS })).toContain('No drill recorded on this cluster yet');
  });
});
