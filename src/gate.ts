import { loadSprint } from '../sprints/index.js';
import type { Sprint } from '../sprints/types.js';
import { allRequiredPass, formatOutcome, runChecks } from './checks/run.js';
import type { Check, CheckOutcome } from './checks/types.js';
import { assertRolesFor } from './config/load.js';
import type { RunContext } from './context.js';
import { CriteriaError, UsageError } from './errors.js';
import { inventoryHash, recordSprint, statePathFor } from './state.js';
import { runSteps, summarize } from './tasks/run.js';

export interface SprintRun {
  sprint: number;
  forced: boolean;
  tasks: { changed: number; unchanged: number };
  results: CheckOutcome[];
  passed: boolean;
}

export async function requireSprint(id: number): Promise<Sprint> {
  const s = await loadSprint(id);
  if (!s) throw new UsageError(`sprint ${id} is not implemented in this version of dpgc`, { hint: 'Run `dpgc --help`; implemented sprints are listed under `dpgc up`.' });
  return s;
}

/** Measure a sprint's criteria, printing each line for humans as it arrives. */
export async function measure(ctx: RunContext, sprint: Sprint): Promise<CheckOutcome[]> {
  return measureSprints(ctx, [sprint], { headings: false });
}

/**
 * Several sprints' criteria in one schedule, so independent checks of
 * different sprints overlap (src/checks/schedule.ts); printed in the sprints'
 * order, each sprint's lines under its title. `only` picks checks by what they
 * are (e.g. `kind === 'state'` for `verify --quick`), never by id.
 */
export async function measureSprints(ctx: RunContext, sprints: Sprint[], o: { headings: boolean; only?: (c: Check) => boolean }): Promise<CheckOutcome[]> {
  const checks = sprints.flatMap((s) => s.criteria.filter((c) => o.only?.(c) ?? true));
  const titled = new Set<number>();
  return runChecks(ctx, checks, {
    onResult: (r) => {
      if (o.headings && !titled.has(r.sprint)) {
        titled.add(r.sprint);
        ctx.logger.info(`Sprint ${r.sprint}: ${sprints.find((s) => s.id === r.sprint)?.title ?? ''}`);
      }
      if (!ctx.options.json) ctx.logger.info(formatOutcome(r));
    },
  });
}

/**
 * The gate, the tasks, then the sprint's own criteria, recorded. A sprint
 * unlocks only when the previous one's criteria pass on the live cluster.
 * `previous`: the run of sprint id-1 that this process finished just now
 * (`dpgc up`); its criteria, measured live a moment ago with nothing run
 * since, are the gate, instead of measuring the same cluster twice in a row.
 * `dpgc sprint N` has no such run and always re-verifies.
 */
export async function runSprint(ctx: RunContext, id: number, opts: { force: boolean; previous?: SprintRun }): Promise<SprintRun> {
  assertRolesFor(ctx.inventory, id);
  const sprint = await requireSprint(id);
  let forcedFailing: string[] | undefined;
  if (id > 0) {
    const prev = await requireSprint(id - 1);
    const fresh = opts.previous?.sprint === id - 1 && opts.previous.results.length ? opts.previous.results : undefined;
    if (fresh) ctx.logger.info(`Sprint ${id - 1}'s criteria were measured on the live cluster just now, in this run: they open sprint ${id}.`);
    else ctx.logger.info(`Re-verifying sprint ${id - 1} (${prev.title}) on the live cluster before sprint ${id}:`);
    const gate = fresh ?? (await measure(ctx, prev));
    const failing = gate.filter((r) => r.verdict === 'fail' && r.required).map((r) => `${r.id}: ${r.title}`);
    if (failing.length) {
      if (!opts.force) {
        throw new CriteriaError(`sprint ${id} is locked: ${failing.length} of sprint ${id - 1}'s criteria fail on the live cluster:\n  ${failing.join('\n  ')}`, {
          hint: `Fix them (\`dpgc sprint ${id - 1}\` is safe to re-run), or pass --force to run anyway (recorded).`,
        });
      }
      ctx.logger.warn(`--force: running sprint ${id} although sprint ${id - 1} fails ${failing.length} criteria (recorded in the state file)`);
      forcedFailing = failing;
    }
  }
  ctx.logger.info(`Sprint ${id}: ${sprint.title}`);
  // The one place a sprint run decides between changing hosts and only saying what it would change.
  const taskCtx = await runSteps(sprint.tasks(ctx), { ...ctx.options, mode: ctx.options.dryRun ? 'observe' : 'apply', logger: ctx.logger });
  const tasks = summarize(taskCtx);
  ctx.logger.info(tasks.changed === 0 ? `Nothing to change: all ${tasks.unchanged} tasks were already done.` : `${tasks.changed} tasks changed something, ${tasks.unchanged} were already done.`);
  if (ctx.options.dryRun) {
    return { sprint: id, forced: forcedFailing !== undefined, tasks, results: [], passed: true };
  }
  ctx.logger.info(`Measuring sprint ${id}'s success criteria:`);
  const results = await measure(ctx, sprint);
  const passed = allRequiredPass(results);
  await recordSprint(statePathFor(ctx.inventory.file), id, {
    at: new Date().toISOString(),
    inventoryHash: await inventoryHash(ctx.inventory.file),
    passed,
    ...(forcedFailing ? { forced: { failing: forcedFailing } } : {}),
    results: results.map(({ id: cid, verdict, value, threshold, detail }) => ({ id: cid, verdict, value, threshold, detail })),
  });
  return { sprint: id, forced: forcedFailing !== undefined, tasks, results, passed };
}
