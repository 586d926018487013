import type { Check } from '../src/checks/types.js';
import type { Role } from '../src/config/schema.js';
import type { RunContext } from '../src/context.js';
import type { PlanNode } from '../src/plan/step.js';

/**
 * A sprint reads as the operator's story: what it delivers, the tasks that
 * deliver it, then the live criteria that prove it.
 */
export interface Sprint {
  id: number;
  title: string;
  /** Roles the inventory must have hosts for. */
  roles: Role[];
  /** The plan: steps that observe and apply (src/plan/step.ts). */
  tasks(ctx: RunContext): PlanNode[];
  /** The live criteria that prove it, by name (src/checks/). */
  criteria: Check[];
}
