import type { Command } from 'commander';
import type { RunContext } from '../../context.js';
import { inventoryWorstCase } from '../../config/timings.js';
import { CriteriaError, UsageError } from '../../errors.js';
import { throwIfInterrupted } from '../../interrupt.js';
import { runDrill } from '../../drills/engine.js';
import { formatDrill, formatSummary, METHOD, summarizeDrills } from '../../drills/report.js';
import type { DrillResult } from '../../drills/result.js';
import { DRILL_MODES, type DrillMode } from '../../drills/types.js';
import { askText } from '../prompt.js';
import { emitJson, withContext } from '../setup.js';

interface Flags {
  mode: string;
  repeat: number;
  writers: number;
  readers: number;
}

export async function failoverTestCommand(cmd: Command): Promise<void> {
  const flags = cmd.opts<Flags>();
  const mode = parseMode(flags.mode);
  await withContext(cmd, async (ctx) => {
    await confirmTarget(ctx, mode);
    const drills: DrillResult[] = [];
    for (let i = 0; i < flags.repeat; i++) {
      throwIfInterrupted();
      if (flags.repeat > 1) ctx.logger.info(`\nDrill ${i + 1} of ${flags.repeat}`);
      const d = await runDrill(ctx, { mode, writers: flags.writers, readers: flags.readers });
      drills.push(d);
      ctx.logger.info(formatDrill(d, ctx.inventory.timings.rto_budget_s));
      // A drill that could not restore the cluster leaves nothing the next one may safely do.
      if (d.repair) break;
    }
    if (drills.length > 1) ctx.logger.info(`\n${formatSummary(drills)}`);
    const failed = drills.filter((d) => !d.passed);
    if (ctx.options.json) {
      emitJson({
        mode,
        cluster: ctx.inventory.cluster,
        budget: { rtoS: ctx.inventory.timings.rto_budget_s, rpo: 0, worstCaseS: inventoryWorstCase(ctx.inventory).totalS },
        method: METHOD,
        summary: summarizeDrills(drills),
        passed: failed.length === 0 && drills.length === flags.repeat,
        drills,
      });
    }
    if (failed.length > 0 || drills.length < flags.repeat) {
      const why = [...new Set(failed.flatMap((d) => d.criteria.filter((c) => !c.ok).map((c) => c.id)))];
      throw new CriteriaError(`${failed.length} of ${drills.length} ${mode} drills failed${why.length ? ` (${why.join(', ')})` : ''}${drills.length < flags.repeat ? `; stopped after ${drills.length} of ${flags.repeat}` : ''}`, {
        hint: 'Each failed criterion is listed above with what was measured.',
      });
    }
  });
}

function parseMode(v: string): DrillMode {
  if (!(DRILL_MODES as readonly string[]).includes(v)) throw new UsageError(`--mode must be one of ${DRILL_MODES.join(', ')}; got "${v}"`);
  return v as DrillMode;
}

/** A lab is fair game; a real cluster needs its name typed (or --yes). */
async function confirmTarget(ctx: RunContext, mode: DrillMode): Promise<void> {
  if (ctx.inventory.lab || ctx.options.yes) return;
  const name = ctx.inventory.cluster;
  const typed = await askText(ctx.options, `This ${mode} drill disrupts the live cluster "${name}". Type the cluster name to go on`, '--yes to run the drill without confirmation');
  if (typed.trim() !== name) throw new UsageError(`"${typed.trim()}" is not "${name}": no drill was run`);
}
