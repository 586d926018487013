import type { RunContext } from '../context.js';
import type { Logger } from '../output/log.js';
import { runStep, type StepOutcome } from '../tasks/run.js';
import type { PlanNode } from './step.js';
import { leaves } from './step.js';

/**
 * A sprint's plan against the live hosts: every step observed, in the order
 * a run would meet it, nothing changed. Observation is sequential even where
 * a run is concurrent: it is cheap, and later steps may read what earlier
 * ones recorded (sprint 2's "configuration changed" flags).
 */
export interface PlanDocument {
  sprint: number;
  title: string;
  /** Steps that would change something. */
  changes: number;
  steps: StepOutcome[];
}

export async function observePlan(nodes: PlanNode[], logger: Pick<Logger, 'dry'>): Promise<StepOutcome[]> {
  const out: StepOutcome[] = [];
  for (const s of leaves(nodes)) out.push(await runStep(s, 'observe', logger));
  return out;
}

export async function planSprint(ctx: RunContext, sprint: { id: number; title: string; tasks(ctx: RunContext): PlanNode[] }): Promise<PlanDocument> {
  const steps = await observePlan(sprint.tasks(ctx), ctx.logger);
  return { sprint: sprint.id, title: sprint.title, changes: steps.filter((s) => s.changed).length, steps };
}

/** For humans: one line per step, `~` where it would change something, `=` where it is already done. */
export function formatPlan(p: PlanDocument): string[] {
  const lines = [`Plan for sprint ${p.sprint} (${p.title}):`];
  for (const s of p.steps) {
    lines.push(`  ${s.changed ? '~' : '='} ${s.title}${s.note ? ` (${s.note})` : ''}`);
    for (const w of s.would ?? []) lines.push(`      would ${w.replace(/\n/g, '\n        ')}`);
  }
  const done = p.steps.length - p.changes;
  lines.push(p.changes === 0 ? `Nothing to change: all ${done} steps are already done.` : `${p.changes} steps would change something, ${done} are already done.`);
  return lines;
}
