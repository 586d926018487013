import chalk from 'chalk';
import type { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { measureReadiness } from '../../checks/readiness-run.js';
import { formatOutcome, toJUnit } from '../../checks/run.js';
import type { Readiness } from '../../checks/waivers.js';
import { CriteriaError, UsageError } from '../../errors.js';
import { writeReport } from '../../report/index.js';
import { emitJson, withContext } from '../setup.js';
import { assertWritableDir } from './verify.js';

/**
 * One verdict for production: every implemented sprint's criteria and the
 * production items no sprint owns (src/checks/readiness.ts), measured live in
 * one schedule, with the inventory's waivers applied. Exit 0 only when every
 * required item passes or is waived (and the waiver has not expired).
 */
export async function readinessCommand(cmd: Command): Promise<void> {
  const o = cmd.opts<{ junit?: string; html?: string }>();
  if (o.junit) await assertWritableDir(o.junit);
  if (o.html) await assertWritableDir(o.html, '--html');
  await withContext(cmd, async (ctx) => {
    const r = await measureReadiness(ctx);
    if (o.junit) {
      await writeFile(o.junit, toJUnit(r.items, 'dpgc readiness')).catch((e: NodeJS.ErrnoException) => {
        throw new UsageError(`--junit ${o.junit}: cannot write the report (${e.code ?? e.message})`, { hint: 'Pass a path in a directory you can write to.' });
      });
    }
    // The report is written whatever the verdict: a failing cluster is when it is read.
    if (o.html) await writeReport(ctx, o.html, { readiness: r });
    if (ctx.options.json) emitJson({ ready: r.ready, score: { required: r.required, passed: r.passed, waived: r.waived }, items: r.items, unknownWaivers: r.unknownWaivers, unneededWaivers: r.unneededWaivers });
    else ctx.logger.info(formatReadiness(r));
    for (const w of r.unknownWaivers) ctx.logger.warn(`readiness.waivers: "${w.id}" names no item that was measured; it waives nothing (ids are listed by \`dpgc readiness --json\`)`);
    for (const w of r.unneededWaivers) ctx.logger.warn(`readiness.waivers: "${w.id}" passes now; its waiver can be removed`);
    const failing = r.items.filter((i) => i.required && i.verdict === 'fail');
    if (!r.ready) {
      throw new CriteriaError(`not ready: ${failing.length} of ${r.required} required items fail: ${failing.map((i) => i.id).join(', ')}`, {
        hint: 'Each failing item above says what was measured and what to do; an item you accept for now goes in readiness.waivers with a reason and an expiry date.',
      });
    }
  });
}

/** The report for humans: items grouped by area, then the score. */
export function formatReadiness(r: Readiness): string {
  const areas = new Map<string, Readiness['items']>();
  for (const i of r.items) areas.set(i.area, [...(areas.get(i.area) ?? []), i]);
  const lines: string[] = [];
  for (const [area, items] of areas) {
    lines.push('', chalk.bold(area));
    for (const i of items) lines.push(formatOutcome(i));
  }
  const warned = r.items.filter((i) => i.required && i.verdict === 'warn').length;
  const verdict = r.ready ? chalk.green('ready') : chalk.red('not ready');
  lines.push(
    '',
    `${r.passed + r.waived}/${r.required} required items pass${warned ? ` (${warned} with a warning)` : ''}${r.waived ? `, ${r.waived} of them waived` : ''} — ${verdict}`,
  );
  return lines.join('\n');
}
