/**
 * A sprint's plan as data: each step names its target and kind, can say what
 * it would change without changing anything (`observe`), and can do it
 * (`apply`). Nothing here runs a step: src/plan/run.ts walks a plan, and
 * Listr only draws it.
 */
export type StepKind = 'file' | 'command' | 'package' | 'sql' | 'rest' | 'service' | 'wait';

export interface Change {
  changed: boolean;
  note?: string;
  /** What apply() would send, for an observation: statements, a PATCH body. */
  would?: string[];
}

/** What a step function may return: a bare boolean is `{ changed }`. */
export type Outcome = boolean | Change | void;

export interface Step {
  type: 'step';
  title: string;
  kind: StepKind;
  /** The host it changes; undefined for cluster-wide steps (SQL on the leader, Patroni's REST API). */
  host?: string;
  /** Reads current state and says what apply() would change. Never changes anything. */
  observe(): Promise<Outcome>;
  apply(): Promise<Outcome>;
}

export interface Group {
  type: 'group';
  title: string;
  concurrent: boolean;
  steps: PlanNode[];
}

export type PlanNode = Step | Group;

export function toChange(o: Outcome): Change {
  if (typeof o === 'boolean') return { changed: o };
  return o ?? { changed: false };
}

/**
 * A step on one host whose every change goes through the host transport
 * (files, commands, packages, services). Its observation is the same code
 * run against a dry-run transport, which prints and skips what mutates and
 * runs what only reads; the pool is built dry exactly when the run observes
 * (src/cli/setup.ts), so observe and apply share one body.
 */
export function onHost(kind: Exclude<StepKind, 'sql' | 'rest'>, title: string, host: string | undefined, fn: () => Promise<Outcome>): Step {
  return { type: 'step', title, kind, ...(host ? { host } : {}), observe: fn, apply: fn };
}

/** A step that observes one way and applies another (SQL, REST, waits). */
export function twoWay(kind: StepKind, title: string, host: string | undefined, o: { observe: () => Promise<Outcome>; apply: () => Promise<Outcome> }): Step {
  return { type: 'step', title, kind, ...(host ? { host } : {}), observe: o.observe, apply: o.apply };
}

/** Steps for independent hosts, run concurrently. */
export function parallel(title: string, steps: PlanNode[]): Group {
  return { type: 'group', title, concurrent: true, steps };
}

export function sequence(title: string, steps: PlanNode[]): Group {
  return { type: 'group', title, concurrent: false, steps };
}

/**
 * Per-host work that installs packages: concurrent on real hosts, one at a
 * time where "hosts" share one machine (the lab, local or over SSH), since
 * they share one dpkg database.
 */
export function perHost(inv: { lab: boolean; hosts: { transport: string }[] }): (title: string, steps: PlanNode[]) => Group {
  return inv.lab || inv.hosts.every((h) => h.transport === 'local') ? sequence : parallel;
}

/** Every step of a plan, depth first, in the order a sequential run meets them. */
export function leaves(nodes: PlanNode[]): Step[] {
  return nodes.flatMap((n) => (n.type === 'step' ? [n] : leaves(n.steps)));
}
