import chalk from 'chalk';
import type { RunContext } from '../context.js';
import { DpgcError } from '../errors.js';
import { redact } from '../output/redact.js';
import type { Check, CheckOutcome } from './types.js';

/** Runs checks concurrently (bounded); a check that throws is a failure carrying the error's message. */
export async function runChecks(ctx: RunContext, checks: Check[], opts: { concurrency?: number; onResult?: (o: CheckOutcome) => void } = {}): Promise<CheckOutcome[]> {
  const results: CheckOutcome[] = new Array(checks.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < checks.length; i = next++) {
      const c = checks[i]!;
      const started = Date.now();
      let r;
      try {
        r = await c.run(ctx);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        r = { verdict: 'fail' as const, detail: msg, ...(e instanceof DpgcError && e.hint ? { remedy: e.hint } : {}) };
      }
      const o: CheckOutcome = {
        ...r,
        ...(r.detail === undefined ? {} : { detail: redact(r.detail) }),
        id: c.id,
        title: c.title,
        sprint: c.sprint,
        required: c.required ?? true,
        durationMs: Date.now() - started,
      };
      results[i] = o;
      opts.onResult?.(o);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 6, checks.length) }, worker));
  return results;
}

export function allRequiredPass(results: CheckOutcome[]): boolean {
  return results.every((r) => r.verdict !== 'fail' || !r.required);
}

const MARK = { pass: chalk.green('PASS'), warn: chalk.yellow('WARN'), fail: chalk.red('FAIL') } as const;

/** One line per check for humans (stderr). */
export function formatOutcome(o: CheckOutcome): string {
  const measured = o.value === undefined ? '' : ` ${chalk.bold(String(o.value))}${o.threshold ? chalk.dim(` (want ${o.threshold})`) : ''}`;
  const lines = [`${MARK[o.verdict]} ${o.title}${measured}${o.required ? '' : chalk.dim(' [optional]')}`];
  if (o.verdict !== 'pass' && o.detail) lines.push(`     ${o.detail.split('\n').join('\n     ')}`);
  if (o.verdict !== 'pass' && o.remedy) lines.push(chalk.dim(`     → ${o.remedy}`));
  return lines.join('\n');
}

/** JUnit XML: one testsuite per sprint, one testcase per check. */
export function toJUnit(results: CheckOutcome[], name = 'dpgc verify'): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const bySprint = new Map<number, CheckOutcome[]>();
  for (const r of results) bySprint.set(r.sprint, [...(bySprint.get(r.sprint) ?? []), r]);
  const suites = [...bySprint.entries()].map(([sprint, rs]) => {
    const failures = rs.filter((r) => r.verdict === 'fail').length;
    const time = rs.reduce((a, r) => a + r.durationMs, 0) / 1000;
    const cases = rs.map((r) => {
      const attrs = `classname="sprint${sprint}" name="${esc(`${r.id}: ${r.title}`)}" time="${(r.durationMs / 1000).toFixed(3)}"`;
      const out = `measured=${r.value ?? ''} threshold=${r.threshold ?? ''} ${r.detail ?? ''}`;
      if (r.verdict === 'fail') return `    <testcase ${attrs}><failure message="${esc(r.detail ?? 'failed')}">${esc(out)}</failure></testcase>`;
      return `    <testcase ${attrs}><system-out>${esc(`${r.verdict.toUpperCase()} ${out}`)}</system-out></testcase>`;
    });
    return `  <testsuite name="${esc(`${name} sprint ${sprint}`)}" tests="${rs.length}" failures="${failures}" time="${time.toFixed(3)}">\n${cases.join('\n')}\n  </testsuite>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="${esc(name)}">\n${suites.join('\n')}\n</testsuites>\n`;
}
