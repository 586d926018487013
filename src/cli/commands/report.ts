import type { Command } from 'commander';
import { measureReadiness } from '../../checks/readiness-run.js';
import { UsageError } from '../../errors.js';
import { writeReport } from '../../report/index.js';
import { emitJson, withContext } from '../setup.js';
import { assertWritableDir } from './verify.js';

/**
 * `dpgc report --html FILE`: the cluster for a reader who was not there, in
 * one self-contained HTML file: topology, the readiness verdict with every
 * item (measured now, as `dpgc readiness` does), each recorded failover drill
 * as a timeline, backups and the last PITR drill, replication lag over the
 * last hour. Exit 0 once the file is written, whatever it says: gate on
 * `dpgc readiness --html FILE`, which writes the same file.
 */
export async function reportCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ html?: string; readiness: boolean }>();
  if (!o.html) throw new UsageError('report needs --html FILE, the file to write', { hint: 'For example: dpgc report --html cluster-report.html' });
  await assertWritableDir(o.html, '--html');
  const file = o.html;
  await withContext(cmd, async (ctx) => {
    const readiness = o.readiness ? await measureReadiness(ctx) : undefined;
    await writeReport(ctx, file, readiness ? { readiness } : {});
    if (ctx.options.json) emitJson({ file, ...(readiness ? { ready: readiness.ready, score: { required: readiness.required, passed: readiness.passed, waived: readiness.waived } } : {}) });
  });
}
