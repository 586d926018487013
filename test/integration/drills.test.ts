import { chmod, copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { loadInventory } from '../../src/config/load.js';
import { secretsPathFor } from '../../src/config/secrets.js';
import { inventoryWorstCase } from '../../src/config/timings.js';
import { patroniService } from '../../src/components/patroni.js';
import type { DrillResult } from '../../src/drills/result.js';
import { assessHealth } from '../../src/drills/health.js';
import { snapshot } from '../../src/drills/observe.js';
import { readinessItems } from '../../src/checks/readiness.js';
import { currentLeader } from '../../src/components/cluster.js';
import { DRILL_LOG } from '../../src/components/drill-log.js';
import { superuserOn, ROLES_DB } from '../../src/components/endpoints.js';
import { withClient } from '../../src/db/client.js';
import { launchBrowser } from '../helpers/browser.js';
import { createLab, type TestLab } from '../helpers/lab.js';

/**
 * Real drills on a real lab cluster (127.0.40.x): each one through the CLI,
 * as CI runs it, and judged here again from its --json document.
 */
let lab: TestLab;
let worstS: number;

beforeAll(async () => {
  lab = await createLab('127.0.40');
  const r = await lab.cli(['--yes', 'up'], { timeoutMs: 540_000 });
  if (r.code !== 0) throw new Error(`dpgc up failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  worstS = inventoryWorstCase(await loadInventory(lab.config)).totalS;
}, 600_000);

afterAll(async () => {
  await lab?.down();
});

async function drill(mode: string, extra: string[] = []): Promise<{ code: number; doc: { passed: boolean; drills: DrillResult[] }; stderr: string }> {
  const r = await lab.cli(['--json', 'failover-test', '--mode', mode, ...extra], { timeoutMs: 280_000 });
  let doc;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    throw new Error(`no JSON document (exit ${r.code}):\n${r.stderr.slice(-3000)}`);
  }
  return { code: r.code, doc, stderr: r.stderr };
}

interface ReadinessDoc {
  ready: boolean;
  score: { required: number; passed: number; waived: number };
  items: { id: string; area: string; verdict: string; detail?: string; value?: string; remedy?: string }[];
}

async function item(id: string) {
  const ctx = await lab.context();
  const c = readinessItems().find((x) => x.id === id)!;
  return c.run(ctx);
}

function expectNoLostWrite(d: DrillResult) {
  expect(d.unchecked).toEqual([]);
  expect(d.writes.lost).toBe(0);
  expect(d.nodes).toHaveLength(3);
  for (const n of d.nodes) expect({ node: n.node, lost: n.lost, duplicates: n.duplicates }).toEqual({ node: n.node, lost: 0, duplicates: 0 });
  expect(d.writes.acknowledgedAfterFault).toBeGreaterThan(0);
}

async function expectHealthy() {
  const ctx = await lab.context();
  const s = await snapshot(ctx.inventory);
  expect(assessHealth(s, ['db1', 'db2', 'db3']).problems).toEqual([]);
}

describe('dpgc readiness before any drill', () => {
  it('is not ready: no kill or switchover drill was ever recorded on the cluster; the rest passes', async () => {
    const r = await lab.cli(['--json', 'readiness'], { timeoutMs: 280_000 });
    expect(r.code, r.stderr.slice(-2000)).toBe(1);
    const doc = JSON.parse(r.stdout) as ReadinessDoc;
    expect(doc.ready).toBe(false);
    const failing = doc.items.filter((i) => i.verdict === 'fail').map((i) => i.id);
    expect(failing.sort()).toEqual(['r.drills.kill', 'r.drills.switchover']);
    expect(doc.items.find((i) => i.id === 'r.drills.kill')!.detail).toBe('no kill drill was ever recorded on this cluster');
    expect(r.stderr).toMatch(/not ready: 2 of \d+ required items fail: r\.drills\.switchover, r\.drills\.kill/);
  });
});

describe('failover-test on the lab', () => {
  it('kill: the primary host dies; a replica takes over within the worst case, no acknowledged write lost, old primary rejoins', async () => {
    const { code, doc, stderr } = await drill('kill');
    const d = doc.drills[0]!;
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(doc.passed).toBe(true);
    expect(d.newLeader).not.toBe(d.oldLeader);
    expectNoLostWrite(d);
    expect(d.outage.seconds).not.toBeNull();
    expect(d.outage.seconds!).toBeLessThanOrEqual(worstS);
    expect(d.timeline.rejoinedS).not.toBeNull();
    expect(stderr).toMatch(/detection\s+\+\d/);
    await expectHealthy();
  });

  it('crash: Patroni and PostgreSQL die on a live host; the service manager restarts Patroni, which keeps its leader key: no failover, nothing lost', async () => {
    const { code, doc, stderr } = await drill('crash');
    const d = doc.drills[0]!;
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(d.newLeader).toBe(d.oldLeader);
    expectNoLostWrite(d);
    // Far below a host death's worst case: no lock has to expire.
    expect(d.outage.seconds!).toBeLessThan(d.timings.ttl);
    expect(d.notes.join('\n')).toMatch(/resumed as leader with its lock still held|kept leading on its timeline/);
    console.log(`crash drill: write outage ${d.outage.seconds} s`);
    await expectHealthy();
  });

  it('switchover: planned, with a short write gap and nothing lost; --html writes the report with its timeline', async () => {
    const html = join(lab.dir, 'switchover.html');
    const { code, doc, stderr } = await drill('switchover', ['--html', html]);
    const d = doc.drills[0]!;
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(d.newLeader).not.toBe(d.oldLeader);
    expectNoLostWrite(d);
    expect(d.outage.seconds!).toBeLessThanOrEqual(worstS);
    // Acknowledged writes per 100 ms per writer, from the load's start to its stop: the report's chart.
    expect(d.series.writers).toHaveLength(4);
    expect(d.series.writers.flat().reduce((a, b) => a + b, 0)).toBe(d.writes.acknowledged);
    const page = await readFile(html, 'utf8');
    expect(page).toContain('Readiness not measured in this run');
    expect(page).toMatch(/PASS<\/span> switchover drill · /);
    await expectHealthy();
  });

  it('etcd-member: one etcd member dies; the leader stays and writes carry on', async () => {
    const { code, doc, stderr } = await drill('etcd-member');
    const d = doc.drills[0]!;
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(d.newLeader).toBe(d.oldLeader);
    expectNoLostWrite(d);
    // No failover: the longest pause is nowhere near a ttl.
    expect(d.outage.seconds!).toBeLessThan(d.timings.ttl);
    await expectHealthy();
  });

  it('refuses to drill a degraded cluster and says what is wrong', async () => {
    const ctx = await lab.context();
    const s = await snapshot(ctx.inventory);
    const replica = s.members.find((m) => m.name !== s.leader)!.name;
    const node = await ctx.pool.node(replica);
    await node.services.stop({ name: 'patroni', stopTimeoutMs: 60_000 });
    try {
      const r = await lab.cli(['failover-test', '--mode', 'kill']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('refusing to run a kill drill: the cluster is not healthy');
      expect(r.stderr).toContain(replica);
    } finally {
      await node.services.start(patroniService(ctx.inventory, node));
    }
    const deadline = Date.now() + 90_000;
    while (!assessHealth(await snapshot(ctx.inventory), ['db1', 'db2', 'db3']).healthy && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    await expectHealthy();
  });

  it('off the lab, asks for the cluster name; non-interactive without --yes is a usage error naming --yes', async () => {
    const real = join(lab.dir, 'real.yaml');
    // The same cluster as an operator's inventory: not a lab, so without the lab's own alert receiver either.
    const doc = parseYaml(await readFile(lab.config, 'utf8')) as { lab: boolean; alerting?: { lab_receiver?: unknown } };
    doc.lab = false;
    delete doc.alerting?.lab_receiver;
    await writeFile(real, stringifyYaml(doc));
    await copyFile(secretsPathFor(lab.config), secretsPathFor(real));
    await chmod(secretsPathFor(real), 0o600);
    const { dpgc } = await import('../helpers/cli.js');
    const r = await dpgc(['-c', real, 'failover-test', '--mode', 'kill']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Type the cluster name');
    expect(r.stderr).toContain('--yes');
  });
  // A hung or cut-off primary wakes after the cluster has moved on for 2 × ttl. Before Patroni 3.0.3
  // it could write its leader key back and lose what the new leader acknowledged (patroni/patroni#2689);
  // dpgc installs a Patroni with the fix, so both assert the full guarantee, unconditionally.
  it('freeze: the hung primary wakes up after the stall and does not acknowledge a write; nothing is lost', async () => {
    const { code, doc, stderr } = await drill('freeze');
    const d = doc.drills[0]!;
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(d.stallS).toBe(2 * d.timings.ttl);
    expect(d.leaderRetakenFrom).toBeNull();
    expect(d.newLeader).not.toBe(d.oldLeader);
    expect(d.oldPrimaryProbe?.accepted).toBe(false);
    expectNoLostWrite(d);
    expect(d.outage.seconds!).toBeLessThanOrEqual(worstS);
    await expectHealthy();
  });

  it('partition: the primary cut off from etcd and its peers is replaced; back on the network it rejoins; nothing is lost', async () => {
    const { code, doc, stderr } = await drill('partition');
    const d = doc.drills[0]!;
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(d.leaderRetakenFrom).toBeNull();
    expect(d.newLeader).not.toBe(d.oldLeader);
    expectNoLostWrite(d);
    expect(d.outage.seconds!).toBeLessThanOrEqual(worstS);
    expect(d.timeline.rejoinedS).not.toBeNull();
    await expectHealthy();
  });

  it('after every drill, verify finds one timeline lineage on every member', async () => {
    const r = await lab.cli(['--json', 'verify', '--sprint', '3']);
    const doc = JSON.parse(r.stdout) as { results: { id: string; verdict: string; detail?: string }[] };
    const t = doc.results.find((x) => x.id === 's3.timeline.history')!;
    expect(t.verdict, t.detail).toBe('pass');
  });
});

describe('dpgc readiness after the drills', () => {
  it('is ready: every required item passes (the lab has no watchdog: a warning), the drills are recorded in the cluster', async () => {
    const junit = join(lab.dir, 'readiness.xml');
    const html = join(lab.dir, 'readiness.html');
    const r = await lab.cli(['--json', 'readiness', '--junit', junit, '--html', html], { timeoutMs: 280_000 });
    const doc = JSON.parse(r.stdout) as ReadinessDoc;
    expect(doc.items.filter((i) => i.verdict === 'fail')).toEqual([]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(doc.ready).toBe(true);
    expect(doc.score.passed).toBe(doc.score.required);
    expect(doc.items.find((i) => i.id === 's3.patroni.watchdog')!.verdict).toBe('warn');
    expect(doc.items.find((i) => i.id === 'r.drills.kill')!.value).toMatch(/ h ago$/);
    expect(await readFile(junit, 'utf8')).toContain('name="dpgc readiness sprint 3"');
    expect(await readFile(html, 'utf8')).toMatch(/id="readiness-verdict" class="verdict pass">READY: (\d+)\/\1 required items pass/);
  });

  // A full `dpgc report` measures readiness again (about 95 s on a loaded lab): the browser reads the file
  // that `readiness --html` wrote above (the same writer, with the verdict), and `dpgc report --no-readiness`.
  it('dpgc report --html: one self-contained file that Chromium shows: topology, the verdict, a timeline per drill, backups and PITR, lag', async () => {
    const file = join(lab.dir, 'report.html');
    const withReadiness = join(lab.dir, 'readiness.html');
    const r = await lab.cli(['--json', 'report', '--no-readiness', '--html', file], { timeoutMs: 120_000 });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ file });
    const ctx = await lab.context();
    const leader = await currentLeader(ctx.inventory);
    const recorded = await withClient(ctx.secrets, superuserOn(ctx.inventory, leader), async (c) => (await c.query<{ id: string; mode: string }>(`SELECT id::text, mode FROM ${DRILL_LOG} ORDER BY at DESC, id DESC`)).rows);
    expect(recorded.map((x) => x.mode)).toEqual(expect.arrayContaining(['kill', 'switchover']));

    const browser = await launchBrowser();
    try {
      const full = await browser.open(withReadiness);
      const report = await browser.open(file);
      for (const [f, b] of [[withReadiness, full], [file, report]] as const) {
        const { page } = b;
        await page.waitForSelector('body[data-charts]');
        expect(await page.title()).toBe(`dpgc report: ${ctx.inventory.cluster}`);
        expect(await page.textContent('#leader')).toBe(leader.name);
        expect(await page.textContent('#sync-standby')).toMatch(/^db[123]$/);
        for (const h of ['db1', 'db2', 'db3']) {
          // host, address, roles, Patroni role, state, timeline, lag, PostgreSQL, Patroni
          const cells = await page.locator(`#topology tr[data-host="${h}"] td`).allTextContents();
          expect({ roles: cells[2], postgres: cells[7], patroni: cells[8] }).toMatchObject({ roles: expect.stringContaining('postgres'), postgres: expect.stringMatching(/^15\.\d+/), patroni: expect.stringMatching(/^4\.\d+\.\d+$/) });
        }
        // A drawn chart per drill (Chart.js holds it, its canvas has pixels) with every writer.
        const drawn = await page.evaluate(() => {
          const Chart = (window as unknown as { Chart: { getChart(c: HTMLCanvasElement): { data: { datasets: unknown[] } } | undefined } }).Chart;
          return [...document.querySelectorAll<HTMLCanvasElement>('.drill canvas')].map((c) => {
            const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
            let ink = 0;
            for (let i = 3; i < px.length; i += 4) if (px[i]! > 0) ink++;
            return { id: c.getAttribute('data-chart'), datasets: Chart.getChart(c)?.data.datasets.length ?? 0, inked: ink > 5000 };
          });
        });
        expect(drawn).toEqual(recorded.map((x) => ({ id: `drill-${x.id}`, datasets: 4, inked: true })));
        const kill = recorded.find((x) => x.mode === 'kill')!.id;
        const configs = JSON.parse((await page.textContent('#dpgc-charts'))!) as Record<string, { options: { plugins: { annotation: { annotations: Record<string, { label: { content: string } }> } } } }>;
        const marks = Object.values(configs[`drill-${kill}`]!.options.plugins.annotation.annotations).map((a) => a.label.content);
        expect(marks).toEqual(expect.arrayContaining(['fault', 'detection', 'promotion', 'first write', 'rejoin']));
        expect(marks.some((m) => /^outage \d+\.\d\d s$/.test(m))).toBe(true);
        expect(await page.textContent(`.drill[data-drill="${kill}"] .drill-verdict`)).toMatch(/^RTO \d+\.\d\d s \(budget \d+ s\); \d+ writes acknowledged, 0 lost, \d+ in doubt$/);
        // Sprint 4 is deployed on the lab: its backups; Prometheus has the replicas' lag.
        expect(await page.locator('#backups tbody tr').count()).toBeGreaterThan(0);
        expect(await page.locator('canvas[data-chart="lag"]').count()).toBe(1);
        // Self-contained: the document is the only request, nothing failed, nothing complained.
        expect({ requests: b.requests, failed: b.failedRequests, errors: b.consoleErrors }).toEqual({ requests: [pathToFileURL(f).href], failed: [], errors: [] });
      }
      // The verdict with every item, and the PITR drill the readiness measurement ran.
      expect(await full.page.textContent('#readiness-verdict')).toMatch(/^READY: (\d+)\/\1 required items pass/);
      expect(await full.page.getAttribute('#readiness tr[data-item="r.drills.kill"]', 'data-verdict')).toBe('pass');
      expect(await full.page.locator('#readiness tr[data-item]').count()).toBeGreaterThan(30);
      expect(await full.page.textContent('#pitr')).toMatch(/PASS restore \d/);
      expect(await report.page.textContent('#readiness-verdict')).toMatch(/^Readiness not measured in this run/);

      const out = process.env['DPGC_TEST_ARTEFACTS'] ?? lab.dir;
      await mkdir(out, { recursive: true });
      await copyFile(withReadiness, join(out, 'report.html'));
      await full.page.screenshot({ path: join(out, 'report.png'), fullPage: true });
      await full.page.locator(`.drill[data-drill="${recorded.find((x) => x.mode === 'kill')!.id}"]`).screenshot({ path: join(out, 'report-drill.png') });
      console.log(`report: ${withReadiness} (${((await stat(withReadiness)).size / 1024).toFixed(0)} KiB); screenshots in ${out}`);
    } finally {
      await browser.close();
    }
  });

  it('a kill drill older than drill_max_age_days fails r.drills.kill; a waiver makes it WAIVED, an expired one fails again', async () => {
    const ctx = await lab.context();
    const leader = await currentLeader(ctx.inventory);
    const q = (sql: string) => withClient(ctx.secrets, superuserOn(ctx.inventory, leader), (c) => c.query(sql));
    await q(`UPDATE ${DRILL_LOG} SET at = at - interval '40 days' WHERE mode = 'kill'`);
    const old = await item('r.drills.kill');
    expect(old).toMatchObject({ verdict: 'fail', threshold: 'within 30 days' });
    expect(old.detail).toMatch(/^the last passed kill drill was 40 days ago/);
    const text = await readFile(lab.config, 'utf8');
    try {
      await writeFile(lab.config, `${text}\nreadiness:\n  waivers:\n    - id: r.drills.kill\n      reason: kill drill scheduled for the next maintenance window\n      expires: '2999-12-31'\n`);
      const w = await lab.cli(['readiness'], { timeoutMs: 280_000 });
      expect(w.stderr.split('\n').filter((l) => /^FAIL /.test(l))).toEqual([]);
      expect(w.code, w.stderr.slice(-2000)).toBe(0);
      expect(w.stderr).toMatch(/WAIVED A kill failover drill passed on this cluster recently/);
      expect(w.stderr).toMatch(/waived until 2999-12-31: kill drill scheduled for the next maintenance window/);
      expect(w.stderr).toMatch(/1 of them waived — ready/);
      await writeFile(lab.config, `${text}\nreadiness:\n  waivers:\n    - id: r.drills.kill\n      reason: kill drill scheduled for the next maintenance window\n      expires: '2020-01-31'\n`);
      const x = await lab.cli(['--json', 'readiness'], { timeoutMs: 280_000 });
      expect(x.code).toBe(1);
      const kill = (JSON.parse(x.stdout) as ReadinessDoc).items.find((i) => i.id === 'r.drills.kill')!;
      expect(kill.verdict).toBe('fail');
      expect(kill.detail).toMatch(/^the waiver expired on 2020-01-31/);
    } finally {
      await writeFile(lab.config, text);
      await q(`UPDATE ${DRILL_LOG} SET at = at + interval '40 days' WHERE mode = 'kill'`);
    }
    expect((await item('r.drills.kill')).verdict).toBe('pass');
  });

  it('r.auth.scram-only fails on a trust line in a member’s pg_hba.conf, naming the host and line', async () => {
    const ctx = await lab.context();
    const db2 = await ctx.pool.node('db2');
    const file = `${db2.paths.pgData}/pg_hba.conf`;
    const before = await readFile(file, 'utf8');
    try {
      await writeFile(file, `${before}host all all 127.0.0.1/32 trust\n`);
      const r = await item('r.auth.scram-only');
      expect(r.verdict).toBe('fail');
      expect(r.detail).toMatch(/^db2: pg_hba\.conf line \d+: host all all 127\.0\.0\.1\/32 trust$/m);
    } finally {
      await writeFile(file, before);
    }
    expect((await item('r.auth.scram-only')).verdict).toBe('pass');
  });

  it('r.pgbouncer.capacity fails when PgBouncer’s pools outgrow max_connections; RELOAD restores the rendered sizes', async () => {
    const ctx = await lab.context();
    const s = ctx.pool.specs('pgbouncer')[0]!;
    const admin = { name: s.name, address: s.address, port: ctx.inventory.ports.pgbouncer, database: 'pgbouncer', user: ROLES_DB.pgbouncerAdmin.user, secret: ROLES_DB.pgbouncerAdmin.secret };
    await withClient(ctx.secrets, admin, (c) => c.query('SET default_pool_size = 500'));
    try {
      const r = await item('r.pgbouncer.capacity');
      expect(r.verdict).toBe('fail');
      expect(r.detail).toMatch(/^PgBouncer may open \d+ server connections to the primary/);
    } finally {
      await withClient(ctx.secrets, admin, (c) => c.query('RELOAD'));
    }
    expect((await item('r.pgbouncer.capacity')).verdict).toBe('pass');
  });

  it('r.disk.headroom fails when the threshold is above the free space, naming host and directory', async () => {
    const text = await readFile(lab.config, 'utf8');
    try {
      await writeFile(lab.config, `${text}\nreadiness:\n  disk_min_free_pct: 90\n`);
      const r = await item('r.disk.headroom');
      expect(r.verdict).toBe('fail');
      expect(r.detail).toMatch(/^db1: data directory on \S+ has [\d.]+% free/m);
      expect(r.threshold).toBe('≥ 90% free');
    } finally {
      await writeFile(lab.config, text);
    }
  });

  it('r.certs.valid fails on a certificate within 30 days of its end, naming host and file; the sprint’s own issuing renews it', async () => {
    expect((await item('r.certs.valid')).verdict).toBe('pass');
    const ctx = await lab.context();
    const n = await ctx.pool.node('db2');
    const { caPathsFor, CertificateAuthority } = await import('../../src/components/ca.js');
    const { ensureTls, tlsFiles } = await import('../../src/components/pgbackrest.js');
    const f = tlsFiles(n.paths);
    const ca = caPathsFor(ctx.inventory.file);
    // Signed by the cluster's CA for the key in place, like the real one, but for 10 days only.
    const { extensionsFor } = await import('../../src/components/ca.js');
    const { certRequest } = await import('../../src/components/pgbackrest.js');
    const ext = `${f.cert}.test-ext`;
    await n.host.writeFile(ext, extensionsFor(certRequest(n.spec)), { mode: 0o600 });
    const csr = await n.host.exec(['openssl', 'req', '-new', '-key', f.key, '-subj', '/CN=db2']);
    const short = await n.host.exec(['openssl', 'x509', '-req', '-CA', ca.cert, '-CAkey', ca.key, '-days', '10', '-sha256', '-extfile', ext], { input: csr.stdout });
    await n.host.exec(['rm', '-f', ext]);
    await n.host.writeFile(f.cert, short.stdout, { mode: 0o644, owner: 'postgres' });
    const r = await item('r.certs.valid');
    expect(r.verdict).toBe('fail');
    expect(r.detail).toMatch(new RegExp(`^db2: ${f.cert} \\(CN db2\\) expires \\d{4}-\\d{2}-\\d{2}, in (9|10) days$`, 'm'));
    expect(r.remedy).toContain('dpgc sprint 4');
    const { ca: authority } = await CertificateAuthority.open(CertificateAuthority.controlHost({ dryRun: false, logger: ctx.logger }), ctx.inventory.file, ctx.inventory.cluster, { mayCreate: false });
    expect((await ensureTls(authority, n)).note).toMatch(/^issued: expires in (9|10) days$/);
    expect((await item('r.certs.valid')).verdict).toBe('pass');
  });

  it('r.replication.synchronous fails when synchronous mode is turned off behind dpgc’s back', async () => {
    const ctx = await lab.context();
    const leader = await currentLeader(ctx.inventory);
    const auth = { username: 'patroni', password: await ctx.secrets.get('patroni_rest') };
    const { rest, restTarget } = await import('../../src/components/patroni.js');
    await rest(restTarget(ctx.inventory, leader), 'PATCH', '/config', { body: { synchronous_mode: false }, auth });
    try {
      const r = await item('r.replication.synchronous');
      expect(r).toMatchObject({ verdict: 'fail', value: 'off' });
    } finally {
      await rest(restTarget(ctx.inventory, leader), 'PATCH', '/config', { body: { synchronous_mode: true }, auth });
    }
    expect((await item('r.replication.synchronous')).verdict).toBe('pass');
  });
});
