import { writeFile } from 'node:fs/promises';
import type { Readiness } from '../checks/waivers.js';
import type { RunContext } from '../context.js';
import { UsageError } from '../errors.js';
import { chartAssets } from './assets.js';
import { collectReport } from './collect.js';
import { renderReport } from './html.js';

/**
 * `dpgc report --html FILE`, and the same file from `readiness --html` and
 * `failover-test --html`: gather (read-only), render (pure), write.
 */
export async function writeReport(ctx: Pick<RunContext, 'inventory' | 'secrets' | 'pool' | 'logger'>, file: string, o: { readiness?: Readiness } = {}): Promise<void> {
  const [data, assets] = await Promise.all([collectReport(ctx, o), chartAssets()]);
  const html = renderReport(data, { assets });
  await writeFile(file, html).catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(`--html ${file}: cannot write the report (${e.code ?? e.message})`, { hint: 'Pass a path in a directory you can write to.' });
  });
  ctx.logger.info(`Report written to ${file} (${(html.length / 1024).toFixed(0)} KiB): ${data.drills.rows.length} drill(s), ${data.readiness ? `readiness ${data.readiness.ready ? 'ready' : 'not ready'}` : 'readiness not measured'}`);
}
