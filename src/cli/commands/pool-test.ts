import type { Command } from 'commander';
import { CriteriaError } from '../../errors.js';
import { formatProgress, formatReport, poolTest } from '../../pooltest/run.js';
import { interruption } from '../../interrupt.js';
import { emitJson, withContext } from '../setup.js';

/** `dpgc pool-test`: progress on stderr while it runs, the report on stderr, or one JSON document on stdout. */
export async function poolTestCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ agents: number; duration: number }>();
  await withContext(cmd, async (ctx) => {
    const report = await poolTest(ctx, {
      agents: o.agents,
      durationS: o.duration,
      signal: interruption.signal,
      onProgress: (p) => ctx.logger.info(formatProgress(p)),
    });
    ctx.logger.info(formatReport(report));
    if (ctx.options.json) emitJson(report);
    if (!report.passed) throw new CriteriaError(`pool test failed: ${report.reasons.join('; ')}`);
    // It writes and deletes the application's rows: a run of its own, like a sprint.
  }, { changesHosts: true });
}
