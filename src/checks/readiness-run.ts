import { implementedSprints } from '../../sprints/index.js';
import type { RunContext } from '../context.js';
import { requireSprint } from '../gate.js';
import { readinessItems } from './readiness.js';
import { runChecks } from './run.js';
import { assessReadiness, type Readiness } from './waivers.js';

/**
 * The readiness verdict, measured live: every implemented sprint's criteria
 * and the production items, in one schedule, with the inventory's waivers
 * applied. `dpgc readiness` prints it; `dpgc report` draws it.
 */
export async function measureReadiness(ctx: RunContext): Promise<Readiness> {
  const sprints = await Promise.all(implementedSprints().map((id) => requireSprint(id)));
  const checks = [...sprints.flatMap((s) => s.criteria), ...readinessItems()];
  ctx.logger.info(`Measuring ${checks.length} items on the live cluster (sprints ${sprints.map((s) => s.id).join(', ')} and production items)…`);
  const results = await runChecks(ctx, checks);
  return assessReadiness(results, ctx.inventory.readiness.waivers, new Date().toISOString().slice(0, 10));
}
