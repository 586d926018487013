import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { CheckOutcome } from '../../src/checks/types.js';
import { DATABASES, firstPostgres, superuserOn } from '../../src/components/endpoints.js';
import { clusterSizing } from '../../src/components/sizing.js';
import type { RunContext } from '../../src/context.js';
import { withClient } from '../../src/db/client.js';
import { waitUntil } from '../../src/wait.js';
import { createLab, type TestLab } from '../helpers/lab.js';

/**
 * PostgreSQL sized to its hosts, on a real lab (127.0.140.x): sprint 0 sizes
 * the base instance for three postgres hosts sharing this machine, the
 * settings criterion fails when a value is changed behind dpgc's back
 * (ALTER SYSTEM; a per-database ef_search reset) and passes after the
 * sprint repairs it. The same settings under Patroni (a PATCH caught on every
 * member and converged back, a restart-requiring change rolled through the
 * members) are tested on sprint23.test.ts's cluster, which exists anyway.
 */
const SUBNET = '140';
let lab: TestLab;
let ctx: RunContext;
const timings: Record<string, number> = {};

async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t = Date.now();
  try {
    return await fn();
  } finally {
    timings[name] = (Date.now() - t) / 1000;
  }
}

async function verify(sprint: number) {
  const r = await lab.cli(['--json', 'verify', '--sprint', String(sprint)]);
  const doc = JSON.parse(r.stdout) as { passed: boolean; results: CheckOutcome[] };
  return { code: r.code, byId: (id: string) => doc.results.find((x) => x.id === id)! };
}

/** Sprint 0, which must succeed and pass every criterion. */
async function sprint0() {
  const r = await lab.cli(['--yes', 'sprint', '0']);
  expect(r.code, r.stderr).toBe(0);
  return r;
}

async function setSettings(settings: Record<string, string>) {
  const doc = parse(await readFile(lab.config, 'utf8')) as { postgres?: { settings?: Record<string, string> } };
  doc.postgres = { ...(doc.postgres ?? {}), settings };
  await writeFile(lab.config, stringify(doc));
}

const show = (host: string, name: string) =>
  withClient(ctx.secrets, superuserOn(ctx.inventory, ctx.inventory.hosts.find((h) => h.name === host)!), async (c) => (await c.query<{ v: string }>('SELECT current_setting($1) AS v', [name])).rows[0]!.v);

describe('PostgreSQL sized to its hosts', () => {
  beforeAll(async () => {
    lab = await createLab(`127.0.${SUBNET}`);
    ctx = await lab.context();
  });
  afterAll(async () => {
    console.log(`sizing timings (s): ${JSON.stringify(timings)}`);
    await lab?.down();
  });

  it('sprint 0 sizes the base instance for the three postgres hosts sharing this machine; a second run changes nothing', async () => {
    await timed('sprint 0', () => sprint0());
    const v = await verify(0);
    for (const id of ['s0.postgres.settings', 's0.vector.ef-search', 's0.vector.index-memory']) expect(v.byId(id).verdict, `${id}: ${v.byId(id).detail}`).toBe('pass');
    const sizing = await clusterSizing(ctx.inventory, ctx.pool);
    expect(sizing.basis.sharedBy).toBe(3);
    const want = (n: string) => String(sizing.settings.find((s) => s.name === n)!.value);
    // Not PostgreSQL's 128MB default: a quarter of this machine's memory divided by three.
    expect(await show('db1', 'shared_buffers')).toBe(want('shared_buffers'));
    expect(await show('db1', 'shared_buffers')).not.toBe('128MB');
    expect(await show('db1', 'maintenance_work_mem')).toBe(want('maintenance_work_mem'));
    expect(await show('db1', 'huge_pages')).toBe('try');
    console.log(`sized: ${sizing.settings.map((s) => `${s.name}=${String(s.value)}`).join(' ')}`);
    const again = await timed('sprint 0 again', () => sprint0());
    expect(again.stderr).toMatch(/Nothing to change: all \d+ tasks were already done/);
  });

  it('fails naming work_mem after ALTER SYSTEM, and the database after its ef_search is reset; sprint 0 repairs both', async () => {
    const base = firstPostgres(ctx.inventory);
    await withClient(ctx.secrets, superuserOn(ctx.inventory, base), async (c) => {
      await c.query("ALTER SYSTEM SET work_mem = '1MB'");
      await c.query('SELECT pg_reload_conf()');
      await c.query(`ALTER DATABASE ${DATABASES.shared.name} RESET hnsw.ef_search`);
    });
    await waitUntil(async () => ((await show('db1', 'work_mem')) === '1MB' ? true : undefined), { timeoutMs: 10_000, everyMs: 200 }, 'work_mem reloaded');
    const v = await verify(0);
    expect(v.code).toBe(1);
    expect(v.byId('s0.postgres.settings').verdict).toBe('fail');
    expect(v.byId('s0.postgres.settings').detail).toMatch(/^db1: work_mem is 1MB, dpgc computed \d+MB \(profile\)$/);
    expect(v.byId('s0.vector.ef-search').verdict).toBe('fail');
    expect(v.byId('s0.vector.ef-search').detail).toMatch(/claude_flow_shared has hnsw\.ef_search unset/);
    const r = await sprint0();
    expect(r.stderr).toMatch(/Write the PostgreSQL settings .* \(changed, removed ALTER SYSTEM work_mem\)/);
    expect(r.stderr).toMatch(/Set the HNSW search breadth \(ef_search \d+\) for claude_flow_shared \(changed/);
    const after = await verify(0);
    expect(after.byId('s0.postgres.settings').verdict, after.byId('s0.postgres.settings').detail).toBe('pass');
    expect(after.byId('s0.vector.ef-search').verdict).toBe('pass');
  });

  it('an explicit setting wins, and status shows each key setting with where it came from', async () => {
    await setSettings({ work_mem: '32MB' });
    await sprint0();
    expect(await show('db1', 'work_mem')).toBe('32MB');
    // Before sprint 3 there is no Patroni: status exits 1 for that, and still shows the settings.
    const st = await lab.cli(['--json', 'status']);
    const view = JSON.parse(st.stdout) as { settings: { host: string; profile: string; rows: { name: string; value: string; source: string; ok: boolean }[] } };
    expect(view.settings.host).toBe('db1');
    expect(view.settings.profile).toBe('vector');
    expect(view.settings.rows.find((x) => x.name === 'work_mem')).toMatchObject({ value: '32MB', source: 'inventory', ok: true });
    expect(view.settings.rows.find((x) => x.name === 'shared_buffers')).toMatchObject({ source: 'profile', ok: true });
    expect(view.settings.rows.find((x) => x.name === 'huge_pages')).toMatchObject({ value: 'try', source: 'default', ok: true });
    const human = await lab.cli(['status']);
    expect(human.stderr).toMatch(/PostgreSQL settings on db1: profile vector, db1's memory shared by 3 postgres hosts/);
    expect(human.stderr).toMatch(/work_mem\s+32MB\s+inventory\s+postgres\.settings\.work_mem/);
  });
});
