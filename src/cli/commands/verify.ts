import type { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { implementedSprints } from '../../../sprints/index.js';
import { allRequiredPass, toJUnit } from '../../checks/run.js';
import type { CheckOutcome } from '../../checks/types.js';
import { CriteriaError } from '../../errors.js';
import { measure, requireSprint } from '../../gate.js';
import { readState, statePathFor } from '../../state.js';
import { emitJson, withContext } from '../setup.js';

/**
 * Which sprints: --sprint N, --all, or by default every sprint the state file
 * says was completed (all implemented ones when there is no record). The
 * verdicts themselves are always measured live.
 */
export async function verifyCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ sprint?: number; all?: boolean; junit?: string }>();
  await withContext(cmd, async (ctx) => {
    let ids: number[];
    if (o.sprint !== undefined) ids = [o.sprint];
    else if (o.all) ids = implementedSprints();
    else {
      const recorded = Object.keys((await readState(statePathFor(ctx.inventory.file))).sprints).map(Number);
      ids = recorded.length ? implementedSprints().filter((i) => i <= Math.max(...recorded)) : implementedSprints();
    }
    const results: CheckOutcome[] = [];
    for (const id of ids) {
      const sprint = await requireSprint(id);
      ctx.logger.info(`Sprint ${id}: ${sprint.title}`);
      results.push(...(await measure(ctx, sprint)));
    }
    const passed = allRequiredPass(results);
    if (o.junit) await writeFile(o.junit, toJUnit(results));
    if (ctx.options.json) emitJson({ passed, sprints: ids, results });
    const failed = results.filter((r) => r.verdict === 'fail' && r.required);
    if (!passed) throw new CriteriaError(`${failed.length} of ${results.length} checks fail: ${failed.map((r) => r.id).join(', ')}`);
    ctx.logger.info(`All ${results.length} checks pass (sprints ${ids.join(', ')}).`);
  });
}
