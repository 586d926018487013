import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { implementedSprints } from '../../../sprints/index.js';
import { CriteriaError } from '../../errors.js';
import { runSprint, type SprintRun } from '../../gate.js';
import { globals } from '../globals.js';
import { confirm } from '../prompt.js';
import { emitJson, withContext, withHostsLock } from '../setup.js';

/** Every implemented sprint in order; each one gated by the previous one's live criteria. */
export async function upCommand(cmd: Command): Promise<void> {
  const g = globals(cmd);
  if (!existsSync(resolve(g.config))) {
    const { writeLabInventory } = await import('../../lab/init.js');
    if (!(await confirm(g, `No inventory at ${resolve(g.config)}. Create a lab cluster on this machine?`))) return;
    await withHostsLock(cmd, () => writeLabInventory(g.config, {}), { createsInventory: true });
  }
  await withContext(cmd, async (ctx) => {
    const runs: SprintRun[] = [];
    const started = Date.now();
    for (const id of implementedSprints()) {
      // The previous sprint's criteria, measured a moment ago, are this sprint's gate (src/gate.ts).
      const previous = runs.at(-1);
      const run = await runSprint(ctx, id, { force: false, ...(previous ? { previous } : {}) });
      runs.push(run);
      if (!run.passed) {
        if (ctx.options.json) emitJson({ passed: false, runs });
        throw new CriteriaError(`sprint ${id} ran, but its criteria fail; later sprints stay locked`, { hint: `Fix what the failing checks say, then run \`dpgc up\` again (safe to repeat).` });
      }
    }
    if (ctx.options.json) emitJson({ passed: true, runs });
    ctx.logger.info(`All ${runs.length} sprints pass (${((Date.now() - started) / 1000).toFixed(1)} s).`);
  }, { changesHosts: true, createsSecrets: true });
}
