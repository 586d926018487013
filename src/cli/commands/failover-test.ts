import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import type { RunContext } from '../../context.js';
import { inventoryWorstCase } from '../../config/timings.js';
import { CriteriaError, UsageError } from '../../errors.js';
import { throwIfInterrupted } from '../../interrupt.js';
import { runDrill } from '../../drills/engine.js';
import { drillDetail, drillSummary, formatDrill, formatSummary, METHOD, summarizeDrills } from '../../drills/report.js';
import type { DrillResult } from '../../drills/result.js';
import { DRILL_MODES, type DrillMode } from '../../drills/types.js';
import { DRILL_LOG, recordDrill } from '../../components/drill-log.js';
import { writeReport } from '../../report/index.js';
import { confirmClusterName } from '../prompt.js';
import { assertWritableDir } from './verify.js';
import { emitJson, withContext } from '../setup.js';

interface Flags {
  mode?: string;
  repeat: number;
  writers: number;
  readers: number;
  stall?: number;
  html?: string;
}

export async function failoverTestCommand(cmd: Command): Promise<void> {
  const flags = cmd.opts<Flags>();
  const mode = parseMode(flags.mode);
  if (flags.html) await assertWritableDir(flags.html, '--html');
  await withContext(cmd, async (ctx) => {
    await confirmTarget(ctx, mode);
    const drills: DrillResult[] = [];
    const batch = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
    for (let i = 0; i < flags.repeat; i++) {
      throwIfInterrupted();
      if (flags.repeat > 1) ctx.logger.info(`\nDrill ${i + 1} of ${flags.repeat}`);
      const d = await runDrill(ctx, { mode, writers: flags.writers, readers: flags.readers, ...(flags.stall === undefined ? {} : { stallS: flags.stall }) });
      drills.push(d);
      ctx.logger.info(formatDrill(d, ctx.inventory.timings.rto_budget_s));
      // The cluster's own record, read by `dpgc readiness` from any machine ("a kill drill passed within N days").
      const detail = drillDetail(d, ctx.inventory.timings.rto_budget_s, flags.repeat > 1 ? { id: batch, index: i + 1, of: flags.repeat } : undefined);
      await recordDrill(ctx.inventory, ctx.secrets, { mode, passed: d.passed, summary: drillSummary(d), detail }).catch((e: Error) =>
        ctx.logger.warn(`the drill's result could not be recorded in ${DRILL_LOG} (${e.message.split('\n')[0]}); readiness will not count it`),
      );
      // A drill that could not restore the cluster leaves nothing the next one may safely do.
      if (d.repair) break;
    }
    if (drills.length > 1) ctx.logger.info(`\n${formatSummary(drills)}`);
    // The drills just recorded, drawn beside the earlier ones; a report that cannot be written must not hide the verdict.
    if (flags.html) await writeReport(ctx, flags.html).catch((e: Error) => ctx.logger.warn(`the HTML report was not written: ${e.message.split('\n')[0]}`));
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
  }, { changesHosts: true });
}

function parseMode(v: string | undefined): DrillMode {
  if (v === undefined) {
    throw new UsageError(`failover-test needs --mode, the failure to cause: one of ${DRILL_MODES.join(', ')}`, {
      hint: 'A drill disrupts the live cluster, so it never picks one for you. For example: --mode switchover (a planned leader change, the gentlest).',
    });
  }
  if (!(DRILL_MODES as readonly string[]).includes(v)) throw new UsageError(`--mode must be one of ${DRILL_MODES.join(', ')}; got "${v}"`);
  return v as DrillMode;
}

/** A lab is fair game; a real cluster needs its name typed (or --yes). */
function confirmTarget(ctx: RunContext, mode: DrillMode): Promise<void> {
  return confirmClusterName(ctx, `This ${mode} drill disrupts the live cluster`, 'no drill was run');
}
