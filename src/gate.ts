import { loadSprint } from '../sprints/index.js';
import type { Sprint } from '../sprints/types.js';
import { allRequiredPass, formatOutcome, runChecks } from './checks/run.js';
import type { CheckOutcome } from './checks/types.js';
import { assertRolesFor } from './config/load.js';
import type { RunContext } from './context.js';
import { CriteriaError, UsageError } from './errors.js';
import { inventoryHash, recordSprint, statePathFor } from './state.js';
import { runTasks, summarize } from './tasks/run.js';

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
  const checks = sprint.criteria(ctx);
  return runChecks(ctx, checks, { onResult: (o) => ctx.options.json || ctx.logger.info(formatOutcome(o)) });
}

/**
 * The gate, the tasks, then the sprint's own criteria, recorded. A sprint
 * unlocks only when the previous one's criteria pass on the live cluster.
 */
export async function runSprint(ctx: RunContext, id: number, opts: { force: boolean }): Promise<SprintRun> {
  assertRolesFor(ctx.inventory, id);
  const sprint = await requireSprint(id);
  let forcedFailing: string[] | undefined;
  if (id > 0) {
    const prev = await requireSprint(id - 1);
    ctx.logger.info(`Re-verifying sprint ${id - 1} (${prev.title}) on the live cluster before sprint ${id}:`);
    const gate = await measure(ctx, prev);
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
  const taskCtx = await runTasks(sprint.tasks(ctx), ctx.options);
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
