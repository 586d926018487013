import chalk from 'chalk';
import type { RunContext } from '../context.js';
import { DpgcError } from '../errors.js';
import { redact } from '../output/redact.js';
import { schedule } from './schedule.js';
import { isExclusive, type Check, type CheckOutcome } from './types.js';

/**
 * Enough to overlap the checks that wait on a server or a child process
 * (most of them) beside the exclusive ones, which set the pace; no more than
 * before checks of different sprints ran together, since on a loaded
 * 2-core machine more logins at once made them time out (5 s), not finish sooner.
 */
export const CHECK_CONCURRENCY = 6;

/**
 * Runs checks concurrently (bounded; exclusive ones one at a time, see
 * schedule.ts); a check that throws is a failure carrying the error's
 * message. Results, and `onResult`, come in the listed order.
 */
export async function runChecks(ctx: RunContext, checks: Check[], opts: { concurrency?: number; onResult?: (o: CheckOutcome) => void } = {}): Promise<CheckOutcome[]> {
  const t0 = Date.now();
  return schedule(checks, {
    concurrency: opts.concurrency ?? CHECK_CONCURRENCY,
    exclusive: isExclusive,
    ...(opts.onResult ? { onDone: opts.onResult } : {}),
    run: async (c): Promise<CheckOutcome> => {
      const started = Date.now();
      let r;
      try {
        r = await c.run(ctx);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        r = { verdict: 'fail' as const, detail: msg, ...(e instanceof DpgcError && e.hint ? { remedy: e.hint } : {}) };
      }
      return {
        ...r,
        ...(r.detail === undefined ? {} : { detail: redact(r.detail) }),
        id: c.id,
        title: c.title,
        sprint: c.sprint,
        required: c.required ?? true,
        kind: c.kind,
        startedMs: started - t0,
        durationMs: Date.now() - started,
      };
    },
  });
}

export function allRequiredPass(results: CheckOutcome[]): boolean {
  return results.every((r) => r.verdict !== 'fail' || !r.required);
}

const MARK = { pass: chalk.green('PASS'), warn: chalk.yellow('WARN'), fail: chalk.red('FAIL'), waived: chalk.cyan('WAIVED') } as const;

type Shown = Omit<CheckOutcome, 'verdict'> & { verdict: CheckOutcome['verdict'] | 'waived'; waiver?: { reason: string; expires: string } };

/** One line per check for humans (stderr); a waived item says why and until when. */
export function formatOutcome(o: Shown): string {
  const measured = o.value === undefined ? '' : ` ${chalk.bold(String(o.value))}${o.threshold ? chalk.dim(` (want ${o.threshold})`) : ''}`;
  const lines = [`${MARK[o.verdict]} ${o.title}${measured}${o.required ? '' : chalk.dim(' [optional]')}`];
  if (o.verdict !== 'pass' && o.detail) lines.push(`     ${o.detail.split('\n').join('\n     ')}`);
  if (o.verdict === 'waived' && o.waiver) lines.push(chalk.dim(`     waived until ${o.waiver.expires}: ${o.waiver.reason}`));
  else if (o.verdict !== 'pass' && o.remedy) lines.push(chalk.dim(`     → ${o.remedy}`));
  return lines.join('\n');
}

/** JUnit XML: one testsuite per sprint, one testcase per check; a waived readiness item is `skipped`, with its reason. */
export function toJUnit(results: Shown[], name = 'dpgc verify'): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const bySprint = new Map<number, Shown[]>();
  for (const r of results) bySprint.set(r.sprint, [...(bySprint.get(r.sprint) ?? []), r]);
  const suites = [...bySprint.entries()].map(([sprint, rs]) => {
    const failures = rs.filter((r) => r.verdict === 'fail').length;
    const time = rs.reduce((a, r) => a + r.durationMs, 0) / 1000;
    const cases = rs.map((r) => {
      const attrs = `classname="sprint${sprint}" name="${esc(`${r.id}: ${r.title}`)}" time="${(r.durationMs / 1000).toFixed(3)}"`;
      const out = `measured=${r.value ?? ''} threshold=${r.threshold ?? ''} ${r.detail ?? ''}`;
      if (r.verdict === 'fail') return `    <testcase ${attrs}><failure message="${esc(r.detail ?? 'failed')}">${esc(out)}</failure></testcase>`;
      if (r.verdict === 'waived') return `    <testcase ${attrs}><skipped message="${esc(`waived until ${r.waiver?.expires ?? '?'}: ${r.waiver?.reason ?? ''}`)}"/><system-out>${esc(`WAIVED ${out}`)}</system-out></testcase>`;
      return `    <testcase ${attrs}><system-out>${esc(`${r.verdict.toUpperCase()} ${out}`)}</system-out></testcase>`;
    });
    return `  <testsuite name="${esc(`${name} sprint ${sprint}`)}" tests="${rs.length}" failures="${failures}" time="${time.toFixed(3)}">\n${cases.join('\n')}\n  </testsuite>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="${esc(name)}">\n${suites.join('\n')}\n</testsuites>\n`;
}
