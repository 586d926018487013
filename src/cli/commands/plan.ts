import type { Command } from 'commander';
import { requireSprint } from '../../gate.js';
import { formatPlan, planSprint } from '../../plan/plan.js';
import { loadState, statePathFor } from '../../state.js';
import { implementedSprints } from '../../../sprints/index.js';
import { emitJson, withContext } from '../setup.js';

/** `dpgc plan [N]`: sprint N's steps observed on the live hosts; nothing changes. Default: the first sprint not yet passed. */
export async function planCommand(cmd: Command, n: number | undefined): Promise<void> {
  await withContext(
    cmd,
    async (ctx) => {
      const id = n ?? (await nextSprint(ctx.inventory.file));
      const doc = await planSprint(ctx, await requireSprint(id));
      if (ctx.options.json) emitJson(doc);
      else for (const l of formatPlan(doc)) ctx.logger.info(l);
    },
    { observeOnly: true, createsSecrets: true },
  );
}

async function nextSprint(inventoryFile: string): Promise<number> {
  const { state } = await loadState(statePathFor(inventoryFile));
  const ids = implementedSprints();
  return ids.find((id) => !state.sprints[String(id)]?.passed) ?? ids[ids.length - 1]!;
}
