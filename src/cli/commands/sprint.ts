import type { Command } from 'commander';
import { CriteriaError } from '../../errors.js';
import { runSprint } from '../../gate.js';
import { emitJson, withContext } from '../setup.js';

export async function sprintCommand(cmd: Command, n: number): Promise<void> {
  const { force } = cmd.opts<{ force?: boolean }>();
  await withContext(cmd, async (ctx) => {
    const run = await runSprint(ctx, n, { force: force ?? false });
    if (ctx.options.json) emitJson(run);
    if (!run.passed) {
      const failing = run.results.filter((r) => r.verdict === 'fail' && r.required).map((r) => r.id);
      throw new CriteriaError(`sprint ${n} ran, but ${failing.length} of its criteria fail: ${failing.join(', ')}`, {
        hint: `Fix what the failing checks say, then re-run \`dpgc sprint ${n}\` (safe to repeat) or \`dpgc verify --sprint ${n}\`.`,
      });
    }
    ctx.logger.info(`Sprint ${n} passed.${n < 5 ? ` Sprint ${n + 1} is unlocked.` : ''}`);
  });
}
