import type { Command } from 'commander';
import { stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { implementedSprints } from '../../../sprints/index.js';
import { allRequiredPass, toJUnit } from '../../checks/run.js';
import type { Check, CheckOutcome } from '../../checks/types.js';
import { CriteriaError, UsageError } from '../../errors.js';
import { measureSprints, requireSprint } from '../../gate.js';
import { readState, statePathFor } from '../../state.js';
import { emitJson, withContext } from '../setup.js';

/**
 * Which sprints: --sprint N, --all, or by default every sprint the state file
 * says was completed (all implemented ones when there is no record). The
 * verdicts themselves are always measured live.
 */
export async function verifyCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ sprint?: number; all?: boolean; quick?: boolean; junit?: string }>();
  if (o.sprint !== undefined && o.all) {
    throw new UsageError('--sprint and --all exclude each other: verify one sprint, or all of them', { hint: `Pass --sprint ${o.sprint} or --all, not both.` });
  }
  // Found out before minutes of measuring, not after.
  if (o.junit) await assertWritableDir(o.junit);
  await withContext(cmd, async (ctx) => {
    let ids: number[];
    if (o.sprint !== undefined) ids = [o.sprint];
    else if (o.all) ids = implementedSprints();
    else {
      const recorded = Object.keys((await readState(statePathFor(ctx.inventory.file))).sprints).map(Number);
      ids = recorded.length ? implementedSprints().filter((i) => i <= Math.max(...recorded)) : implementedSprints();
    }
    const sprints = await Promise.all(ids.map((id) => requireSprint(id)));
    // --quick: the checks that only read the cluster's current state (Check.kind), no load, no waiting.
    const results: CheckOutcome[] = await measureSprints(ctx, sprints, { headings: true, ...(o.quick ? { only: (c: Check) => c.kind === 'state' } : {}) });
    const passed = allRequiredPass(results);
    if (o.junit) {
      await writeFile(o.junit, toJUnit(results)).catch((e: NodeJS.ErrnoException) => {
        throw new UsageError(`--junit ${o.junit}: cannot write the report (${e.code ?? e.message})`, { hint: 'Pass a path in a directory you can write to.' });
      });
    }
    if (ctx.options.json) emitJson({ passed, sprints: ids, quick: Boolean(o.quick), results });
    const failed = results.filter((r) => r.verdict === 'fail' && r.required);
    if (!passed) throw new CriteriaError(`${failed.length} of ${results.length} checks fail: ${failed.map((r) => r.id).join(', ')}`);
    ctx.logger.info(`All ${results.length} ${o.quick ? 'state ' : ''}checks pass (sprints ${ids.join(', ')}).`);
  });
}

/** `--junit reports/x.xml`: the directory must exist (dpgc does not create directories it was not asked to). */
export async function assertWritableDir(file: string, flag = '--junit'): Promise<void> {
  const dir = dirname(resolve(file));
  const st = await stat(dir).catch(() => undefined);
  if (!st) throw new UsageError(`${flag} ${file}: the directory ${dir} does not exist`, { hint: `Create it first (mkdir -p ${dir}), or pass a path in an existing directory.` });
  if (!st.isDirectory()) throw new UsageError(`${flag} ${file}: ${dir} is not a directory`, { hint: 'Pass a path in an existing directory.' });
}
