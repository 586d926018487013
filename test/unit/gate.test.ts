import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Check } from '../../src/checks/types.js';
import type { RunContext } from '../../src/context.js';
import { CriteriaError } from '../../src/errors.js';
import { silentLogger } from '../../src/output/log.js';
import { twoWay } from '../../src/plan/step.js';
import { labInv } from '../helpers/lab-inventory.js';
import type { Sprint } from '../../sprints/types.js';

/**
 * The gate on an inventory without a cluster: sprint N runs only when sprint
 * N-1's criteria pass (or with --force, recorded), --dry-run observes and
 * records nothing, a real run applies and records.
 */
const world = { prevPasses: true, observed: 0, applied: 0, measured: 0 };

function fakeSprint(id: number, passes: () => boolean): Sprint {
  const check: Check = { id: `s${id}.fake`, title: `sprint ${id} holds`, sprint: id, kind: 'state', run: async () => (world.measured++, passes() ? { verdict: 'pass' } : { verdict: 'fail', detail: 'broken' }) };
  return {
    id,
    title: `fake sprint ${id}`,
    roles: [],
    tasks: () => [
      twoWay('file', `a step of sprint ${id}`, 'db1', {
        observe: async () => (world.observed++, { changed: true }),
        apply: async () => (world.applied++, true),
      }),
    ],
    criteria: [check],
  };
}

vi.mock('../../sprints/index.js', () => ({
  loadSprint: async (id: number) => (id <= 1 ? fakeSprint(id, () => (id === 0 ? world.prevPasses : true)) : undefined),
  implementedSprints: () => [0, 1],
}));

const { runSprint } = await import('../../src/gate.js');

let dir: string;
let ctx: RunContext;

function context(dryRun: boolean): RunContext {
  const inventory = { ...labInv(), file: join(dir, 'dpgc.yaml') };
  return {
    inventory,
    secrets: {} as RunContext['secrets'],
    pool: {} as RunContext['pool'],
    logger: silentLogger,
    options: { config: inventory.file, json: true, yes: true, dryRun, verbose: false, acceptNewHostKeys: false, nonInteractive: true },
  };
}

const state = async () => JSON.parse(await readFile(join(dir, 'dpgc.state.json'), 'utf8')) as { sprints: Record<string, { passed: boolean; forced?: { failing: string[] } }> };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dpgc-gate-'));
  await writeFile(join(dir, 'dpgc.yaml'), 'cluster: fake\n');
  Object.assign(world, { prevPasses: true, observed: 0, applied: 0, measured: 0 });
  ctx = context(false);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the gate', () => {
  it('a sprint whose predecessor passes runs, applies its steps and records its criteria', async () => {
    const r = await runSprint(ctx, 1, { force: false });
    expect(r).toMatchObject({ sprint: 1, forced: false, passed: true, tasks: { changed: 1, unchanged: 0 } });
    expect(world).toMatchObject({ applied: 1, observed: 0 });
    expect((await state()).sprints['1']).toMatchObject({ passed: true });
  });

  it('is locked while the previous sprint fails: nothing runs, nothing is recorded', async () => {
    world.prevPasses = false;
    const e = await runSprint(ctx, 1, { force: false }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CriteriaError);
    expect((e as Error).message).toContain("sprint 1 is locked: 1 of sprint 0's criteria fail on the live cluster");
    expect((e as Error).message).toContain('s0.fake: sprint 0 holds');
    expect(world).toMatchObject({ applied: 0, observed: 0 });
    expect(existsSync(join(dir, 'dpgc.state.json'))).toBe(false);
  });

  it('--force runs anyway and records which criteria were failing', async () => {
    world.prevPasses = false;
    const r = await runSprint(ctx, 1, { force: true });
    expect(r.forced).toBe(true);
    expect(world.applied).toBe(1);
    expect((await state()).sprints['1']).toMatchObject({ forced: { failing: ['s0.fake: sprint 0 holds'] } });
  });

  it('--dry-run observes every step, applies none, measures nothing and records nothing', async () => {
    const r = await runSprint(context(true), 1, { force: false });
    expect(r).toMatchObject({ tasks: { changed: 1, unchanged: 0 }, results: [] });
    expect(world).toMatchObject({ applied: 0, observed: 1 });
    expect(existsSync(join(dir, 'dpgc.state.json'))).toBe(false);
  });

  it('within one run (dpgc up), the previous sprint measured just now is the gate: not measured twice', async () => {
    const s0 = await runSprint(ctx, 0, { force: false });
    expect(world.measured).toBe(1);
    const s1 = await runSprint(ctx, 1, { force: false, previous: s0 });
    expect(s1.passed).toBe(true);
    // Sprint 1's own criterion only; sprint 0's was not measured again.
    expect(world.measured).toBe(2);
  });

  it('those results gate like live ones: a failing one locks the next sprint', async () => {
    world.prevPasses = false;
    const s0 = await runSprint(ctx, 0, { force: false });
    world.prevPasses = true;
    const e = await runSprint(ctx, 1, { force: false, previous: s0 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CriteriaError);
    expect(world.applied).toBe(1);
  });

  it('without a run of the previous sprint (dpgc sprint N), or with a run of another sprint, it re-verifies live', async () => {
    await runSprint(ctx, 1, { force: false });
    expect(world.measured).toBe(2);
    const s1 = await runSprint(ctx, 1, { force: false });
    await runSprint(ctx, 1, { force: false, previous: s1 });
    expect(world.measured).toBe(6);
  });

  it('sprint 0 has no gate', async () => {
    world.prevPasses = false;
    await runSprint(ctx, 0, { force: false }).catch(() => undefined);
    expect(world.applied).toBe(1);
  });
});
