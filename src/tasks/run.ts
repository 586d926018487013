import { Listr, ListrLogger, ProcessOutput, type ListrTask, type ListrDefaultRenderer, type ListrSimpleRenderer } from 'listr2';
import type { GlobalOptions } from '../context.js';
import { throwIfInterrupted } from '../interrupt.js';
import type { Logger } from '../output/log.js';
import { redact } from '../output/redact.js';
import { toChange, type Change, type PlanNode, type Step, type StepKind } from '../plan/step.js';
import { recordingWould } from '../hosts/observation.js';

/**
 * The edge where a plan (src/plan/step.ts) meets Listr: each step becomes a
 * task that either applies or observes it, with "changed / unchanged"
 * bookkeeping, so a second run of a sprint can say, truthfully, that it
 * changed nothing. Whether a run applies or observes is decided by the caller
 * once (`mode`), never by a step.
 */
export type RunMode = 'apply' | 'observe';

export interface StepOutcome {
  title: string;
  kind: StepKind;
  host?: string;
  changed: boolean;
  note?: string;
  would?: string[];
}

export interface TaskContext {
  outcomes: StepOutcome[];
}

type Task = ListrTask<TaskContext, ListrDefaultRenderer, ListrSimpleRenderer>;

/** One step, applied or observed; the outcome is recorded and shown in its title. */
export async function runStep(s: Step, mode: RunMode, logger?: Pick<Logger, 'dry'>): Promise<StepOutcome> {
  throwIfInterrupted();
  if (mode === 'apply') return outcomeOf(s, toChange(await s.apply()));
  // The transports print the commands and writes they skip as they go; what the step itself says it
  // would send (statements, REST bodies) is printed here. Both go into the plan document.
  const { value, would: skipped } = await recordingWould(() => s.observe());
  const c = toChange(value);
  for (const w of c.would ?? []) logger?.dry(`${s.host ? `${s.host}: ` : ''}would ${w}`);
  const would = [...skipped, ...(c.would ?? [])];
  return outcomeOf(s, { ...c, ...(would.length ? { would } : {}) });
}

function outcomeOf(s: Step, c: Change): StepOutcome {
  return {
    title: s.title,
    kind: s.kind,
    ...(s.host ? { host: s.host } : {}),
    changed: c.changed,
    ...(c.note ? { note: c.note } : {}),
    ...(c.would?.length ? { would: c.would } : {}),
  };
}

function toTask(n: PlanNode, mode: RunMode, logger: Pick<Logger, 'dry'>): Task {
  if (n.type === 'group') {
    const tasks = n.steps.map((s) => toTask(s, mode, logger));
    return { title: n.title, task: (_ctx, t) => t.newListr(tasks, { concurrent: n.concurrent, exitOnError: true }) };
  }
  return {
    title: n.title,
    task: async (ctx, t) => {
      const o = await runStep(n, mode, logger);
      ctx.outcomes.push(o);
      t.title = redact(`${n.title} (${o.changed ? 'changed' : 'unchanged'}${o.note ? `, ${o.note}` : ''})`);
    },
  };
}

/** Runs a plan with the renderer that fits: live on a TTY, timestamped lines in CI, silent for --json. */
export async function runSteps(
  nodes: PlanNode[],
  opts: Pick<GlobalOptions, 'json' | 'verbose'> & { mode: RunMode; logger: Pick<Logger, 'dry'> },
): Promise<TaskContext> {
  const tty = Boolean(process.stderr.isTTY) && !process.env['CI'];
  // The renderer is chosen at run time; listr2's types want it fixed, hence the casts.
  const list = new Listr<TaskContext, 'default', 'simple'>(
    nodes.map((n) => toTask(n, opts.mode, opts.logger)),
    {
      concurrent: false,
      exitOnError: true,
      ctx: { outcomes: [] },
      renderer: (opts.json ? 'silent' : tty ? 'default' : 'simple') as 'default',
      fallbackRenderer: 'simple',
      rendererOptions: { logger: toStderr(), timer: { condition: true, field: (ms: number) => `${(ms / 1000).toFixed(1)}s`, format: () => (s: string) => s } as never, collapseSubtasks: false },
      fallbackRendererOptions: { logger: toStderr(), timestamp: { format: () => (s: string) => s } as never, timer: { condition: true, field: (ms: number) => `${(ms / 1000).toFixed(1)}s`, format: () => (s: string) => s } as never },
      registerSignalListeners: false,
    },
  );
  return list.run();
}

/** stdout is reserved for --json: the task list is for humans, so it goes to stderr. */
function toStderr(): ListrLogger {
  return new ListrLogger({ useIcons: true, processOutput: new ProcessOutput(process.stderr, process.stderr) });
}

export function summarize(ctx: TaskContext): { changed: number; unchanged: number } {
  const changed = ctx.outcomes.filter((o) => o.changed).length;
  return { changed, unchanged: ctx.outcomes.length - changed };
}
