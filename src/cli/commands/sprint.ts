import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { CriteriaError } from '../../errors.js';
import { requireSprint, runSprint } from '../../gate.js';
import { formatPlan, planSprint } from '../../plan/plan.js';
import { globals } from '../globals.js';
import { emitJson, withContext } from '../setup.js';
import { terminalPrompts } from '../wizard/prompts.js';
import { askSprintQuestions } from '../wizard/sprint-wizard.js';

export async function sprintCommand(cmd: Command, n: number): Promise<void> {
  const { force } = cmd.opts<{ force?: boolean }>();
  await runSprintCommand(cmd, n, { force: force ?? false });
}

/** `dpgc sprint N`, also reached from `dpgc init`'s last question (whose --force means something else). */
export async function runSprintCommand(cmd: Command, n: number, o: { force: boolean }): Promise<void> {
  const g = globals(cmd);
  // On a terminal: the open questions, then the plan, then one confirmation (none of it with --yes, CI, no TTY, --json or --dry-run).
  if (!g.nonInteractive && !g.dryRun && !g.json && !(await sprintWizard(cmd, n))) return;
  await withContext(cmd, async (ctx) => {
    const run = await runSprint(ctx, n, { force: o.force });
    if (ctx.options.json) emitJson(run);
    if (!run.passed) {
      const failing = run.results.filter((r) => r.verdict === 'fail' && r.required).map((r) => r.id);
      throw new CriteriaError(`sprint ${n} ran, but ${failing.length} of its criteria fail: ${failing.join(', ')}`, {
        hint: `Fix what the failing checks say, then re-run \`dpgc sprint ${n}\` (safe to repeat) or \`dpgc verify --sprint ${n}\`.`,
      });
    }
    ctx.logger.info(`Sprint ${n} passed.${n < 5 ? ` Sprint ${n + 1} is unlocked.` : ''}`);
  }, { changesHosts: true, createsSecrets: true });
}

/**
 * The sprint wizard: asks what the sprint needs and the inventory leaves
 * open (answers written back), prints the plan as `dpgc plan N` would
 * (observed, nothing changed), and asks once. false: the operator said no.
 */
async function sprintWizard(cmd: Command, n: number): Promise<boolean> {
  const g = globals(cmd);
  const prompts = await terminalPrompts();
  const file = resolve(g.config);
  if (existsSync(file)) await askSprintQuestions(prompts, file, n);
  const changes = await withContext(cmd, async (ctx) => {
    const doc = await planSprint(ctx, await requireSprint(n));
    for (const l of formatPlan(doc)) ctx.logger.info(l);
    return doc.changes;
  }, { observeOnly: true, createsSecrets: true });
  if (changes === 0) return true;
  if (await prompts.confirm({ message: `Apply sprint ${n}: ${changes} step${changes === 1 ? '' : 's'} that change${changes === 1 ? 's' : ''} the hosts, then measure its criteria?`, default: true })) return true;
  prompts.say('Nothing changed.');
  return false;
}
